"""Security regression tests (issue 15): no user file is ever unpickled.

Every path that reads a file named by the user (teacher, ``model.pretrained``, ``method.init_from``,
``--resume``, the checkpoint of predict / eval / export / serve / report) is fed crafted malicious files whose
payload (a ``__reduce__`` calling ``open(marker, "w")``) would create a marker file if it were unpickled. The
tests assert the marker never appears and that the error is one clean line naming the file. A first test proves
that the crafted files really are malicious: loaded the unsafe way, they create their marker.
"""

from __future__ import annotations

import contextlib
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
    from openfas.data.synth.identities import generate_identities

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
    from openfas.io.checkpoint import CheckpointError
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
    from openfas.io.checkpoint import CheckpointError, load_checkpoint

    for path in _evil_files(tmp_path, marker, ANY_NAME):
        for load in (Predictor.from_checkpoint, load_checkpoint):
            with pytest.raises(CheckpointError) as err:
                load(path)
            assert str(path) in str(err.value)
            assert not marker.exists(), f"{path}: the payload ran"


# ------------------------------------------------------------------------------------------ integrity (item 2)
def _safetensors_header(raw: bytes) -> tuple[dict, int]:
    """The JSON header of safetensors bytes, read by hand (8-byte little-endian length, then the JSON), and the
    offset where the tensor data starts; independent of the safetensors library the checkpoint code uses."""
    import struct

    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), 8 + n


def _edit_header(src: Path, dst: Path, edit) -> Path:  # noqa: ANN001
    """Rewrite the openfas JSON header of a safetensors file with ``edit(header)``; tensor bytes are copied."""
    import struct

    raw = src.read_bytes()
    st_header, data_start = _safetensors_header(raw)
    header = json.loads(st_header["__metadata__"]["openfas"])
    edit(header)
    st_header["__metadata__"]["openfas"] = json.dumps(header)
    blob = json.dumps(st_header).encode()
    blob += b" " * (-len(blob) % 8)
    dst.write_bytes(struct.pack("<Q", len(blob)) + blob + raw[data_start:])
    return dst


def _flip_last_byte(path: Path) -> Path:
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x01
    path.write_bytes(bytes(raw))
    return path


def _small_checkpoint(path: Path, **kw) -> Path:  # noqa: ANN003
    from openfas.io.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    meta = {"model": "pixelnet", "threshold": 0.25, "preprocess": {"image_size": 32, "mean": 0.5, "std": 0.5},
            "config": {"model": {"name": "pixelnet", "width": 8}}}
    return save_checkpoint(path, model_state=model.state_dict(), meta=meta, **kw)


def _to_legacy(header: dict) -> None:
    """What openfas wrote before the integrity digest: format /1 and the tensor SHA-256 only."""
    header["format"] = "openfas-checkpoint/1"
    del header["integrity"]


def test_integrity_digest_is_sha256_of_the_canonical_header(tmp_path: Path) -> None:
    import hashlib

    path = _small_checkpoint(tmp_path / "c.safetensors")
    header = json.loads(_safetensors_header(path.read_bytes())[0]["__metadata__"]["openfas"])
    body = {k: v for k, v in header.items() if k != "integrity"}
    expected = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert header["format"] == "openfas-checkpoint/2" and header["meta"]["threshold"] == 0.25
    assert header["integrity"] == {"alg": "sha256", "digest": expected}


@pytest.mark.parametrize("edit", [
    lambda h: h["meta"].__setitem__("threshold", -1000.0),  # every face accepted as live
    lambda h: h["meta"]["preprocess"].__setitem__("mean", 0.0),
    lambda h: h["meta"].__setitem__("model", "cdcn"),
    lambda h: h["meta"]["config"]["model"].__setitem__("width", 16),
    lambda h: h["meta"].__setitem__("extra_field", 1),
])
def test_edited_metadata_is_refused(edit, tmp_path: Path) -> None:  # noqa: ANN001
    from openfas.io.checkpoint import CheckpointError, load_checkpoint

    good = _small_checkpoint(tmp_path / "good.safetensors")
    assert load_checkpoint(good)["meta"]["threshold"] == 0.25
    bad = _edit_header(good, tmp_path / "bad.safetensors", edit)
    with pytest.raises(CheckpointError, match="bad.safetensors: the metadata does not match the integrity checksum"):
        load_checkpoint(bad)


def test_removed_or_downgraded_checksum_is_refused(tmp_path: Path) -> None:
    from openfas.io.checkpoint import CheckpointError, load_checkpoint

    good = _small_checkpoint(tmp_path / "good.safetensors")
    cases = {
        "no_integrity": lambda h: h.pop("integrity"),
        "no_sha256": lambda h: h.pop("sha256"),
        "no_checksums": lambda h: (h.pop("integrity"), h.pop("sha256")),
    }
    for name, edit in cases.items():
        bad = _flip_last_byte(_edit_header(good, tmp_path / f"{name}.safetensors", edit))  # altered weights too
        with pytest.raises(CheckpointError, match=f"{name}.safetensors: the integrity checksum is missing"):
            load_checkpoint(bad)
    # dressing the file up as a legacy one does not bypass the check either: that needs the explicit opt-in
    legacy = _flip_last_byte(_edit_header(good, tmp_path / "legacy.safetensors", _to_legacy))
    with pytest.raises(CheckpointError, match="legacy checkpoint .* --allow-unsigned"):
        load_checkpoint(legacy)
    with pytest.raises(CheckpointError, match="tensor data does not match"):
        load_checkpoint(legacy, allow_unsigned=True)  # the opt-in still checks the tensor checksum
    with pytest.raises(CheckpointError, match="tensor data does not match"):
        load_checkpoint(_flip_last_byte(_small_checkpoint(tmp_path / "w.safetensors")))


