"""Security regression tests (issue 15): no user file is ever unpickled.

Every path that reads a file named by the user (teacher, ``model.pretrained``, ``method.init_from``,
``--resume``, the checkpoint of predict / eval / export / serve / report) is fed crafted malicious files whose
payload (a ``__reduce__`` calling ``open(marker, "w")``) would create a marker file if it were unpickled. The
tests assert the marker never appears and that the error is one clean line naming the file. A first test proves
that the crafted files really are malicious: loaded the unsafe way, they create their marker.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from openfas.cli import app


class _Payload:
    """Unpickling this object calls ``open(marker, "w")``: the marker file appears iff the pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (open, (str(self.marker), "w"))


def _pickle_file(path: Path, marker: Path) -> Path:
    """A plain pickle (what ``torch.save`` wrote before PyTorch 1.6, and ``*.pkl``)."""
    path.write_bytes(pickle.dumps({"weight": _Payload(marker)}))
    return path


def _torch_zip(path: Path, marker: Path) -> Path:
    """A ``torch.save`` zip archive whose ``data.pkl`` carries the payload."""
    torch.save({"weight": _Payload(marker)}, str(path))
    return path


def _pt2(path: Path, marker: Path) -> Path:
    """A genuine ``torch.export`` archive whose first weight is declared pickled and replaced by the payload."""

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(3, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x.mean((2, 3)))

    good = io.BytesIO()
    torch.export.save(torch.export.export(Tiny(), (torch.zeros(2, 3, 8, 8),)), good)
    payload = io.BytesIO()
    torch.save(_Payload(marker), payload)
    src = zipfile.ZipFile(good)
    cfg_name = next(n for n in src.namelist() if n.endswith("weights/model_weights_config.json"))
    cfg = json.loads(src.read(cfg_name))
    cfg["config"]["fc.weight"]["use_pickle"] = True
    weight_name = cfg_name.rsplit("/", 1)[0] + "/" + cfg["config"]["fc.weight"]["path_name"]
    with zipfile.ZipFile(path, "w") as dst:
        for name in src.namelist():
            data = {cfg_name: json.dumps(cfg).encode(), weight_name: payload.getvalue()}.get(name, src.read(name))
            dst.writestr(name, data)
    return path


CRAFT = {"pickle": _pickle_file, "torch_zip": _torch_zip, "pt2": _pt2}


@pytest.fixture()
def marker(tmp_path: Path) -> Path:
    return tmp_path / "PAYLOAD_RAN"


def _evil_files(folder: Path, marker: Path, names: dict[str, str]) -> list[Path]:
    """``names``: file name → craft kind; returns the written files."""
    folder.mkdir(parents=True, exist_ok=True)
    return [CRAFT[kind](folder / name, marker) for name, kind in names.items()]


# every malicious file a loader might meet: the right suffix with a hostile body, and code formats
ANY_NAME = {"evil.safetensors": "pickle", "zip.safetensors": "torch_zip", "evil.onnx": "pickle",
            "evil.pt": "torch_zip", "evil.pth": "pickle", "evil.pt2": "pt2", "evil.pkl": "pickle"}


def test_crafted_files_really_run_their_payload_when_unpickled(tmp_path: Path) -> None:
    for kind, load in (("pickle", lambda p: pickle.loads(p.read_bytes())),
                       ("torch_zip", lambda p: torch.load(p, weights_only=False)),
                       ("pt2", lambda p: torch.export.load(str(p)))):
        proof = tmp_path / f"proof_{kind}"
        path = CRAFT[kind](tmp_path / f"{kind}.bin", proof)
        try:
            load(path)
        except Exception:  # noqa: BLE001, S110 - the payload runs before the loader notices the odd object
            pass
        assert proof.exists(), f"the crafted {kind} file did not run its payload: the tests below would prove nothing"


def _assert_clean(output: str, path: Path, marker: Path) -> None:
    assert not marker.exists(), f"{path}: the payload ran"
    assert "Traceback" not in output, output
    lines = [ln for ln in output.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], output  # the error is the last line, and only one line
    assert path.name in errors[0], output


# ------------------------------------------------------------------------------------------ teacher
def test_teacher_never_unpickles(tmp_path: Path, marker: Path) -> None:
    from openfas.recognition.teacher import TeacherError, load_teacher

    for path in _evil_files(tmp_path, marker, ANY_NAME):
        with pytest.raises(TeacherError) as err:
            load_teacher(path)
        msg = str(err.value)
        assert str(path) in msg and "\n" not in msg, msg
        if path.suffix in (".pt", ".pth", ".pt2", ".pkl"):
            assert "can run arbitrary code" in msg and "ONNX" in msg, msg
        assert not marker.exists(), f"{path}: the payload ran"


