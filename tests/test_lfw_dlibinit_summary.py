"""bench/lfw_dlibinit_summary.py: the per-run rows and the seed means (docs/masked_recognition.md)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[1] / "bench" / "lfw_dlibinit_summary.py"


def load_tool():
    spec = importlib.util.spec_from_file_location("lfw_dlibinit_summary", TOOL)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def make_run(root: Path, name: str, clean: float | None, one: float | None, both: float | None,
             seconds: str | None) -> Path:
    run = root / name
    run.mkdir()
    for sub, acc in (("eval-clean", clean), ("", one), ("eval-both_masked", both)):
        if acc is not None:
            (run / sub).mkdir(exist_ok=True)
            (run / sub / "metrics.json").write_text(json.dumps({"accuracy": acc}))
    if seconds is not None:
        (run / "train_seconds.txt").write_text(seconds)
    return run


def test_rows_and_seed_mean_leave_out_an_unfinished_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tool = load_tool()
    runs = [make_run(tmp_path, "g-s0", 0.98, 0.92, 0.93, "210.0\n"),
            make_run(tmp_path, "g-s1", 0.984, 0.926, 0.924, "216"),
            # in progress: /usr/bin/time has created its output file but not written it yet, no evals
            make_run(tmp_path, "g-s2", None, None, None, "")]
    tool.main([str(r) for r in runs])
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == "| g-s0 | 98.00 | 92.00 | 93.00 | no | – | – | 3.5 min |"
    assert lines[3] == "| g-s1 | 98.40 | 92.60 | 92.40 | no | – | – | 3.6 min |"
    assert lines[4] == "| g-s2 | – | – | – | – | – | – | – |"
    # two finished seeds: mean and sample sd written out by hand (sd of {a, b} = |a − b| / √2)
    assert lines[5] == "| **g: mean ± sd over 2 seeds** | 98.20 ± 0.28 | 92.30 ± 0.42 | 92.70 ± 0.42 | | | | |"
    assert len(lines) == 6


def test_a_rescored_one_masked_list_wins_and_flip_and_quality_are_reported(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A run re-scored with ``openfas eval`` on the one-masked list (here with mirror averaging) is read from
    ``eval-one_masked``, not from the end-of-training ``metrics.json``; C(X) numbers come from that list."""
    tool = load_tool()
    run = make_run(tmp_path, "r-s0", 0.97, 0.90, 0.93, None)
    for sub in ("eval-clean", "eval-both_masked"):
        (run / sub / "metrics.json").write_text(json.dumps({"accuracy": 0.97 if "clean" in sub else 0.93,
                                                            "flip": True}))
    (run / "eval-one_masked").mkdir()
    (run / "eval-one_masked" / "metrics.json").write_text(json.dumps({
        "accuracy": 0.942, "flip": True, "quality_vs_coverage": {"spearman_all": -0.184},
        "quality_vs_errors": {"auc_wrong_by_low_quality": 0.6149}}))
    mixed = make_run(tmp_path, "m", 0.98, 0.92, 0.93, "60")
    (mixed / "eval-clean" / "metrics.json").write_text(json.dumps({"accuracy": 0.98, "flip": True}))
    tool.main([str(run), str(mixed)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == "| r-s0 | 97.00 | 94.20 | 93.00 | yes | -0.18 | 0.61 | – |"
    assert lines[3] == "| m | 98.00 | 92.00 | 93.00 | mixed | – | – | 1.0 min |"
