"""Reports, ``openfas eval`` / ``report`` / ``compare`` on a tiny trained run, checked against independent sums."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from openfas.cli import app
from openfas.config import load_config
from openfas.engine.trainer import Trainer
from openfas.eval.compare import compare_runs
from openfas.eval.plots import confusion_counts
from openfas.eval.report import ReportError, worst_examples, write_report
from openfas.eval.runner import score_cache
from openfas.eval.scores import ScoreTable

TINY = ["data.image_size=32", "data.map_size=8", "model.width=8", "data.batch_size=8", "optim.lr=0.003",
        "train.log_every=100", "train.epochs=1", "data.augment=false"]
FIGURES = ("roc.png", "det.png", "histograms.png", "confusion.png", "worst_examples.png", "maps.png")


@pytest.fixture(scope="module")
def trained(tiny_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Trainer:
    torch.set_num_threads(1)
    cfg = load_config(None, [f"data.cache={tiny_cache}", *TINY])
    trainer = Trainer(cfg, run_dir=tmp_path_factory.mktemp("run") / "r", progress=False)
    trainer.fit()
    return trainer


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _png_ok(path: Path) -> None:
    img = cv2.imread(str(path))
    assert img is not None, f"{path} does not decode"
    assert img.shape[0] > 100 and img.shape[1] > 100 and img.std() > 5, f"{path} looks blank"


def test_score_cache_equals_trainer_scoring(trained: Trainer, tiny_cache: Path) -> None:
    # reference: one sample at a time straight through the dataset and the method, no loader, no batching
    from openfas.data.dataset import FaceCropDataset
    from openfas.eval.scores import ScoreTable

    d = trained.cfg.data
    ds = FaceCropDataset(tiny_cache, split="test", modalities=d.modalities, image_size=d.image_size,
                         map_size=d.map_size, train=False, mean=d.mean, std=d.std)
    trained.model.eval()
    with torch.no_grad():
        ref_scores = [float(trained.method.score(trained.model, {k: v[None] for k, v in ds[i].items()})["score"])
                      for i in range(len(ds))]
    recs = ds.records
    ref = ScoreTable([r.sample_id for r in recs], [r.media_id for r in recs], [r.domain for r in recs],
                     [r.attack for r in recs], np.array([r.label for r in recs]), np.array(ref_scores))
    assert trained.score_split("test", None).sample_ids == ref.sample_ids
    trained.model.train()
    got = score_cache(trained.model, trained.method, tiny_cache, "test", None, "cpu", batch_size=5)
    assert trained.model.training  # the caller's mode is restored
    assert got.sample_ids == ref.sample_ids and got.attacks == ref.attacks and got.videos == ref.videos
    np.testing.assert_allclose(got.scores, ref.scores, rtol=1e-5, atol=1e-6)
    assert (got.labels == np.array([a == "live" for a in got.attacks])).all()


def test_write_report_sections_and_figures(trained: Trainer, tiny_cache: Path) -> None:
    run = trained.run_dir
    page = write_report(run, cache_dir=tiny_cache, model=trained.model, method=trained.method)
    text = page.read_text()
    for section in ('id="summary"', 'id="metrics"', 'id="figures"', 'id="examples"', "Threshold policy:",
                    "dev_eer", "APCER print", "APCER replay", "BPCER20", "TPR@FPR=1e-3"):
        assert section in text, section
    assert text.count("data:image/png;base64,") == len(FIGURES)
    for name in FIGURES:
        _png_ok(run / "figures" / name)
    metrics = json.loads((run / "metrics.json").read_text())
    assert f"{100 * metrics['headline']['acer']:.2f}" in text


def test_worst_examples_and_confusion_by_hand() -> None:
    t = ScoreTable(list("abcdef"), list("abcdef"), ["d"] * 6, ["live", "live", "print", "replay", "print", "live"],
                   np.array([1, 1, 0, 0, 0, 1]), np.array([0.9, 0.2, 0.8, 0.1, 0.5, 0.4]))
    # attacks by descending score: c (0.8), e (0.5) ; live by ascending score: b (0.2), f (0.4)
    assert worst_examples(t, 4) == [2, 4, 1, 5]
    names, counts = confusion_counts(t.scores, t.attacks, 0.45)
    assert names == ["live", "print", "replay"]
    assert counts.tolist() == [[1, 2], [2, 0], [0, 1]]


def test_eval_cli_dev_apcer_policy(trained: Trainer, tiny_cache: Path, tmp_path: Path) -> None:
    ckpt = trained.run_dir / "checkpoints" / "final.safetensors"
    out = tmp_path / "ev"
    res = CliRunner().invoke(app, ["eval", str(ckpt), "--threshold", "dev_apcer", "--apcer-target", "0.25",
                                   "--out", str(out), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    rows = _read_csv(out / "scores.csv")
    assert list(rows[0]) == ["sample_id", "video", "domain", "attack", "label", "score"]
    assert len(rows) == 48 and {r["attack"] for r in rows} == {"live", "print", "replay"}
    m = json.loads((out / "metrics.json").read_text())
    assert m["threshold"]["policy"] == "dev_apcer" and m["threshold"]["apcer_target"] == 0.25
    # independent check: brute-force the smallest dev threshold with every species' APCER ≤ 25 %
    dev = _read_csv(out / "scores_dev.csv")
    ds = np.array([float(r["score"]) for r in dev])
    da = np.array([r["attack"] for r in dev])
    cands = sorted(set(ds.tolist()) | {float(np.nextafter(x, np.inf)) for x in ds})
    tau = next(c for c in cands if all(np.mean(ds[da == sp] >= c) <= 0.25 for sp in ("print", "replay")))
    assert m["threshold"]["value"] == pytest.approx(tau, rel=0, abs=0)
    s = np.array([float(r["score"]) for r in rows])
    a = np.array([r["attack"] for r in rows])
    apcer = max(np.mean(s[a == sp] >= tau) for sp in ("print", "replay"))
    bpcer = np.mean(s[a == "live"] < tau)
    assert m["frame"]["apcer"] == pytest.approx(apcer) and m["frame"]["bpcer"] == pytest.approx(bpcer)
    assert (out / "report.html").exists() and (out / "config.json").exists()
    res = CliRunner().invoke(app, ["eval", str(ckpt), "--threshold", "median", "--out", str(out)])
    assert res.exit_code != 0 and "median" in res.output


def test_compare_and_report_commands(trained: Trainer, tmp_path: Path) -> None:
    run = trained.run_dir
    other = tmp_path / "other"
    other.mkdir()
    m = json.loads((run / "metrics.json").read_text())
    m["headline"]["acer"] = 0.1234
    m["video"]["acer"] = 0.1234
    (other / "metrics.json").write_text(json.dumps(m))
    text = compare_runs([run, other])
    acer_row = next(line for line in text.splitlines() if line.startswith("ACER"))
    cells = [c.strip() for c in acer_row.split("|")]
    assert cells[1] == f"{100 * json.loads((run / 'metrics.json').read_text())['video']['acer']:.2f}"
    assert cells[2] == "12.34"
    assert "threshold policy" in text and "dev_eer" in text
    res = CliRunner().invoke(app, ["compare", str(run), str(other)])
    assert res.exit_code == 0 and "12.34" in res.output
    res = CliRunner().invoke(app, ["compare", str(run), str(tmp_path / "missing")])
    assert res.exit_code != 0 and "metrics.json" in res.output
    res = CliRunner().invoke(app, ["report", str(run)])
    assert res.exit_code == 0 and res.output.strip().endswith("report.html")
    with pytest.raises(ReportError, match="metrics.json"):
        write_report(tmp_path / "nothing-here")
    broken = tmp_path / "broken-config"
    broken.mkdir()
    shutil.copy(run / "metrics.json", broken / "metrics.json")
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ReportError, match=r"config\.json: not valid JSON"):
        write_report(broken)


CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_renders_in_headless_chromium(trained: Trainer, tiny_cache: Path, tmp_path: Path) -> None:
    page = write_report(trained.run_dir, cache_dir=tiny_cache)
    shot = tmp_path / "shot.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'ud'}",
           f"--screenshot={shot}", "--window-size=1200,2000", page.resolve().as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    if not shot.exists():
        pytest.skip("chromium ran but wrote no screenshot")
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (2000, 1200)
    gray = img.mean(axis=2)
    assert gray.std() > 20  # text and figures, not a blank page
    assert (gray < 128).mean() > 0.01  # enough dark pixels (text, curves)
