"""Recognition training through the one engine: CosFace teacher → CSDN with distillation, evaluation CLI,
``predict --embed``, teachers (openfas / ONNX, size mismatch) and exact resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import run_torchrun
from safetensors.torch import load_file
from typer.testing import CliRunner

from openfas.cli import app
from openfas.config import ConfigError, load_config
from openfas.data.synth.identities import generate_identities
from openfas.engine.trainer import Trainer
from openfas.methods.restore import build_model_from_checkpoint
from openfas.recognition.teacher import TeacherError, load_teacher


@pytest.fixture(scope="module")
def ids_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_identities(tmp_path_factory.mktemp("rec") / "ids", identities=4, images_per_identity=3,
                               test_identities=3, test_images_per_identity=2, size=32, pairs_per_identity=3)


def _overrides(root: Path, out: Path, *extra: str) -> list[str]:
    return [f"data.identities.root={root / 'train'}", f"data.identities.pairs={root / 'test' / 'pairs.txt'}",
            "data.image_size=32", "data.batch_size=4", "model.num_classes=4", "model.embedding_dim=16",
            "model.layers=[1,1]", "model.widths=[8,16]", "train.epochs=1", "train.log_every=1",
            "train.device=cpu", f"experiment.output_dir={out}", "optim.lr=0.01", *extra]


def _train(config: str, root: Path, run_dir: Path, *extra: str) -> Trainer:
    cfg = load_config(config, _overrides(root, run_dir.parent, *extra))
    trainer = Trainer(cfg, run_dir=run_dir, progress=False)
    trainer.fit()
    return trainer


@pytest.fixture(scope="module")
def teacher_ckpt(ids_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "teacher"
    _train("recognition/teacher_synth.yaml", ids_root, run)
    return run / "checkpoints" / "final.safetensors"


def test_csdn_trains_with_teacher_and_evaluates(ids_root: Path, teacher_ckpt: Path, tmp_path: Path) -> None:
    run = tmp_path / "csdn"
    _train("recognition/csdn_synth.yaml", ids_root, run, f"method.teacher={teacher_ckpt}", "model.concept_hidden=8")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["pairs"] == 18 and 0.0 <= metrics["accuracy"] <= 1.0
    assert set(metrics["headline"]) >= {"accuracy", "auc", "tar@far=0.001"}
    q = metrics["quality_vs_coverage"]
    assert q["images"] == 12 and q["masked_images"] == 6 and -1.0 <= q["spearman_all"] <= 1.0
    assert sum(metrics["sub_decision_weights"]["masked"]) == pytest.approx(1.0, abs=1e-3)
    hist = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"cls", "branch_cls", "kl", "kd"} <= set(hist[0])
    ckpt = run / "checkpoints" / "final.safetensors"
    assert not any("teacher" in k for k in load_file(str(ckpt)))  # the teacher is not saved in the student

    runner = CliRunner()
    res = runner.invoke(app, ["eval", str(ckpt), "--pairs", str(ids_root / "test" / "pairs.txt"), "--aligned",
                              "--out", str(tmp_path / "ev")])
    assert res.exit_code == 0, res.output
    again = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert again["accuracy"] == pytest.approx(metrics["accuracy"])
    assert (tmp_path / "ev" / "scores_pairs.csv").read_text().count("\n") == 19
    res = runner.invoke(app, ["compare", str(run), str(tmp_path / "ev")])
    assert res.exit_code == 0 and "TAR@FAR=0.001 (%)" in res.output and "Spearman C(X)" in res.output

    img = ids_root / "test" / "TestPerson000" / "TestPerson000_0003.png"
    res = runner.invoke(app, ["predict", str(ckpt), str(img), "--embed", "--aligned"])
    assert res.exit_code == 0, res.output
    row = json.loads(res.output)["results"][0]
    assert len(row["embedding"]) == 16 and 0.0 <= row["quality"] <= 1.0 and len(row["weights"]) == 3
    assert sum(v * v for v in row["embedding"]) == pytest.approx(1.0, abs=1e-4)

    bad = tmp_path / "bad_pairs.txt"
    bad.write_text("TestPerson000 1 3\nTestPerson000 x\n")
    res = runner.invoke(app, ["eval", str(ckpt), "--pairs", str(bad)])
    assert res.exit_code == 2 and "bad_pairs.txt:2" in res.output


def test_teacher_interfaces_and_size_mismatch(ids_root: Path, teacher_ckpt: Path, tmp_path: Path) -> None:
    with pytest.raises(TeacherError, match="needs a model builder"):
        load_teacher(teacher_ckpt)
    t = load_teacher(teacher_ckpt, student_mean=0.5, student_std=0.5, build_model=build_model_from_checkpoint)
    assert t.embedding_dim == 16 and t(torch.zeros(3, 3, 48, 48)).shape == (3, 16)  # resized to 32 px

    class Tiny(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean((2, 3)).repeat(1, 4)

    pytest.importorskip("onnxruntime")
    path = tmp_path / "teacher.onnx"
    torch.onnx.export(Tiny(), (torch.zeros(2, 3, 112, 112),), str(path), dynamo=False,
                      input_names=["x"], output_names=["e"], dynamic_axes={"x": {0: "n"}, "e": {0: "n"}})
    ox = load_teacher(path)
    x = torch.rand(4, 3, 112, 112)
    assert ox.kind == "onnx" and ox.embedding_dim == 12 and torch.allclose(ox(x), Tiny()(x), atol=1e-5)
    assert ox(torch.zeros(5, 3, 112, 112)).shape == (5, 12)  # dynamic batch
    # TorchScript and torch.export files can run code when loaded (tests/test_security.py): refused
    torch.jit.script(Tiny()).save(str(tmp_path / "teacher.pt"))
    with pytest.raises(TeacherError, match="can run arbitrary code"):
        load_teacher(tmp_path / "teacher.pt")
    with pytest.raises(TeacherError, match="teacher file not found"):
        load_teacher(tmp_path / "none.onnx")
    with pytest.raises(TeacherError, match="gives 12-d embeddings but the student has model.embedding_dim=16"):
        _train("recognition/csdn_synth.yaml", ids_root, tmp_path / "r", f"method.teacher={path}")
    with pytest.raises(ConfigError, match="needs method.teacher"):
        _train("recognition/csdn_synth.yaml", ids_root, tmp_path / "r2")
    with pytest.raises(ConfigError, match="4 identities, but model.num_classes=5"):
        _train("recognition/cosface_synth.yaml", ids_root, tmp_path / "r3", "model.num_classes=5")


def test_recognition_resume_is_exact(ids_root: Path, teacher_ckpt: Path, tmp_path: Path) -> None:
    # init_from applies when a run starts; a resumed run must keep its own weights
    extra = ("train.epochs=2", f"method.teacher={teacher_ckpt}", "model.concept_hidden=8",
             f"method.init_from={teacher_ckpt}")
    full = tmp_path / "full"
    _train("recognition/csdn_synth.yaml", ids_root, full, *extra)

    cfg = load_config("recognition/csdn_synth.yaml", _overrides(ids_root, tmp_path, *extra))
    part = tmp_path / "part"
    trainer = Trainer(cfg, run_dir=part, progress=False)

    def stop(stage, epoch, resumed_mid_epoch):  # noqa: ANN001, ANN202
        if epoch == 1:
            raise KeyboardInterrupt

    trainer.method.on_epoch_start = stop
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    Trainer(cfg, resume=part, progress=False).fit()
    a = load_file(str(full / "checkpoints" / "final.safetensors"))
    b = load_file(str(part / "checkpoints" / "final.safetensors"))
    for k in a:
        if k.startswith("model."):
            assert torch.equal(a[k], b[k]), f"{k} differs after resume"


def test_init_from_copies_teacher_into_every_sub_decision_block(ids_root: Path, teacher_ckpt: Path,
                                                                tmp_path: Path) -> None:
    from openfas.io.checkpoint import load_checkpoint
    from openfas.methods.recognition import init_from_checkpoint
    from openfas.models import create_model

    model = create_model("csdn", image_size=32, num_classes=4, embedding_dim=16, depth=None, layers=(1, 1),
                         widths=(8, 16), concept_hidden=8)
    copied = init_from_checkpoint(model, teacher_ckpt)
    state = load_checkpoint(teacher_ckpt)["model"]
    own = model.state_dict()
    for i in range(3):
        assert torch.equal(own[f"blocks.{i}.1.weight"], state["blocks.0.1.weight"])
    assert torch.equal(own["head.weight"], state["head.weight"])
    assert not any(k.startswith("concept.") for k in copied)
    small = create_model("csdn", image_size=32, num_classes=4, embedding_dim=8, depth=None, layers=(1,),
                         widths=(4,), concept_hidden=8)
    from openfas.io.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="no tensor matches"):
        init_from_checkpoint(small, teacher_ckpt)


DDP_SCRIPT = """
import os, sys
from safetensors.torch import save_file
from openfas.config import load_config
from openfas.engine.trainer import Trainer
cfg = load_config("recognition/csdn_synth.yaml", sys.argv[2:])
t = Trainer(cfg, run_dir=sys.argv[1], progress=False)
t.fit()
rank = int(os.environ["RANK"])
save_file({k: v.contiguous() for k, v in t.model.state_dict().items()}, f"{sys.argv[1]}/rank{rank}.safetensors")
"""


@pytest.mark.slow
def test_csdn_ddp_two_cpu_processes_end_with_identical_weights(ids_root: Path, teacher_ckpt: Path,
                                                               tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    run_torchrun(DDP_SCRIPT, tmp_path, [str(run), *_overrides(ids_root, tmp_path, f"method.teacher={teacher_ckpt}",
                                                               "model.concept_hidden=8")])
    r0, r1 = load_file(str(run / "rank0.safetensors")), load_file(str(run / "rank1.safetensors"))
    for k in r0:
        assert torch.equal(r0[k], r1[k]), f"{k} differs between ranks"
    assert (run / "metrics.json").is_file()


def test_cli_reports_data_and_teacher_problems(ids_root: Path, teacher_ckpt: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    base = _overrides(ids_root, tmp_path)
    res = runner.invoke(app, ["train", "-c", "recognition/cosface_synth.yaml", *base,
                              f"data.identities.root={tmp_path / 'missing'}"])
    assert res.exit_code == 2 and "identity folder root not found" in res.output
    res = runner.invoke(app, ["train", "-c", "recognition/csdn_synth.yaml", *base,
                              f"method.teacher={tmp_path / 'none.onnx'}"])
    assert res.exit_code == 2 and "teacher file not found" in res.output
    res = runner.invoke(app, ["predict", str(teacher_ckpt), str(ids_root / "test" / "masks.csv")])
    assert res.exit_code == 2 and "use --embed" in res.output


def test_runs_saved_before_the_identities_section_still_resume(tiny_cache: Path, tmp_path: Path) -> None:
    from openfas.io.checkpoint import load_checkpoint, save_checkpoint

    tiny = ["data.image_size=32", "data.map_size=8", "model.width=8", "eval.report=false", f"data.cache={tiny_cache}"]
    cfg = load_config(None, tiny)
    Trainer(cfg, run_dir=tmp_path / "run", progress=False).save("last")
    ck = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.safetensors")
    del ck["meta"]["config"]["data"]["identities"]  # what a checkpoint written before this section holds
    old = tmp_path / "old.safetensors"
    save_checkpoint(old, model_state=ck["model"], meta=ck["meta"], extra_state=ck["extra"])
    Trainer(cfg, resume=old, run_dir=tmp_path / "resumed", progress=False)  # accepted: defaults fill the gap
    with pytest.raises(ConfigError, match=r"train.epochs: 10 → 3"):
        Trainer(load_config(None, [*tiny, "train.epochs=3"]), resume=old, run_dir=tmp_path / "r2", progress=False)


def test_eval_flip_sums_the_mirror_embedding_before_the_cosine(ids_root: Path, teacher_ckpt: Path,
                                                               tmp_path: Path) -> None:
    """``eval --flip``: pair score = cos(e(a) + e(mirror a), e(b) + e(mirror b)), recomputed here by hand."""
    import csv

    from openfas.recognition.data import load_face
    from openfas.recognition.pairs import read_pairs, resolve_image

    pairs = ids_root / "test" / "pairs.txt"
    runner = CliRunner()
    res = runner.invoke(app, ["eval", str(teacher_ckpt), "--pairs", str(pairs), "--flip", "--aligned", "--out",
                              str(tmp_path / "f")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "f" / "metrics.json").read_text())["flip"] is True
    with open(tmp_path / "f" / "scores_pairs.csv", newline="") as f:
        got = [float(r["score"]) for r in csv.DictReader(f)]

    model, info = build_model_from_checkpoint(teacher_ckpt)
    model.eval()
    pl = read_pairs(pairs)

    def emb(rel: str, mirror: bool) -> torch.Tensor:
        x = load_face(resolve_image(pairs.parent, rel, pl), 32, 0.5, 0.5)[None]
        with torch.no_grad():
            e = info["method"].embed(model, torch.flip(x, dims=[3]) if mirror else x)[0][0]
        return e

    def cos(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a @ b) / (a.norm() * b.norm()))

    sides = list(zip(pl.left, pl.right, strict=True))
    want = [cos(emb(a, False) + emb(a, True), emb(b, False) + emb(b, True)) for a, b in sides]
    plain = [cos(emb(a, False), emb(b, False)) for a, b in sides]
    assert got == pytest.approx(want, abs=1e-5)
    assert max(abs(g - p) for g, p in zip(got, plain, strict=True)) > 1e-3  # the mirror really changed the scores

    # without the flag the checkpoint's own data.identities.flip decides; --no-flip overrides it
    run = tmp_path / "flipcfg"
    _train("recognition/teacher_synth.yaml", ids_root, run, "data.identities.flip=true")
    ckpt = run / "checkpoints" / "final.safetensors"
    for flags, want_flip in (([], True), (["--no-flip"], False), (["--flip"], True)):
        out = tmp_path / f"cfg{len(flags)}{want_flip}"
        res = runner.invoke(app, ["eval", str(ckpt), "--pairs", str(pairs), *flags, "--aligned", "--out", str(out)])
        assert res.exit_code == 0, res.output
        assert json.loads((out / "metrics.json").read_text())["flip"] is want_flip
    res = runner.invoke(app, ["eval", str(teacher_ckpt), "--pairs", str(pairs), "--aligned", "--out",
                              str(tmp_path / "plain")])
    assert json.loads((tmp_path / "plain" / "metrics.json").read_text())["flip"] is False

    # predict --embed gives the same embedding as eval for that checkpoint: the normalised mirror sum
    model, info = build_model_from_checkpoint(ckpt)
    model.eval()
    img = resolve_image(pairs.parent, pl.left[0], pl)
    res = runner.invoke(app, ["predict", str(ckpt), str(img), "--embed", "--aligned"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    x = load_face(img, 32, 0.5, 0.5)[None]
    with torch.no_grad():
        e = info["method"].embed(model, x)[0][0] + info["method"].embed(model, torch.flip(x, dims=[3]))[0][0]
    assert out["flip"] is True
    assert out["results"][0]["embedding"] == pytest.approx((e / e.norm()).tolist(), abs=1e-5)
