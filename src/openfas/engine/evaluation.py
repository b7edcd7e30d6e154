"""Glue between the trainer's score tables and :mod:`openfas.eval.metrics`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from openfas.eval import metrics as M

if TYPE_CHECKING:
    from openfas.engine.trainer import ScoreTable


def quick_metrics(table: ScoreTable) -> dict[str, float]:
    """AUC, EER and HTER at the EER threshold of the same set (for per-epoch dev monitoring)."""
    if len(set(table.labels.tolist())) < 2:
        return {}
    eer, thr = M.eer(table.scores, table.labels)
    return {"auc": float(M.auc(table.scores, table.labels)), "eer": float(eer),
            "hter": float(M.apcer_bpcer(table.scores, table.labels, table.attacks, thr)["hter"])}


def _video_table(table: ScoreTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scores, labels, attacks, _ = M.video_level(table.scores, table.labels, np.asarray(table.attacks),
                                               np.asarray([f"{d}/{v}" for d, v in zip(table.domains, table.videos,
                                                                                       strict=True)]))
    return scores, labels, attacks


def evaluate_tables(test: ScoreTable, dev: ScoreTable | None, policy: str, fixed: float = 0.5,
                    video_level: bool = True) -> dict[str, Any]:
    """Metrics of ``test`` at a threshold chosen by ``policy`` ("dev_eer", "eer" or "fixed")."""
    if policy == "dev_eer":
        if dev is None:
            raise ValueError("threshold policy 'dev_eer' needs dev scores")
        threshold = M.select_threshold("dev_eer", dev.scores, dev.labels)
        source = "EER threshold of the dev set, applied to test"
    elif policy == "eer":
        threshold = M.select_threshold("eer", test.scores, test.labels)
        source = "EER threshold of the test set itself"
    else:
        threshold = float(fixed)
        source = "fixed threshold from the config"
    frame = M.summarize(test.scores, test.labels, np.asarray(test.attacks), threshold)
    out: dict[str, Any] = {
        "threshold": {"policy": policy, "value": float(threshold), "source": source},
        "frame": frame,
        "n_test_frames": int(len(test.scores)),
    }
    headline_src = frame
    if video_level:
        vs, vl, va = _video_table(test)
        if len(set(vl.tolist())) == 2:
            out["video"] = M.summarize(vs, vl, va, threshold)
            out["n_test_videos"] = int(len(vs))
            headline_src = out["video"]
    out["headline"] = {k: headline_src[k] for k in ("auc", "eer", "hter", "apcer", "bpcer", "acer")
                       if k in headline_src}
    out["headline"]["level"] = "video" if headline_src is not frame else "frame"
    return out