def test_legacy_checkpoints_load_only_with_the_explicit_opt_in(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from openfas.io.checkpoint import CheckpointIntegrityError, load_checkpoint

    good = _small_checkpoint(tmp_path / "good.safetensors")
    legacy = _edit_header(good, tmp_path / "legacy.safetensors", _to_legacy)
    with pytest.raises(CheckpointIntegrityError, match="legacy.safetensors: legacy checkpoint"):
        load_checkpoint(legacy)
    ck = load_checkpoint(legacy, allow_unsigned=True)
    assert torch.equal(ck["model"]["weight"], load_checkpoint(good)["model"]["weight"])
    monkeypatch.setenv("OPENFAS_ALLOW_UNSIGNED", "1")
    assert load_checkpoint(legacy)["meta"]["threshold"] == 0.25
    monkeypatch.delenv("OPENFAS_ALLOW_UNSIGNED")
    # CLI: refused (one line, exit 2), then `checkpoint sign` under the global flag rewrites it in the current format
    runner = CliRunner()
    res = runner.invoke(app, ["checkpoint", "sign", str(legacy), "--out", str(tmp_path / "signed.safetensors")])
    assert res.exit_code == 2 and "--allow-unsigned" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["--allow-unsigned", "checkpoint", "sign", str(legacy),
                              "--out", str(tmp_path / "signed.safetensors")])
    assert res.exit_code == 0, res.output
    signed = load_checkpoint(tmp_path / "signed.safetensors")  # no opt-in needed any more
    assert signed["meta"] == ck["meta"] and torch.equal(signed["model"]["bias"], ck["model"]["bias"])
    with pytest.raises(CheckpointIntegrityError):  # the flag of one command does not leak into the next
        runner.invoke(app, ["models"])
        load_checkpoint(legacy)


def test_legacy_real_checkpoint_through_predictor_and_cli(tiny_cache: Path, tmp_path: Path,
                                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    import cv2
    from deploy_fixtures import synth_face, tiny_checkpoint

    from openfas.deploy.predictor import Predictor
    from openfas.io.checkpoint import CheckpointError

    ckpt = tiny_checkpoint(tmp_path_factory.getbasetemp(), tiny_cache)
    legacy = _edit_header(ckpt, tmp_path / "legacy.safetensors", _to_legacy)
    with pytest.raises(CheckpointError, match="legacy checkpoint"):
        Predictor.from_checkpoint(legacy)
    assert Predictor.from_checkpoint(legacy, allow_unsigned=True).threshold == Predictor.from_checkpoint(ckpt).threshold
    img = tmp_path / "face.png"
    cv2.imwrite(str(img), synth_face())
    runner = CliRunner()
    res = runner.invoke(app, ["predict", str(legacy), str(img)])
    assert res.exit_code == 2 and "--allow-unsigned" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["--allow-unsigned", "predict", str(legacy), str(img)])
    assert res.exit_code == 0, res.output
    # a threshold edited to −1000 (every face live) is refused by the predictor and the CLI
    edited = _edit_header(ckpt, tmp_path / "edited.safetensors",
                          lambda h: h["meta"].__setitem__("threshold", -1000.0))
    with pytest.raises(CheckpointError, match="integrity checksum"):
        Predictor.from_checkpoint(edited)
    res = runner.invoke(app, ["predict", str(edited), str(img)])
    assert res.exit_code == 2 and "integrity checksum" in res.output and "Traceback" not in res.output


