"""Threshold calibration on a perfectly separated dev set: the documented midpoint rule, the record of how the
threshold was chosen (metrics, checkpoint, ONNX) and the warnings of `openfas predict --explain`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from openfas.eval import metrics as M
from openfas.eval.scores import ScoreTable, calibrate_separated, evaluate_tables
from openfas.io.checkpoint import load_checkpoint, save_checkpoint


def _table(scores, labels, attacks, videos=None) -> ScoreTable:  # noqa: ANN001
    n = len(scores)
    videos = videos if videos is not None else [f"v{i}" for i in range(n)]
    return ScoreTable([f"s{i}" for i in range(n)], list(videos), ["d"] * n, list(attacks), np.asarray(labels),
                      np.asarray(scores, dtype=float))


# dev: live 0.9 0.8 0.7, attacks 0.3 0.2 0.1 → separated, gap (0.3, 0.7), midpoint 0.5
SEP = _table([0.9, 0.8, 0.7, 0.3, 0.2, 0.1], [1, 1, 1, 0, 0, 0], ["live"] * 3 + ["print"] * 3)
# test: a new session whose live faces score lower: 0.6 0.45 0.65 0.35 | attacks 0.25 0.1
TEST = _table([0.6, 0.45, 0.65, 0.35, 0.25, 0.1], [1, 1, 1, 1, 0, 0], ["live"] * 4 + ["print"] * 2)


def test_separation_gap_by_hand() -> None:
    assert M.separation_gap([0.9, 0.8, 0.7, 0.3, 0.2, 0.1], [1, 1, 1, 0, 0, 0]) == (0.3, 0.7, True)
    assert M.separation_gap([0.9, 0.25, 0.3, 0.2], [1, 1, 0, 0]) == (0.3, 0.25, False)
    assert M.separation_gap([0.5, 0.5], [1, 0])[2] is False  # a tie is not a separation


def test_midpoint_rule_on_a_separated_dev_set() -> None:
    # dev EER alone: the smallest τ with FAR = FRR = 0 is the lowest live score, 0.7
    plain = evaluate_tables(TEST, SEP, "dev_eer", video_level=False, separated_rule="policy")
    assert plain["threshold"]["value"] == 0.7
    # test at 0.7: every live face (0.6 0.45 0.65 0.35) is rejected → BPCER 1
    assert plain["frame"]["bpcer"] == 1.0
    out = evaluate_tables(TEST, SEP, "dev_eer", video_level=False, separated_rule="midpoint")
    thr = out["threshold"]
    assert thr["value"] == pytest.approx(0.5)
    cal = thr["calibration"]
    assert cal["separated"] is True and cal["max_attack"] == 0.3 and cal["min_live"] == 0.7
    assert cal["policy_value"] == 0.7 and cal["n_live"] == 3 and cal["n_attack"] == 3
    assert "midpoint" in cal["rule"] and "perfectly separated" in cal["warning"]
    # test at 0.5: live 0.45 and 0.35 rejected → BPCER 2/4; attacks 0.25 0.1 refused → APCER 0
    assert out["frame"]["bpcer"] == 0.5 and out["frame"]["apcer"] == 0.0
    # dev APCER ≤ 5 %: the policy gives just above the highest attack (0.3); the rule gives the same midpoint
    apc = evaluate_tables(TEST, SEP, "dev_apcer", video_level=False, separated_rule="midpoint")["threshold"]
    assert apc["calibration"]["policy_value"] == np.nextafter(0.3, 1) and apc["value"] == pytest.approx(0.5)


def test_overlapping_dev_set_keeps_the_policy_and_video_level_has_its_own_gap() -> None:
    dev = _table([0.9, 0.25, 0.3, 0.2], [1, 1, 0, 0], ["live", "live", "print", "print"])
    value, cal = calibrate_separated(0.25, dev, "frame", "midpoint")
    assert value == 0.25 and cal["separated"] is False and "warning" not in cal
    with pytest.raises(ValueError, match="separated_rule"):
        calibrate_separated(0.25, dev, "frame", "median")
    # videos: a (live 0.9, 0.7) → 0.8 ; b (live 0.6) ; c (print 0.2, 0.4) → 0.3 ; d (print 0.1)
    vdev = _table([0.9, 0.7, 0.6, 0.2, 0.4, 0.1], [1, 1, 1, 0, 0, 0], ["live"] * 3 + ["print"] * 3,
                  ["a", "a", "b", "c", "c", "d"])
    out = evaluate_tables(vdev, vdev, "dev_eer", separated_rule="midpoint")
    assert out["threshold"]["value"] == pytest.approx((0.4 + 0.6) / 2)  # frames: gap 0.4 .. 0.6
    vcal = out["video_threshold"]["calibration"]
    assert vcal["level"] == "video" and (vcal["max_attack"], vcal["min_live"]) == pytest.approx((0.3, 0.6))
    assert out["video_threshold"]["value"] == pytest.approx(0.45)


def test_trainer_records_how_the_threshold_was_chosen(ckpt: Path) -> None:
    metrics = json.loads((ckpt.parent.parent / "metrics.json").read_text())
    meta = load_checkpoint(ckpt)["meta"]
    assert meta["threshold_info"] == json.loads(json.dumps(metrics["threshold"]))
    assert meta["threshold"] == metrics["threshold"]["value"]
    cal = meta["threshold_info"]["calibration"]
    dev = [r.split(",") for r in (ckpt.parent.parent / "scores_dev.csv").read_text().splitlines()[1:]]
    live = [float(r[5]) for r in dev if r[4] == "1"]
    att = [float(r[5]) for r in dev if r[4] == "0"]
    assert cal["separated"] == (min(live) > max(att))
    if cal["separated"]:
        assert meta["threshold"] == pytest.approx((min(live) + max(att)) / 2)


def test_predict_explain_warns(ckpt: Path, tmp_path: Path) -> None:
    from openfas.cli import app
    from openfas.deploy.export import export_onnx

    ck = load_checkpoint(ckpt)
    value, cal = calibrate_separated(0.7, SEP, "frame", "midpoint")
    info = {"policy": "dev_eer", "value": value, "source": "EER threshold of the dev set, applied to test",
            "calibration": cal}
    sep = save_checkpoint(tmp_path / "sep.safetensors", model_state=ck["model"],
                          meta={**ck["meta"], "threshold": value, "threshold_info": info})
    onnx_path = tmp_path / "sep.onnx"
    export_onnx(sep, onnx_path)
    img = tmp_path / "none.png"
    img.write_bytes(b"")  # unreadable: the explanation comes before scoring anyway
    for model in (sep, onnx_path):
        res = CliRunner().invoke(app, ["predict", str(model), str(img), "--explain", "--no-progress"])
        assert res.exit_code == 1
        assert "explain: threshold 0.5: EER threshold of the dev set" in res.stderr
        assert "rule for a perfectly separated dev set: midpoint of the dev gap" in res.stderr
        assert "warning: the dev set was perfectly separated" in res.stderr
        assert json.loads(res.stdout)["threshold_info"]["calibration"]["separated"] is True
    old = save_checkpoint(tmp_path / "old.safetensors", model_state=ck["model"],
                          meta={k: v for k, v in ck["meta"].items() if k != "threshold_info"})
    res = CliRunner().invoke(app, ["predict", str(old), str(img), "--explain", "--no-progress"])
    assert "does not record how its threshold was chosen" in res.stderr
    res = CliRunner().invoke(app, ["predict", str(old), str(img), "--explain", "--threshold", "0.3"])
    assert "threshold 0.3, given with --threshold" in res.stderr
