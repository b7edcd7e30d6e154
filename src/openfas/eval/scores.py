"""Per-frame score tables and their evaluation with :mod:`openfas.eval.metrics`.

:class:`ScoreTable` holds the scores of one split (written by training and ``openfas eval``, read back by
reports).

Threshold policies (``policy`` of :func:`evaluate_tables`; the report states which was used):

* ``fixed`` – a given value (e.g. a checkpoint's stored threshold);
* ``eer`` – the EER threshold of the test set itself (an oracle, as DG papers report HTER);
* ``dev_eer`` – the EER threshold of the dev set, applied to test (OULU-NPU, bob ``--criterion eer``);
* ``dev_apcer`` – the smallest dev threshold with worst-species APCER ≤ ``apcer_target``, applied to test
  (bob.pad's ``bpcerN`` criterion with N = 1 / target).

Frame-level metrics use a threshold picked on frame scores; video-level metrics (video score = mean of its
frames' scores) use one picked the same way on video scores, so each level is a self-consistent system.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from openfas.eval import metrics as M

_SOURCES = {
    "fixed": "fixed threshold {value:.6g}",
    "eer": "EER threshold of the test set itself (oracle)",
    "dev_eer": "EER threshold of the dev set, applied to test",
    "dev_apcer": "smallest dev threshold with worst-species APCER <= {target:g}, applied to test",
}
HEADLINE_KEYS = ("auc", "eer", "hter", "apcer", "bpcer", "acer")


@dataclass
class ScoreTable:
    """Per-frame scores with everything evaluation needs (score: higher = more live).

    ``videos`` holds the media id of each frame (unique per source video in a cache), the key of
    video-level evaluation.
    """

    sample_ids: list[str]
    videos: list[str]
    domains: list[str]
    attacks: list[str]
    labels: np.ndarray
    scores: np.ndarray

    def write_csv(self, path: Path) -> None:
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["sample_id", "video", "domain", "attack", "label", "score"])
            for row in zip(self.sample_ids, self.videos, self.domains, self.attacks,
                           self.labels.tolist(), self.scores.tolist(), strict=True):
                w.writerow([*row[:5], f"{row[5]:.8g}"])


def quick_metrics(table: ScoreTable) -> dict[str, float]:
    """AUC, EER and HTER at the EER threshold of the same set (for per-epoch dev monitoring)."""
    if len(set(table.labels.tolist())) < 2:
        return {}
    ss = M.ScoreSet(table.scores, table.labels, np.asarray(table.attacks))
    eer, thr = ss.eer()
    return {"auc": ss.auc(), "eer": float(eer), "hter": float(ss.apcer_bpcer(thr)["hter"])}


def read_scores_csv(path: str | Path) -> ScoreTable:
    """Read a per-frame score CSV written by ``ScoreTable.write_csv`` (errors name the file and row)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: score file not found")
    need = ["sample_id", "video", "domain", "attack", "label", "score"]
    cols: dict[str, list[str]] = {k: [] for k in need}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [k for k in need if k not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing columns {missing} (has {reader.fieldnames})")
        for row in reader:
            for k in need:
                cols[k].append(row[k])
    try:
        labels = np.array([int(x) for x in cols["label"]], dtype=np.int64)
        scores = np.array([float(x) for x in cols["score"]], dtype=np.float64)
    except ValueError as err:
        raise ValueError(f"{path}: bad label or score value ({err})") from None
    return ScoreTable(cols["sample_id"], cols["video"], cols["domain"], cols["attack"], labels, scores)


def video_table(table: ScoreTable) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Video-level (scores, labels, attacks, ids): mean frame score per ``domain/video``."""
    ids = np.asarray([f"{d}/{v}" for d, v in zip(table.domains, table.videos, strict=True)])
    return M.video_level(table.scores, table.labels, np.asarray(table.attacks), ids)


def _level_arrays(table: ScoreTable, level: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if level == "video":
        s, y, a, _ = video_table(table)
        return s, y, a
    return table.scores, table.labels, np.asarray(table.attacks)


def choose_threshold(policy: str, test: ScoreTable, dev: ScoreTable | None = None, fixed: float = 0.5,
                     apcer_target: float = 0.05, level: str = "frame") -> float:
    """The threshold of ``policy`` at ``level`` ("frame" or "video"); see the module docstring."""
    if policy == "fixed":
        return float(fixed)
    if policy == "eer":
        s, y, _ = _level_arrays(test, level)
        return M.select_threshold("eer", s, y)
    if policy in ("dev_eer", "dev_apcer"):
        if dev is None:
            raise ValueError(f"threshold policy {policy!r} needs dev scores")
        s, y, a = _level_arrays(dev, level)
        return M.select_threshold(policy, s, y, a, apcer_target)
    raise ValueError(f"unknown threshold policy {policy!r}; use fixed, eer, dev_eer or dev_apcer")


def evaluate_tables(test: ScoreTable, dev: ScoreTable | None, policy: str, fixed: float = 0.5,
                    video_level: bool = True, apcer_target: float = 0.05,
                    source: str | None = None) -> dict[str, Any]:
    """Metrics of ``test`` at thresholds chosen by ``policy`` (fixed, eer, dev_eer, dev_apcer).

    Returns ``{"threshold": {policy, value, source, ...}, "frame": summary, "video": summary?,
    "video_threshold": {...}?, "headline": {..., "level"}, "n_test_frames", "n_test_videos"?}``; ``source``
    overrides the sentence that says where the threshold came from.
    """
    if policy not in _SOURCES:
        raise ValueError(f"unknown threshold policy {policy!r}; use fixed, eer, dev_eer or dev_apcer")
    threshold = choose_threshold(policy, test, dev, fixed, apcer_target, "frame")
    text = source or _SOURCES[policy].format(value=threshold, target=apcer_target)
    thr_info: dict[str, Any] = {"policy": policy, "value": float(threshold), "source": text}
    if policy == "dev_apcer":
        thr_info["apcer_target"] = float(apcer_target)
    frame = M.summarize(test.scores, test.labels, np.asarray(test.attacks), threshold)
    out: dict[str, Any] = {"threshold": thr_info, "frame": frame, "n_test_frames": int(len(test.scores))}
    headline_src = frame
    if video_level:
        vs, vl, va, _ = video_table(test)
        dev_ok = dev is None or len(set(video_table(dev)[1].tolist())) == 2 or policy in ("fixed", "eer")
        if len(set(vl.tolist())) == 2 and dev_ok:
            vthr = choose_threshold(policy, test, dev, fixed, apcer_target, "video")
            out["video"] = M.summarize(vs, vl, va, vthr)
            out["video_threshold"] = {**thr_info, "value": float(vthr),
                                      "source": text + " (picked on video-level scores)"}
            out["n_test_videos"] = int(len(vs))
            headline_src = out["video"]
    out["headline"] = {k: headline_src[k] for k in HEADLINE_KEYS if k in headline_src}
    out["headline"]["level"] = "video" if headline_src is not frame else "frame"
    return out
