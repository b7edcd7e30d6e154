"""Site calibration (`openfas calibrate`): the threshold rule against a brute-force search, the rewritten
checkpoint / ONNX file (weights unchanged, metadata sealed), the CLI's decisions and its bad-input errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from deploy_fixtures import synth_face, tiny_checkpoint
from typer.testing import CliRunner

from openfas.cli import app
from openfas.deploy.calibrate import CalibrationError, rejected_share, site_threshold
from openfas.deploy.predictor import Predictor
from openfas.io.checkpoint import CheckpointError, load_checkpoint


@pytest.fixture(scope="module")
def ckpt(tiny_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return tiny_checkpoint(tmp_path_factory.getbasetemp(), tiny_cache)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """30 'live' face images and 8 'attack' images (blurred, washed-out faces) of a pretend deployment site."""
    root = tmp_path_factory.mktemp("site")
    live, attack = root / "live", root / "attack"
    live.mkdir()
    attack.mkdir()
    for i in range(30):
        cv2.imwrite(str(live / f"p{i:02d}.png"), synth_face(100 + i, 64))
    for i in range(8):
        face = cv2.GaussianBlur(synth_face(200 + i, 64), (7, 7), 2.0)
        cv2.imwrite(str(attack / f"a{i}.png"), cv2.addWeighted(face, 0.6, np.full_like(face, 230), 0.4, 0))
    return live, attack


def test_threshold_is_the_largest_that_keeps_bpcer_within_target() -> None:
    s = np.array([0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 0.0])
    assert site_threshold(s, 0.2) == 0.2  # sorted: 0.0 0.1 | 0.2 ...: two of ten below
    assert rejected_share(s, 0.2) == pytest.approx(0.2)
    assert site_threshold(s, 0.25) == 0.2  # floor(2.5) = 2
    assert site_threshold(s, 0.0) == 0.0  # nothing rejected
    rng = np.random.default_rng(0)
    for n, target in [(37, 0.05), (200, 0.1), (51, 0.33)]:
        x = rng.random(n)
        t = site_threshold(x, target)
        # brute force over every candidate threshold: the largest one whose rejected share is within the target
        best = max(c for c in x if (x < c).mean() <= target)
        assert t == best
        assert rejected_share(x, t) == pytest.approx(math.floor(target * n) / n)
    ties = np.array([0.5] * 10 + [0.9] * 10)
    assert site_threshold(ties, 0.3) == 0.5 and rejected_share(ties, 0.5) == 0.0


@pytest.mark.parametrize("scores,target", [([0.1, 0.2], 1.0), ([0.1], -0.1), ([], 0.05), ([0.1, float("nan")], 0.1)])
def test_threshold_rejects_bad_input(scores: list[float], target: float) -> None:
    with pytest.raises(CalibrationError):
        site_threshold(scores, target)


def test_calibrate_cli_writes_a_calibrated_checkpoint(ckpt: Path, site: tuple[Path, Path], tmp_path: Path) -> None:
    live, attack = site
    out = tmp_path / "site.safetensors"
    (live / "broken.png").write_bytes(b"\x89PNG broken")  # counted as unreadable, not fatal
    runner = CliRunner()
    res = runner.invoke(app, ["calibrate", str(ckpt), str(live), "--attack", str(attack), "--out", str(out),
                              "--target-bpcer", "0.5", "--detector", "whole", "--no-progress"])
    (live / "broken.png").unlink()
    assert res.exit_code == 0, res.output
    assert "30 scored, 0 without a face, 1 unreadable" in res.output
    # independent truth: the deployed predictor's own scores of the same files, sorted by hand
    p = Predictor.from_checkpoint(ckpt, detector="whole")
    live_scores = np.array([p.predict(f).faces[0].score for f in sorted(live.iterdir())])
    attack_scores = np.array([p.predict(f).faces[0].score for f in sorted(attack.iterdir())])
    ranked = np.sort(live_scores)
    expected = ranked[15]  # floor(0.5 * 30) = 15
    assert ranked[14] < expected  # distinct scores around the cut, so exactly 15 fall below it
    new = load_checkpoint(out)
    old = load_checkpoint(ckpt)
    assert new["meta"]["threshold"] == pytest.approx(expected, abs=1e-7)
    info = new["meta"]["threshold_info"]
    assert info["policy"] == "site_bpcer" and info["n_live"] == 30 and info["n_attack"] == 8
    assert info["live_unreadable"] == 1
    assert info["bpcer"] == pytest.approx(15 / 30)
    assert info["apcer"] == pytest.approx(float((attack_scores >= expected).mean()))
    assert info["previous"]["threshold"] == pytest.approx(old["meta"]["threshold"])
    assert info["previous_bpcer"] == pytest.approx(float((live_scores < old["meta"]["threshold"]).mean()))
    assert set(new["model"]) == set(old["model"])
    assert all(torch.equal(new["model"][k], old["model"][k]) for k in old["model"])
    # the calibrated copy decides with the new threshold: exactly 15 of the 30 live images are rejected
    res = runner.invoke(app, ["predict", str(out), str(live), "--detector", "whole", "--no-progress", "--explain"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)["results"]
    assert sum(r["live"] is False for r in rows) == 15 and len(rows) == 30
    assert "site calibration: BPCER 50.0 % on 30 live faces (target 50.0 %), APCER" in res.stderr


def test_calibrate_onnx_keeps_the_graph_and_reseals(ckpt: Path, site: tuple[Path, Path], tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from openfas.deploy.export import export_onnx

    onnx_path = tmp_path / "m.onnx"
    export_onnx(ckpt, onnx_path)
    out = tmp_path / "m-site.onnx"
    res = CliRunner().invoke(app, ["calibrate", str(onnx_path), str(site[0]), "--out", str(out),
                                   "--detector", "whole", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "APCER is unknown" in res.output  # no attacks given
    assert "rests on 1 rejected live face(s)" in res.output  # floor(0.05 * 30) = 1 < 5: warned
    a = Predictor.from_checkpoint(onnx_path, detector="whole")
    b = Predictor.from_checkpoint(out, detector="whole")
    scores = np.array([a.predict(f).faces[0].score for f in sorted(site[0].iterdir())])
    assert b.threshold == pytest.approx(np.sort(scores)[1], abs=1e-7)  # floor(0.05 * 30) = 1
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    assert np.array_equal(a.backend.run(x)[0], b.backend.run(x)[0])
    raw = out.read_bytes()
    tampered = tmp_path / "tampered.onnx"
    tampered.write_bytes(raw.replace(b'"site_bpcer"', b'"site_bpcex"'))
    with pytest.raises(CheckpointError):
        Predictor.from_checkpoint(tampered, detector="whole")
    # a tampered model is refused before anything is scored or written
    res = CliRunner().invoke(app, ["calibrate", str(tampered), str(site[0]), "--out", str(tmp_path / "t2.onnx"),
                                   "--detector", "whole", "--no-progress"])
    assert res.exit_code == 2 and "tampered.onnx" in res.output and not (tmp_path / "t2.onnx").exists()


def test_calibrate_cli_bad_inputs(ckpt: Path, site: tuple[Path, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    empty = tmp_path / "empty"
    empty.mkdir()
    res = runner.invoke(app, ["calibrate", str(ckpt), str(empty), "--out", str(tmp_path / "o.safetensors")])
    assert res.exit_code == 2 and "no image or video files" in res.output and "empty" in res.output
    few = tmp_path / "few"
    few.mkdir()
    for f in sorted(site[0].iterdir())[:5]:
        (few / f.name).write_bytes(f.read_bytes())
    res = runner.invoke(app, ["calibrate", str(ckpt), str(few), "--out", str(tmp_path / "o.safetensors"),
                              "--detector", "whole", "--no-progress"])
    assert res.exit_code == 2 and "only 5 live face(s)" in res.output
    assert not (tmp_path / "o.safetensors").exists()
    res = runner.invoke(app, ["calibrate", str(ckpt), str(site[0]), "--out", str(ckpt), "--detector", "whole"])
    assert res.exit_code == 2 and "must be a new file" in res.output
    # a wrong output format is refused before the folder is scored (nothing scored is lost after the fact)
    res = runner.invoke(app, ["calibrate", str(ckpt), str(site[0]), "--out", str(tmp_path / "o.onnx"),
                              "--detector", "whole", "--no-progress"])
    assert res.exit_code == 2 and "o.onnx: a checkpoint is written to a .safetensors file" in res.output
    assert "scored" not in res.output
    res = runner.invoke(app, ["calibrate", str(ckpt), str(site[0]), "--out", str(tmp_path / "o.safetensors"),
                              "--target-bpcer", "1.5"])
    assert res.exit_code == 2 and "--target-bpcer" in res.output
    res = runner.invoke(app, ["calibrate", str(ckpt), str(tmp_path / "nope"), "--out", str(tmp_path / "o.safetensors")])
    assert res.exit_code == 2 and "not found" in res.output