def test_hmac_key_signs_and_is_required_while_set(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    import hashlib

    from openfas.io.checkpoint import CheckpointIntegrityError, load_checkpoint

    monkeypatch.setenv("OPENFAS_CHECKPOINT_KEY", "s3cret")
    signed = _small_checkpoint(tmp_path / "signed.safetensors")
    assert load_checkpoint(signed)["meta"]["threshold"] == 0.25
    assert load_checkpoint(signed, key="s3cret")["meta"]["threshold"] == 0.25
    with pytest.raises(CheckpointIntegrityError, match="wrong key"):
        load_checkpoint(signed, key="other")

    def forge(h: dict) -> None:  # an attacker who edits the threshold and recomputes a plain SHA-256
        h["meta"]["threshold"] = -1000.0
        body = {k: v for k, v in h.items() if k != "integrity"}
        h["integrity"] = {"alg": "sha256", "digest": hashlib.sha256(
            json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()}

    forged = _edit_header(signed, tmp_path / "forged.safetensors", forge)
    with pytest.raises(CheckpointIntegrityError, match="not signed with a key"):
        load_checkpoint(forged)
    monkeypatch.delenv("OPENFAS_CHECKPOINT_KEY")
    assert load_checkpoint(forged)["meta"]["threshold"] == -1000.0  # without a key, only naive edits are caught
    with pytest.raises(CheckpointIntegrityError, match="signed with a key"):
        load_checkpoint(signed)
    assert load_checkpoint(_small_checkpoint(tmp_path / "k.safetensors", key=b"k"), key="k")["meta"]["model"] == \
        "pixelnet"


def test_a_key_refuses_legacy_files_even_with_allow_unsigned(tiny_cache: Path, tmp_path: Path,
                                                             tmp_path_factory: pytest.TempPathFactory,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    import cv2
    from deploy_fixtures import synth_face, tiny_checkpoint

    from openfas.deploy.export import export_onnx
    from openfas.deploy.predictor import Predictor
    from openfas.io.checkpoint import CheckpointIntegrityError, load_checkpoint

    ckpt = tiny_checkpoint(tmp_path_factory.getbasetemp(), tiny_cache)
    # an attacker relabels a file as the legacy format: threshold -1000, checksum removed
    forged = _edit_header(ckpt, tmp_path / "forged_legacy.safetensors",
                          lambda h: (_to_legacy(h), h["meta"].__setitem__("threshold", -1000.0)))
    good_onnx = tmp_path / "good.onnx"
    export_onnx(ckpt, good_onnx, verify=False)
    proto = onnx.load(str(good_onnx))
    props = {p.key: p.value for p in proto.metadata_props}
    props.pop("openfas_integrity")
    meta = json.loads(props["openfas"])
    meta.update(format="openfas-onnx/1", threshold=-1000.0)
    props["openfas"] = json.dumps(meta)
    del proto.metadata_props[:]
    for k, v in props.items():
        e = proto.metadata_props.add()
        e.key, e.value = k, v
    forged_onnx = tmp_path / "forged_legacy.onnx"
    onnx.save(proto, str(forged_onnx))
    assert load_checkpoint(forged, allow_unsigned=True)["meta"]["threshold"] == -1000.0  # no key: the opt-in loads it
    assert Predictor.from_checkpoint(forged_onnx, allow_unsigned=True).threshold == -1000.0

    monkeypatch.setenv("OPENFAS_CHECKPOINT_KEY", "k")
    for path in (forged, forged_onnx):
        with pytest.raises(CheckpointIntegrityError, match="refused while OPENFAS_CHECKPOINT_KEY is set"):
            Predictor.from_checkpoint(path, allow_unsigned=True)
    with pytest.raises(CheckpointIntegrityError, match="refused while OPENFAS_CHECKPOINT_KEY is set"):
        load_checkpoint(forged, allow_unsigned=True)
    img = tmp_path / "face.png"
    cv2.imwrite(str(img), synth_face())
    runner = CliRunner()
    for path in (forged, forged_onnx):
        res = runner.invoke(app, ["--allow-unsigned", "predict", str(path), str(img)])
        assert res.exit_code == 2 and "refused while OPENFAS_CHECKPOINT_KEY is set" in res.output, res.output
        _assert_clean(res.output, path, tmp_path / "no_marker")
    monkeypatch.setenv("OPENFAS_ALLOW_UNSIGNED", "1")
    res = runner.invoke(app, ["predict", str(forged), str(img)])
    assert res.exit_code == 2 and "refused while OPENFAS_CHECKPOINT_KEY is set" in res.output, res.output


def test_signing_under_a_key_verifies_what_it_signs_and_says_what_it_trusted(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    from openfas.io.checkpoint import CheckpointIntegrityError, load_checkpoint

    def forge(h: dict) -> None:  # an edited threshold with a recomputed plain SHA-256
        h["meta"]["threshold"] = -1000.0
        body = {k: v for k, v in h.items() if k != "integrity"}
        h["integrity"] = {"alg": "sha256", "digest": hashlib.sha256(
            json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()}

    plain = _small_checkpoint(tmp_path / "plain.safetensors")
    forged = _edit_header(plain, tmp_path / "forged.safetensors", forge)
    monkeypatch.setenv("OPENFAS_CHECKPOINT_KEY", "k")
    runner = CliRunner()
    out = tmp_path / "out.safetensors"
    res = runner.invoke(app, ["checkpoint", "sign", str(forged), "--out", str(out)])
    assert res.exit_code == 2 and "not signed with OPENFAS_CHECKPOINT_KEY" in res.output, res.output
    assert "--trust-unkeyed" in res.output and not out.exists()
    _assert_clean(res.output, forged, tmp_path / "no_marker")
    res = runner.invoke(app, ["--allow-unsigned", "checkpoint", "sign", str(forged), "--out", str(out)])
    assert res.exit_code == 2 and not out.exists(), res.output  # --allow-unsigned is not that statement
    # a file signed with the key is verified by its signature, then re-signed
    keyed = _small_checkpoint(tmp_path / "keyed.safetensors")
    res = runner.invoke(app, ["checkpoint", "sign", str(keyed), "--out", str(out)])
    assert res.exit_code == 0 and "trusted: its HMAC-SHA256 signature under OPENFAS_CHECKPOINT_KEY (verified)" in \
        res.output, res.output
    edited = _edit_header(keyed, tmp_path / "edited.safetensors", lambda h: h["meta"].__setitem__("threshold", -1.0))
    res = runner.invoke(app, ["checkpoint", "sign", str(edited), "--out", str(tmp_path / "o2.safetensors")])
    assert res.exit_code == 2 and "wrong key, or the file was altered" in res.output, res.output
    # the explicit statement of trust signs it, and says that only the plain digest was checked
    res = runner.invoke(app, ["checkpoint", "sign", "--trust-unkeyed", str(plain), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "trusted: its plain SHA-256 digest (verified: rules out corruption, not deliberate edits), on your word " \
           "(--trust-unkeyed)" in res.output
    assert load_checkpoint(out)["meta"]["threshold"] == 0.25
    with pytest.raises(CheckpointIntegrityError):
        load_checkpoint(forged)


def test_exported_onnx_is_sealed_and_edits_are_refused(tiny_cache: Path, tmp_path: Path,
                                                       tmp_path_factory: pytest.TempPathFactory) -> None:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from deploy_fixtures import tiny_checkpoint

    from openfas.deploy.export import export_onnx
    from openfas.deploy.predictor import Predictor
    from openfas.io.checkpoint import CheckpointIntegrityError

    good = tmp_path / "good.onnx"
    export_onnx(tiny_checkpoint(tmp_path_factory.getbasetemp(), tiny_cache), good, verify=False)
    threshold = Predictor.from_checkpoint(good).threshold

    def rewrite(name: str, edit) -> Path:  # noqa: ANN001
        proto = onnx.load(str(good))
        props = {p.key: p.value for p in proto.metadata_props}
        edit(props)
        del proto.metadata_props[:]
        for k, v in props.items():
            e = proto.metadata_props.add()
            e.key, e.value = k, v
        onnx.save(proto, str(tmp_path / name))
        return tmp_path / name

    def set_meta(props: dict, **changes) -> None:  # noqa: ANN003
        meta = json.loads(props["openfas"])
        meta.update(changes)
        props["openfas"] = json.dumps(meta)

    cases = {
        "threshold.onnx": (lambda p: set_meta(p, threshold=-1000.0), "does not match the integrity checksum"),
        "no_seal.onnx": (lambda p: p.pop("openfas_integrity"), "integrity checksum is missing"),
        "legacy.onnx": (lambda p: (p.pop("openfas_integrity"), set_meta(p, format="openfas-onnx/1")),
                        "legacy model file"),
    }
    for name, (edit, message) in cases.items():
        with pytest.raises(CheckpointIntegrityError, match=message):
            Predictor.from_checkpoint(rewrite(name, edit))
    assert Predictor.from_checkpoint(tmp_path / "legacy.onnx", allow_unsigned=True).threshold == threshold
    res = CliRunner().invoke(app, ["serve", str(tmp_path / "threshold.onnx")])
    assert res.exit_code == 2 and "integrity checksum" in res.output and "Traceback" not in res.output


# ------------------------------------------------------------------------------------------ CLI errors (item 3)
def _bad_cli_cases(tmp: Path, tiny_cache: Path, ckpt: Path) -> list[tuple[list[str], str]]:
    import cv2
    import numpy as np

    faces = tmp / "faces"
    for sub in ("live", "spoof/print"):
        (faces / sub).mkdir(parents=True)
        cv2.imwrite(str(faces / sub / "a.png"), np.full((64, 64, 3), 128, np.uint8))
    (tmp / "out_file").write_text("I am a file")
    (tmp / "not_weights.pth").write_text("hello, not a state dict")
    torch.save([torch.zeros(2)], str(tmp / "list.pth"))  # loads with weights_only, but is no state dict
    ldc = ["-c", "ldcnet/ldcnet_synth.yaml", f"data.cache={tiny_cache}", "data.image_size=32", "data.map_size=8",
           "train.device=cpu", f"experiment.output_dir={tmp / 'runs'}"]
    missing = tmp / "missing"
    return [
        (["train", "optim.lr=-0.1"], "optim.lr: Input should be greater than 0"),
        (["train", "data.batch_size=0"], "data.batch_size: Input should be greater than or equal to 1"),
        (["train", "-c", "cdcn/cdcn_synth.yaml", "model.theta=abc"], "option theta='abc': expected float"),
        (["train", "optim.name=lion"], "optim.name: unknown 'lion'"),  # any torch.optim class is accepted
        (["train", "optim.betas=[0.9,1.5]"], "optim.betas.1"),
        (["train", "model.name=nope"], "unknown model 'nope'"),
        (["train", "nokey=1"], "unknown key 'nokey'"),
        (["train", "-c", str(missing / "c.yaml")], "config file not found"),
        (["train", "data.cache=" + str(missing)], "no crop cache there"),
        (["train", *ldc, f"model.pretrained={tmp / 'not_weights.pth'}"], "not_weights.pth: cannot read pretrained"),
        (["train", *ldc, f"model.pretrained={tmp / 'list.pth'}"], "list.pth: expected a dict of tensors"),
        (["train", *ldc, f"model.pretrained={missing / 'r18.pth'}"], "r18.pth: pretrained weights file not found"),
        (["train", "--resume", str(missing)], "checkpoint not found"),
        (["data", "prepare", "folder", str(faces), str(tmp / "out_file")], "out_file: exists and is not a folder"),
        (["data", "inspect", str(missing)], "missing"),
        (["predict", str(missing / "m.safetensors"), str(faces / "live" / "a.png")], "model file not found"),
        (["eval", str(missing / "m.safetensors")], "checkpoint not found"),
        (["export", str(missing / "m.safetensors"), "--onnx", str(tmp / "m.onnx")], "checkpoint not found"),
        (["report", str(missing)], "missing"),
        (["compare", str(missing)], "missing"),
        (["checkpoint", "sign", str(missing / "m.safetensors")], "checkpoint not found"),
        *_more_bad_cli_cases(tmp, tiny_cache, ckpt),
    ]


def _more_bad_cli_cases(tmp: Path, tiny_cache: Path, ckpt: Path) -> list[tuple[list[str], str]]:
    """Output folders that are files, devices and models that cannot exist, unloadable detectors and teachers,
    values that are not numbers: each a one-line error, exit 2."""
    import cv2
    import numpy as np

    img = tmp / "faces" / "live" / "a.png"
    clip = tmp / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 64))
    for _ in range(3):
        writer.write(np.full((64, 64, 3), 128, np.uint8))
    writer.release()
    not_onnx = tmp / "not_a_model.onnx"
    not_onnx.write_text("hello, I am not an ONNX graph")
    bad_teacher = tmp / "teacher.safetensors"
    bad_teacher.write_text("hello, not a checkpoint")
    tampered = _edit_header(ckpt, tmp / "tampered_teacher.safetensors",
                            lambda h: h["meta"].__setitem__("threshold", -1000.0))
    file = tmp / "out_file"
    run = [f"data.cache={tiny_cache}", "data.image_size=32", "data.map_size=8", "model.width=8", "train.epochs=1",
           "train.device=cpu", f"experiment.output_dir={tmp / 'runs'}"]
    distill = ["-c", "light/minifasnet_distill_nuaa.yaml", *run[:3], "model.image_size=32", *run[4:]]
    return [
        (["train", *run, f"experiment.output_dir={file}"], "out_file: it exists and is not a folder"),
        (["train", *run, f"experiment.output_dir={file / 'runs'}"], "out_file exists and is not a folder"),
        (["train", *run, "--run-dir", str(file)], "--run-dir"),
        (["train", *run, "--run-dir", str(file / "run")], "out_file exists and is not a folder"),
        (["train", *run, "train.device=cuda:7"], "train.device='cuda:7'"),
        (["train", *run, "model.width=-4"], "model 'pixelnet' cannot be built with"),
        (["train", *distill, f"method.teacher={bad_teacher}"], "teacher.safetensors"),
        (["train", *distill, f"method.teacher={tampered}"], "integrity checksum"),
        (["predict", str(ckpt), str(img), "--device", "cuda:7"], "cuda:7"),
        (["predict", str(ckpt), str(img), "--out", str(file / "p.json")], "--out"),
        (["predict", str(ckpt), str(img), "--out", str(tmp)], "is a folder"),
        (["predict", str(ckpt), str(clip), "--every", "0"], "--every must be >= 1"),
        (["predict", str(ckpt), str(img), "--threshold", "nan"], "--threshold must be a finite number"),
        (["predict", str(ckpt), str(img), "--detector", f"yunet:{tmp / 'missing' / 'y.onnx'}"],
         "YuNet model file not found"),
        (["predict", str(ckpt), str(img), "--detector", f"yunet:{not_onnx}"], "cannot load it as a YuNet"),
        (["export", str(ckpt), "--onnx", str(file / "m.onnx")], "--onnx"),
        (["export", str(ckpt), "--onnx", str(tmp)], "is a folder"),
        (["serve", str(ckpt), "--port", "70000"], "--port must be in 0..65535"),
        (["serve", str(ckpt), "--max-upload-mb", "-1"], "--max-upload-mb must be a positive number"),
        (["serve", str(ckpt), "--detector", f"yunet:{not_onnx}"], "cannot load it as a YuNet"),
    ]


def test_bad_configurations_and_paths_give_one_line_errors(tiny_cache: Path, tmp_path: Path,
                                                          tmp_path_factory: pytest.TempPathFactory,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from deploy_fixtures import tiny_checkpoint

    monkeypatch.chdir(tmp_path)  # a command that wrongly starts training writes its run folder here
    uvicorn = pytest.importorskip("uvicorn")

    def service_started(*args, **kwargs) -> None:  # noqa: ANN002, ANN003 - a serve row that starts is a failure
        raise RuntimeError("the service started")

    monkeypatch.setattr(uvicorn, "run", service_started)
    ckpt = tiny_checkpoint(tmp_path_factory.getbasetemp(), tiny_cache)
    runner = CliRunner()
    failures = []
    for args, expected in _bad_cli_cases(tmp_path, tiny_cache, ckpt):
        res = runner.invoke(app, args)
        lines = [ln for ln in res.output.strip().splitlines() if ln.strip()]
        ok = (res.exit_code == 2 and isinstance(res.exception, SystemExit) and "Traceback" not in res.output
              and lines and lines[-1].startswith("error: ") and expected in lines[-1])
        if not ok:
            failures.append(f"{args}: exit {res.exit_code}, {type(res.exception).__name__}: {res.output[-300:]!r}")
    assert not failures, "\n".join(failures)


def test_a_real_process_prints_no_traceback(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1] / "src"))
    res = subprocess.run([sys.executable, "-m", "openfas.cli", "train", "optim.lr=-0.1"], capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=300)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip() == "error: <defaults>: optim.lr: Input should be greater than 0"


# ------------------------------------------------------------------------------------------ resume (items 4, 5)
TINY_RUN = ["data.image_size=32", "data.map_size=8", "model.width=8", "data.batch_size=4", "optim.lr=0.003",
            "train.log_every=1", "eval.report=false", "train.device=cpu"]


def test_resume_needs_only_the_run_folder(tiny_cache: Path, tmp_path: Path) -> None:
    from openfas.config import load_config
    from openfas.engine.trainer import Trainer
    from openfas.io.checkpoint import load_checkpoint

    run = tmp_path / "run"
    overrides = [f"data.cache={tiny_cache}", *TINY_RUN, "train.epochs=1"]
    Trainer(load_config(None, overrides), run_dir=run, progress=False).fit()
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--resume", str(run), "--no-progress"])  # the README's command
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["train", "--resume", str(run), *overrides, "--no-progress"])  # the same config: fine
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["train", "--resume", str(run), "optim.lr=0.1", "--no-progress"])
    assert res.exit_code == 2 and "optim.lr: 0.003 → 0.1" in res.output and "--allow-override" in res.output
    res = runner.invoke(app, ["train", "--resume", str(run), "eval.video_level=false", "--allow-override",
                              "--no-progress"])
    assert res.exit_code == 0, res.output
    assert json.loads((run / "metrics.json").read_text())["headline"]["level"] == "frame"  # the override applied
    assert load_checkpoint(run / "checkpoints" / "final.safetensors")["meta"]["config"]["eval"]["video_level"] is False


def test_resume_after_a_crash_cleans_temp_files_and_does_not_log_steps_twice(tiny_cache: Path, tmp_path: Path,
                                                                                monkeypatch: pytest.MonkeyPatch
                                                                                ) -> None:
    from openfas.config import load_config
    from openfas.engine.trainer import Trainer

    cfg = load_config(None, [f"data.cache={tiny_cache}", *TINY_RUN, "train.epochs=1", "train.save_every_steps=3"])
    full = tmp_path / "full"
    Trainer(cfg, run_dir=full, progress=False).fit()

    class Killed(Exception):
        pass

    original = Trainer._check_finite

    def die_at_step_8(self, loss, stage):  # noqa: ANN001, ANN202 - the process "dies" before step 8 finishes
        if self.state.global_step == 7:
            raise Killed
        return original(self, loss, stage)

    crashed = tmp_path / "crashed"
    monkeypatch.setattr(Trainer, "_check_finite", die_at_step_8)
    with pytest.raises(Killed):
        Trainer(cfg, run_dir=crashed, progress=False).fit()
    monkeypatch.setattr(Trainer, "_check_finite", original)
    stale = crashed / "checkpoints" / "last.safetensors.x1y2z3.tmp"
    stale.write_bytes(b"")  # what a kill during os.replace's preparation leaves

    def train_rows(run: Path) -> list[tuple[int, float]]:
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        return [(r["step"], r["loss"]) for r in rows if r["phase"] == "train"]

    assert [s for s, _ in train_rows(crashed)] == list(range(1, 8))  # logged up to step 7, checkpoint at step 6
    Trainer(cfg, resume=crashed, progress=False).fit()
    assert not stale.exists()
    assert train_rows(crashed) == train_rows(full)  # every step once, with the uninterrupted run's losses
    csv_steps = [int(line.split(",")[2]) for line in (crashed / "scalars.csv").read_text().splitlines()]
    assert csv_steps == [int(line.split(",")[2]) for line in (full / "scalars.csv").read_text().splitlines()]


def test_resume_of_a_run_killed_during_its_first_checkpoint_write(tmp_path: Path) -> None:
    from openfas.config import load_config
    from openfas.engine.trainer import Trainer
    from openfas.io.checkpoint import CheckpointError

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(load_config(None, TINY_RUN).to_dict()))
    (run / "metrics.jsonl").write_text('{"phase": "train", "step": 1, "loss": 0.5}\n')
    partial = run / "checkpoints" / "last.safetensors.k3j9x_q1.tmp"
    partial.write_bytes(b"")  # the kill came before save_file wrote anything
    res = CliRunner().invoke(app, ["train", "--resume", str(run), "--no-progress"])
    assert res.exit_code == 2
    out = " ".join(res.output.split())  # the message may be wrapped
    assert "checkpoint not found" not in out
    assert "no complete checkpoint" in out and "first checkpoint write was interrupted" in out
    assert partial.name in out and not partial.exists()
    assert f"openfas train -c {run / 'config.json'}" in out
    assert sorted(p.name for p in run.rglob("*")) == ["checkpoints", "config.json", "metrics.jsonl"]
    with pytest.raises(CheckpointError, match=r"no checkpoint to resume from .*stopped before its first checkpoint"):
        Trainer(load_config(None, TINY_RUN), resume=run, progress=False)  # a second try: nothing left to remove


def test_logs_of_checkpoints_without_row_counts_are_cut_at_the_step(tmp_path: Path) -> None:
    from openfas.engine.logger import RunLogger

    lines = [json.dumps({"phase": "train", "step": s, "loss": 1.0 / s}) + "\n" for s in range(1, 9)]
    (tmp_path / "metrics.jsonl").write_text("".join(lines) + '{"phase": "tr')  # and a half-written line
    (tmp_path / "scalars.csv").write_text("".join(f"0.0,train,{s},loss,{1.0 / s}\n" for s in range(1, 9)))
    logger = RunLogger(tmp_path, tensorboard=False, resume={"step": 5, "rows": None})
    assert (tmp_path / "metrics.jsonl").read_text() == "".join(lines[:5])
    assert [ln.split(",")[2] for ln in (tmp_path / "scalars.csv").read_text().splitlines()] == ["1", "2", "3", "4",
                                                                                                 "5"]
    assert logger.rows == {"metrics.jsonl": 5, "scalars.csv": 5}


@pytest.mark.parametrize("rows", [None, {"scalars.csv": 5}])
def test_resume_keeps_the_kept_scalars_rows_byte_for_byte(tmp_path: Path, rows: dict[str, int] | None) -> None:
    from openfas.engine.logger import RunLogger

    crlf = [f"1700000000.{s},train,{s},loss,{1.0 / s}\r\n".encode() for s in range(1, 9)]  # csv.writer's rows
    (tmp_path / "scalars.csv").write_bytes(b"".join(crlf))
    logger = RunLogger(tmp_path, tensorboard=False, resume={"step": 5, "rows": rows})
    assert (tmp_path / "scalars.csv").read_bytes() == b"".join(crlf[:5])
    assert logger.rows["scalars.csv"] == 5
    logger.scalars(6, {"loss": 0.25})
    assert (tmp_path / "scalars.csv").read_bytes().startswith(b"".join(crlf[:5]) + b"1")  # appended after them


# ------------------------------------------------------------------------------------------ HTTP service (6-9)
@pytest.fixture(scope="module")
def served_predictor(tiny_cache: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    pytest.importorskip("multipart")
    from deploy_fixtures import tiny_checkpoint

    from openfas.deploy.predictor import Predictor

    torch.set_num_threads(1)
    return Predictor.from_checkpoint(tiny_checkpoint(tmp_path_factory.getbasetemp(), tiny_cache))


def _face_png() -> bytes:
    import cv2
    from deploy_fixtures import faces_scene

    return cv2.imencode(".png", faces_scene(1, 100))[1].tobytes()


def _multipart(data: bytes, boundary: str = "openfasboundary") -> tuple[bytes, str]:
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_chunked_upload_over_the_limit_is_413(served_predictor) -> None:  # noqa: ANN001
    from fastapi.testclient import TestClient

    from openfas.deploy.server import ServeSettings, create_app

    limit = 200_000
    client = TestClient(create_app(served_predictor, ServeSettings(max_upload_bytes=limit)))

    def chunks(body: bytes, size: int = 16_384):  # noqa: ANN202 - a generator: httpx sends it chunked
        for i in range(0, len(body), size):
            yield body[i:i + size]

    big, ctype = _multipart(b"\x89PNG\r\n\x1a\n" + b"\x00" * (limit + 200_000))
    res = client.post("/v1/liveness", content=chunks(big), headers={"content-type": ctype})
    assert "content-length" not in {k.lower() for k in res.request.headers}  # really a chunked upload
    assert res.status_code == 413, res.text
    assert res.json()["error"]["code"] == "file_too_large"
    small, ctype = _multipart(_face_png())
    ok = client.post("/v1/liveness", content=chunks(small), headers={"content-type": ctype})
    assert ok.status_code == 200 and len(ok.json()["faces"]) == 1


def test_bad_requests_are_refused_before_taking_a_slot(served_predictor, tmp_path: Path) -> None:  # noqa: ANN001
    import threading
    import time

    import cv2
    import numpy as np
    from deploy_fixtures import GatedBackend
    from fastapi.testclient import TestClient

    from openfas.deploy.predictor import Predictor
    from openfas.deploy.server import ServeSettings, create_app

    gated = Predictor(GatedBackend(served_predictor.backend), served_predictor.meta)
    app = create_app(gated, ServeSettings(max_concurrency=1, max_queue=0, max_side=1000))
    png = _face_png()
    wide = cv2.imencode(".png", np.zeros((8, 1200, 3), np.uint8))[1].tobytes()
    bad = {"text": (b"hello, I am not an image", 415), "truncated": (png[: len(png) // 2], 422),
           "too_wide": (wide, 413), "empty": (b"", 400)}
    first: list[int] = []
    with TestClient(app) as c:
        t = threading.Thread(target=lambda: first.append(
            c.post("/v1/liveness", files={"image": ("a.png", png)}).status_code))
        t.start()
        assert gated.backend.entered.wait(20)  # the only slot is taken by a good request
        for name, (data, status) in bad.items():
            res = c.post("/v1/liveness", files={"image": (f"{name}.png", data)})
            assert res.status_code == status, (name, res.text)  # validated without a slot (not 503)
        busy = c.post("/v1/liveness", files={"image": ("b.png", png)})
        assert busy.status_code == 503  # the slot really was taken
        gated.backend.release.set()
        t.join(30)
        deadline = time.time() + 10
        while c.get("/healthz").json()["in_flight"] and time.time() < deadline:
            time.sleep(0.01)
        assert c.get("/healthz").json()["in_flight"] == 0
    assert first == [200]


def test_security_headers_csp_no_server_banner_and_no_cdn_docs(served_predictor) -> None:  # noqa: ANN001
    import base64
    import hashlib
    import re

    from fastapi.testclient import TestClient

    from openfas.deploy.server import ServeSettings, create_app, index_html

    client = TestClient(create_app(served_predictor))
    page = client.get("/")
    csp = page.headers["content-security-policy"]
    for tag in ("script", "style"):
        (block,) = re.findall(rf"<{tag}>(.*?)</{tag}>", index_html(), flags=re.S)
        digest = base64.b64encode(hashlib.sha256(block.encode()).digest()).decode()
        assert f"{tag}-src 'sha256-{digest}'" in csp
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert "http" not in csp  # nothing from elsewhere
    for res in (page, client.get("/healthz"), client.post("/v1/liveness", files={"image": ("a", b"x")})):
        assert res.headers["x-content-type-options"] == "nosniff"
        assert res.headers["x-frame-options"] == "DENY"
        assert "server" not in res.headers
    assert client.get("/healthz").headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert client.get("/docs").status_code == 404 and client.get("/redoc").status_code == 404
    assert client.get("/openapi.json").status_code == 200
    with_docs = TestClient(create_app(served_predictor, ServeSettings(docs=True)))
    assert with_docs.get("/docs").status_code == 200


def test_serve_runs_uvicorn_without_a_server_banner(served_predictor, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    import socket
    import threading
    import time

    import httpx
    import uvicorn

    from openfas.deploy import server

    captured: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: captured.update(app=app, **kw))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server.serve(served_predictor, "127.0.0.1", port)
    app = captured.pop("app")
    real = uvicorn.Server(uvicorn.Config(app, **{**captured, "log_level": "warning"}))  # exactly serve()'s settings
    thread = threading.Thread(target=real.run, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 20
        while not real.started and time.time() < deadline:
            time.sleep(0.05)
        res = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert res.status_code == 200 and "server" not in res.headers
        assert res.headers["x-content-type-options"] == "nosniff"
    finally:
        real.should_exit = True
        thread.join(10)


def test_error_messages_hold_no_object_addresses(served_predictor) -> None:  # noqa: ANN001
    from fastapi.testclient import TestClient

    from openfas.deploy.server import create_app

    client = TestClient(create_app(served_predictor))
    res = client.post("/v1/liveness", files={"image": ("a.png", b"hello, I am not an image")})
    assert res.status_code == 415
    message = res.json()["error"]["message"]
    assert "0x" not in message and "object at" not in message and "_io" not in message, message
    assert "b'hello, I'" in message and "24-byte" in message  # what the user sent


def test_rebuilding_a_checkpoint_reads_no_file_its_config_names(tmp_path: Path, marker: Path) -> None:
    from openfas.config import load_config
    from openfas.io.checkpoint import save_checkpoint
    from openfas.methods.restore import build_model_from_checkpoint
    from openfas.models import create_model

    evil = _pickle_file(tmp_path / "r18.pth", marker)
    cfg = load_config("ldcnet/ldcnet_synth.yaml", [f"model.pretrained={evil}"]).to_dict()
    model = create_model("ldcnet", **{k: v for k, v in cfg["model"].items() if k not in ("name", "pretrained")})
    path = save_checkpoint(tmp_path / "ldc.safetensors", model_state=model.state_dict(),
                           meta={"model": "ldcnet", "config": cfg})
    evil.unlink()  # the training machine's file is not here (and a planted one is not read either)
    rebuilt, info = build_model_from_checkpoint(path)
    assert info["meta"]["config"]["model"]["pretrained"] == str(evil)  # the record is kept as it was
    for k, v in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[k], v), k
    _pickle_file(evil, marker)
    build_model_from_checkpoint(path)
    assert not marker.exists()


# ------------------------------------------------------------------------------------------ decode bombs, slow clients
def _png_declaring(width: int, height: int, bit_depth: int = 8, color_type: int = 0) -> bytes:
    """A small PNG whose header declares ``width``×``height`` pixels (its data is a few zero rows)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 4096))
            + chunk(b"IEND", b""))


def test_a_decode_bomb_is_refused_before_decoding_by_prepare_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    import cv2
    import numpy as np

    from openfas.data.cache import CropCacheReader
    from openfas.data.video import MediaError, read_image

    root = tmp_path / "faces"
    for sub in ("live/alice", "spoof/print/alice"):
        (root / sub).mkdir(parents=True)
        cv2.imwrite(str(root / sub / "ok.png"), np.full((64, 64, 3), 128, np.uint8))
    bomb = root / "live" / "alice" / "bomb.png"
    bomb.write_bytes(_png_declaring(20000, 20000))
    decoded: list[int] = []
    real_imdecode = cv2.imdecode

    def watching_imdecode(buf, flags):  # noqa: ANN001, ANN202 - never lets the bomb allocate its pixels
        if bytes(np.asarray(buf)[:8]) == b"\x89PNG\r\n\x1a\n" and int.from_bytes(bytes(np.asarray(buf)[16:20]),
                                                                                   "big") == 20000:
            decoded.append(1)
            return None
        return real_imdecode(buf, flags)

    monkeypatch.setattr(cv2, "imdecode", watching_imdecode)
    with pytest.raises(MediaError, match=r"bomb.png: image is too large|bomb.png: image has 400000000 pixels"):
        read_image(bomb)
    out = tmp_path / "cache"
    res = CliRunner().invoke(app, ["data", "prepare", "folder", str(root), str(out), "-o", "faces=whole",
                                   "--size", "32"])
    assert res.exit_code == 0, res.output
    assert not decoded, "the decoder was handed the 20000×20000 image"
    status = CropCacheReader(out).media_status()
    (why,) = [v["skipped"] for k, v in status.items() if "bomb" in k]
    assert "too large" in why or "pixels" in why, why
    assert sum(1 for v in status.values() if not v.get("skipped")) == 2  # the good files are cached


@contextlib.contextmanager
def _live_service(predictor, settings):  # noqa: ANN001, ANN202
    """The real service (serve()'s own uvicorn settings) on 127.0.0.1 in a thread; yields (host, port)."""
    import socket
    import threading
    import time
    from unittest import mock

    import uvicorn

    from openfas.deploy import server

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    captured: dict = {}
    with mock.patch.object(uvicorn, "run", lambda app, **kw: captured.update(app=app, **kw)):
        server.serve(predictor, "127.0.0.1", port, settings)
    application = captured.pop("app")
    real = uvicorn.Server(uvicorn.Config(application, **{**captured, "log_level": "warning"}))
    thread = threading.Thread(target=real.run, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 20
        while not real.started and time.time() < deadline:
            time.sleep(0.05)
        assert real.started
        yield "127.0.0.1", port
    finally:
        real.should_exit = True
        thread.join(10)
        real.force_exit = True
        thread.join(10)


def test_service_refuses_16_bit_images_and_frees_a_worker_after_its_time(served_predictor) -> None:  # noqa: ANN001
    import time

    import cv2
    import httpx
    import numpy as np

    from openfas.deploy.predictor import Predictor
    from openfas.deploy.server import ServeSettings

    sixteen = cv2.imencode(".png", np.full((1024, 1024), 30000, np.uint16))[1].tobytes()
    with _live_service(served_predictor, ServeSettings(max_concurrency=1, max_queue=0)) as (host, port):
        res = httpx.post(f"http://{host}:{port}/v1/liveness", files={"image": ("a.png", sixteen)}, timeout=30)
        assert res.status_code == 415 and res.json()["error"]["code"] == "unsupported_bit_depth", res.text

    class SlowDetector:  # an image whose detection takes longer than the service allows
        def detect(self, image):  # noqa: ANN001, ANN202
            time.sleep(1.5)
            return [served_predictor.detect(image)[0]] if served_predictor.detect(image) else []

    class CountingBackend:
        def __init__(self, inner) -> None:  # noqa: ANN001
            self.inner, self.name, self.calls = inner, inner.name, 0

        def run(self, batch):  # noqa: ANN001, ANN202
            self.calls += 1
            return self.inner.run(batch)

    slow = Predictor(CountingBackend(served_predictor.backend), served_predictor.meta, detector=SlowDetector())
    with _live_service(slow, ServeSettings(max_concurrency=1, max_queue=0, work_timeout_s=0.5)) as (host, port):
        t0 = time.monotonic()
        res = httpx.post(f"http://{host}:{port}/v1/liveness", files={"image": ("a.png", _face_png())}, timeout=30)
        assert res.status_code == 503 and res.json()["error"]["code"] == "timeout", res.text
        assert time.monotonic() - t0 < 5
        assert slow.backend.calls == 0  # stopped after detection: the worker did not go on to the model
        assert httpx.get(f"http://{host}:{port}/healthz", timeout=10).json()["in_flight"] == 0


def test_framework_errors_use_the_documented_error_body(served_predictor) -> None:  # noqa: ANN001
    import httpx

    from openfas.deploy.server import ServeSettings

    many = "&".join(f"f{i}=x" for i in range(1200))
    fields = "".join(f"--b\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\nx\r\n" for i in range(1200))
    cases = {
        "no boundary": (b"--b\r\n", "multipart/form-data"),
        "invalid multipart": (b"--b\r\nnot a part header\r\n\r\n\r\n--b--\r\n", "multipart/form-data; boundary=b"),
        "over 1000 fields": ((fields + "--b--\r\n").encode(), "multipart/form-data; boundary=b"),
        "over 1000 urlencoded fields": (many.encode(), "application/x-www-form-urlencoded"),
    }
    with _live_service(served_predictor, ServeSettings()) as (host, port):
        for name, (body, ctype) in cases.items():
            res = httpx.post(f"http://{host}:{port}/v1/liveness", content=body, headers={"content-type": ctype},
                             timeout=30)
            assert res.status_code == 400, (name, res.text)
            assert "detail" not in res.json() and res.json()["error"]["code"] == "bad_request", (name, res.text)


def test_slow_clients_are_cut_off_while_good_requests_are_served(served_predictor) -> None:  # noqa: ANN001
    import socket
    import time

    import httpx

    from openfas.deploy.server import ServeSettings

    settings = ServeSettings(header_timeout_s=1.0, body_timeout_s=1.0)
    with _live_service(served_predictor, settings) as (host, port):
        slow_headers, slow_bodies = [], []
        for _ in range(20):
            s = socket.create_connection((host, port), timeout=10)
            s.sendall(b"POST /v1/liveness HTTP/1.1\r\nHost: x\r\n")
            slow_headers.append(s)
        for _ in range(10):
            s = socket.create_connection((host, port), timeout=10)
            s.sendall(b"POST /v1/liveness HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                      b"Content-Length: 100000\r\n\r\n--b\r\n")
            slow_bodies.append(s)
        ok = httpx.post(f"http://{host}:{port}/v1/liveness", files={"image": ("a.png", _face_png())}, timeout=30)
        assert ok.status_code == 200
        t0 = time.monotonic()
        for s in slow_headers + slow_bodies:  # each keeps trickling one byte a while
            try:
                s.sendall(b"X")
            except OSError:
                pass
        answers = []
        for s in slow_headers + slow_bodies:
            data = b""
            try:
                while chunk := s.recv(65536):  # returns b"" once the server closed the connection
                    data += chunk
                    if time.monotonic() - t0 > 8:
                        break
            except OSError:
                pass
            answers.append(data)
            s.close()
        assert time.monotonic() - t0 < 8, "slow connections were not closed"
        assert all(a == b"" for a in answers[:20]), answers[:20]
        assert all(a.startswith(b"HTTP/1.1 408") and b"request_timeout" in a for a in answers[20:]), answers[20:]


def test_packaged_configs_do_not_offer_code_formats_as_teachers() -> None:
    import re

    import openfas

    bad = []
    configs = sorted((Path(openfas.__file__).parent / "configs").rglob("*.yaml"))
    assert any(p.name == "csdn_synth.yaml" for p in configs)
    for path in configs:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if "teacher" in line and re.search(r"\.pt2?\b|TorchScript", line) and "refused" not in line:
                bad.append(f"{path.name}:{n}: {line.strip()}")
    assert not bad, "\n".join(bad)