def test_teacher_through_the_cli_is_one_clean_line(tmp_path: Path, marker: Path) -> None:
    from openfas.recognition.synth import generate_identities

    ids = generate_identities(tmp_path / "ids", identities=3, images_per_identity=2, test_identities=2,
                              test_images_per_identity=2, size=32, pairs_per_identity=2)
    base = [f"data.identities.root={ids / 'train'}", f"data.identities.pairs={ids / 'test' / 'pairs.txt'}",
            "data.image_size=32", "data.batch_size=4", "model.num_classes=3", "model.embedding_dim=16",
            "model.layers=[1,1]", "model.widths=[8,16]", "train.epochs=1", "train.device=cpu",
            f"experiment.output_dir={tmp_path / 'runs'}"]
    for path in _evil_files(tmp_path / "evil", marker, {"teacher.pt2": "pt2", "teacher.pt": "torch_zip"}):
        res = CliRunner().invoke(app, ["train", "-c", "recognition/csdn_synth.yaml", *base, f"method.teacher={path}"])
        assert res.exit_code == 2, res.output
        _assert_clean(res.output, path, marker)


# ------------------------------------------------------------------------------------------ model.pretrained
def test_pretrained_weights_never_unpickle(tmp_path: Path, marker: Path) -> None:
    from openfas.models import create_model
    from openfas.models.ldcnet import PretrainedWeightsError

    for path in _evil_files(tmp_path, marker, {"r18.pth": "pickle", "r18.pt": "torch_zip",
                                               "r18.safetensors": "pickle", "r18.pt2": "pt2"}):
        with pytest.raises(PretrainedWeightsError) as err:
            create_model("ldcnet", pretrained=str(path))
        assert str(path) in str(err.value) and "\n" not in str(err.value)
        assert not marker.exists(), f"{path}: the payload ran"


# ------------------------------------------------------------------------------------------ method.init_from
def test_init_from_never_unpickles(tmp_path: Path, marker: Path) -> None:
    from openfas.engine.checkpoint import CheckpointError
    from openfas.methods.recognition import init_from_checkpoint
    from openfas.models import create_model

    model = create_model("iresnet", num_classes=3, embedding_dim=16, layers=[1, 1], widths=[8, 16], image_size=32)
    for path in _evil_files(tmp_path, marker, ANY_NAME):
        with pytest.raises(CheckpointError) as err:
            init_from_checkpoint(model, path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)
        assert not marker.exists(), f"{path}: the payload ran"


# ------------------------------------------------------------------------------------------ --resume
def test_resume_never_unpickles(tmp_path: Path, marker: Path) -> None:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    _torch_zip(run / "checkpoints" / "last.safetensors", marker)
    targets = [run, *_evil_files(tmp_path / "files", marker, ANY_NAME)]
    for target in targets:
        res = CliRunner().invoke(app, ["train", "--resume", str(target)])
        assert res.exit_code == 2, res.output
        _assert_clean(res.output, run / "checkpoints" / "last.safetensors" if target == run else target, marker)


# ------------------------------------------------------------------------------------------ deployment / eval
@pytest.mark.parametrize("command", [["predict", "{}", "{img}"], ["eval", "{}"], ["export", "{}", "--onnx", "{out}"],
                                     ["serve", "{}"], ["report", "{run}", "--checkpoint", "{}"],
                                     ["predict", "--embed", "{}", "{img}"]])
def test_model_file_commands_never_unpickle(command: list[str], tmp_path: Path, marker: Path) -> None:
    pytest.importorskip("onnxruntime")
    import cv2
    import numpy as np

    img = tmp_path / "face.png"
    cv2.imwrite(str(img), np.full((64, 64, 3), 128, np.uint8))
    run = tmp_path / "run"
    run.mkdir()
    for path in _evil_files(tmp_path / "evil", marker, ANY_NAME):
        args = [a.format(path, img=img, out=tmp_path / "out.onnx", run=run) for a in command]
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 2, (args, res.output)
        _assert_clean(res.output, path, marker)


def test_predictor_api_never_unpickles(tmp_path: Path, marker: Path) -> None:
    from openfas.deploy.predictor import Predictor
    from openfas.engine.checkpoint import CheckpointError, load_checkpoint

    for path in _evil_files(tmp_path, marker, ANY_NAME):
        for load in (Predictor.from_checkpoint, load_checkpoint):
            with pytest.raises(CheckpointError) as err:
                load(path)
            assert str(path) in str(err.value)
            assert not marker.exists(), f"{path}: the payload ran"
