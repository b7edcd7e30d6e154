"""ONNX export: metadata for the Predictor, dynamic batch, agreement with PyTorch, CDC folding, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from deploy_fixtures import faces_scene, tiny_checkpoint

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from openfas.deploy.export import export_onnx  # noqa: E402
from openfas.deploy.predictor import Predictor  # noqa: E402
from openfas.io.checkpoint import CheckpointError, load_checkpoint  # noqa: E402
from openfas.methods.restore import build_model_from_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def ckpt(tiny_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return tiny_checkpoint(tmp_path_factory.getbasetemp(), tiny_cache)


@pytest.fixture(scope="module")
def exported(ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    return out, export_onnx(ckpt, out)


def test_export_carries_metadata_and_dynamic_batch(ckpt: Path, exported: tuple[Path, object]) -> None:
    path, report = exported
    assert report.folded and report.outputs == ["score", "map"]
    assert report.max_abs_diff["score"] < 1e-5 and report.max_abs_diff["map"] < 1e-5
    model = onnx.load(str(path))
    meta = json.loads({p.key: p.value for p in model.metadata_props}["openfas"])
    stored = load_checkpoint(ckpt)["meta"]
    assert meta["threshold"] == stored["threshold"]
    assert meta["preprocess"] == stored["preprocess"]
    assert meta["openfas_version"] == stored["openfas_version"] and meta["model"] == "pixelnet"
    dim0 = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.dim_param == "batch" and not dim0.HasField("dim_value")
    # BatchNorm folded away: no BatchNormalization node left in the graph
    assert not [n for n in model.graph.node if n.op_type == "BatchNormalization"]


def test_onnx_runtime_matches_pytorch_at_any_batch(ckpt: Path, exported: tuple[Path, object]) -> None:
    path, _ = exported
    torch_model, info = build_model_from_checkpoint(ckpt)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for b in (1, 5):
        x = torch.randn(b, 3, 32, 32, generator=torch.Generator().manual_seed(b))
        with torch.no_grad():
            pmap = torch_model(x)
        score, omap = sess.run(None, {"image": x.numpy()})
        assert score.shape == (b,) and omap.shape == (b, 8, 8)
        np.testing.assert_allclose(omap, pmap.numpy(), atol=1e-5)
        np.testing.assert_allclose(score, pmap.flatten(1).mean(1).numpy(), atol=1e-5)  # score = map mean


def test_predictor_on_onnx_equals_predictor_on_checkpoint(ckpt: Path, exported: tuple[Path, object]) -> None:
    path, _ = exported
    a, b = Predictor.from_checkpoint(ckpt), Predictor.from_checkpoint(path)
    assert b.backend_name == "onnx" and b.threshold == a.threshold and b.crop_scale == a.crop_scale
    scene = faces_scene(3, 100)
    ra, rb = a.predict(scene), b.predict(scene)
    assert [f.box for f in ra.faces] == [f.box for f in rb.faces] and len(ra.faces) == 3
    for fa, fb in zip(ra.faces, rb.faces, strict=True):
        assert fb.score == pytest.approx(fa.score, abs=1e-5)
        assert fa.live == fb.live
        np.testing.assert_allclose(fb.map, fa.map, atol=1e-5)


def test_cdcn_export_folds_cdc_convs(tiny_cache: Path, tmp_path: Path) -> None:
    from openfas.config import load_config
    from openfas.engine.trainer import Trainer

    cfg = load_config(None, [f"data.cache={tiny_cache}", "model.name=cdcn", "data.image_size=32", "data.map_size=8"])
    trainer = Trainer(cfg, run_dir=tmp_path / "run", progress=False)
    with torch.no_grad():  # non-trivial BatchNorm statistics so that folding BN is really exercised
        for m in trainer.model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(0.0, 0.3)
    ck = trainer.save("random", threshold=0.25)
    report = export_onnx(ck, tmp_path / "cdcn.onnx")
    assert report.folded and max(report.max_abs_diff.values()) < 1e-4
    def conv_stats(path: Path) -> tuple[int, int, int]:
        """(Conv nodes, Convs whose weight is computed in the graph instead of stored, BatchNorm nodes)."""
        graph = onnx.load(str(path)).graph
        stored = {t.name for t in graph.initializer}
        convs = [n for n in graph.node if n.op_type == "Conv"]
        computed = [n for n in convs if n.input[1] not in stored]
        return len(convs), len(computed), len([n for n in graph.node if n.op_type == "BatchNormalization"])

    n_cdc = len([m for m in trainer.model.modules() if hasattr(m, "fuse")])
    n_plain = len([m for m in trainer.model.modules() if type(m) is torch.nn.Conv2d])
    assert n_cdc >= 10
    # folded: one Conv per CDC layer, its kernel w − θ·Σw·δ stored as a constant, BatchNorm gone
    assert conv_stats(tmp_path / "cdcn.onnx") == (n_cdc + n_plain, 0, 0)
    unfolded = export_onnx(ck, tmp_path / "raw.onnx", fold=False)
    assert not unfolded.folded and max(unfolded.max_abs_diff.values()) < 1e-4
    raw = conv_stats(tmp_path / "raw.onnx")
    assert raw[1] > 0 or raw[2] > 0  # the unfolded graph still computes kernels or normalises at run time
    assert Predictor.from_checkpoint(tmp_path / "cdcn.onnx").threshold == pytest.approx(0.25)


def test_export_cli_and_bad_files(ckpt: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from openfas.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["export", str(ckpt), "--onnx", str(tmp_path / "m.onnx")])
    assert res.exit_code == 0, res.output
    assert "max |ONNX Runtime − PyTorch|" in res.output and (tmp_path / "m.onnx").exists()
    bogus = tmp_path / "bogus.safetensors"
    bogus.write_bytes(b"\x00" * 64)
    res = runner.invoke(app, ["export", str(bogus), "--onnx", str(tmp_path / "x.onnx")])
    assert res.exit_code == 2 and str(bogus) in res.output
    # an ONNX file without openfas metadata is refused by the Predictor
    proto = onnx.load(str(tmp_path / "m.onnx"))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "nometa.onnx"))
    with pytest.raises(CheckpointError, match="without openfas metadata"):
        Predictor.from_checkpoint(tmp_path / "nometa.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf at all")
    with pytest.raises(CheckpointError, match="junk.onnx"):
        Predictor.from_checkpoint(tmp_path / "junk.onnx")
