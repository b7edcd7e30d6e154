"""Face-verification metrics on scored pairs (score = cosine similarity, higher = more likely the same person).

* :func:`kfold_accuracy` – the LFW / insightface protocol: pairs are split in 10 folds; for each fold the
  threshold with the best accuracy on the other 9 folds is applied to it; report the mean ± std of the 10
  held-out accuracies. A pair is accepted as "same" when ``score >= threshold``. Candidate thresholds are
  every midpoint between consecutive distinct training scores plus one below the lowest and one above the
  highest (so the best training accuracy is found exactly; ties go to the lowest threshold). Folds: the
  file's own (LFW header: consecutive blocks) or, for lists without folds (MFR2, MLFW without a fold column),
  stratified round-robin (the k-th positive and the k-th negative pair go to fold ``k mod 10``).
* :func:`tar_at_far` – TAR at the highest threshold-realisable FAR ≤ target, over all pairs.
  With N negative pairs the smallest non-zero FAR is 1/N; the result reports N so a "TAR@FAR=1e-3" from
  fewer than 1000 negatives is visibly a TAR at FAR = 0.
* :func:`verification_report` – all of the above plus ROC AUC and EER.

ROC, AUC and EER come from the one metrics core that PAD uses too (:class:`openfas.eval.metrics.ScoreSet`, with
same-identity pairs as the accepted class), so a verification EER and a PAD EER follow the same rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from openfas.eval.metrics import ScoreSet


def candidate_thresholds(scores: np.ndarray) -> np.ndarray:
    u = np.unique(np.asarray(scores, np.float64))
    if u.size == 0:
        raise ValueError("no scores")
    mids = (u[:-1] + u[1:]) / 2
    return np.concatenate([[u[0] - 1.0], mids, [u[-1] + 1.0]])


def accuracy_at(scores: np.ndarray, labels: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Accuracy of ``score >= t`` for each threshold ``t`` (exact, O((n + T) log n))."""
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels).astype(bool)
    order = np.argsort(s, kind="stable")
    ss, ys = s[order], y[order]
    below = np.searchsorted(ss, thresholds, side="left")  # number of pairs with score < t
    pos_below = np.concatenate([[0], np.cumsum(ys)])[below]
    neg_below = below - pos_below
    n_pos = int(ys.sum())
    correct = (n_pos - pos_below) + neg_below  # positives accepted + negatives rejected
    return correct / max(len(s), 1)


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(threshold, accuracy) maximising accuracy on the given pairs (lowest threshold among ties)."""
    cand = candidate_thresholds(scores)
    acc = accuracy_at(scores, labels, cand)
    k = int(np.argmax(acc))
    return float(cand[k]), float(acc[k])


def stratified_folds(labels: np.ndarray, n_folds: int = 10) -> np.ndarray:
    y = np.asarray(labels).astype(bool)
    folds = np.empty(len(y), np.int64)
    for cls in (True, False):
        idx = np.flatnonzero(y == cls)
        folds[idx] = np.arange(len(idx)) % n_folds
    return folds


def kfold_accuracy(scores: np.ndarray, labels: np.ndarray, folds: np.ndarray | list[int] | None = None,
                   n_folds: int = 10) -> dict[str, Any]:
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels).astype(np.int64)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError(f"scores {s.shape} and labels {y.shape} must be equal-length vectors")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or infinite values")
    f = stratified_folds(y, n_folds) if folds is None else np.asarray(folds, np.int64)
    fold_ids = np.unique(f)
    if len(fold_ids) < 2:
        raise ValueError("k-fold accuracy needs at least 2 folds")
    accs, thrs = [], []
    for k in fold_ids:
        test = f == k
        t, _ = best_threshold(s[~test], y[~test])
        accs.append(float(((s[test] >= t) == (y[test] == 1)).mean()))
        thrs.append(t)
    a = np.array(accs)
    return {"accuracy": float(a.mean()), "accuracy_std": float(a.std()), "fold_accuracies": accs,
            "fold_thresholds": thrs, "folds": "file" if folds is not None else f"stratified-{n_folds}"}


def tar_at_far(scores: np.ndarray, labels: np.ndarray, far: float) -> dict[str, float]:
    """TAR at the highest realisable FAR ≤ ``far`` (ties: the highest such threshold); the threshold is finite."""
    return _tar_at_far(ScoreSet(scores, labels), far)


def _tar_at_far(ss: ScoreSet, far: float) -> dict[str, float]:
    t, fars, frr = ss.grid()  # ascending thresholds: every distinct score and +inf
    tar = 1.0 - frr
    ok = np.flatnonzero(fars <= far)  # never empty: +inf accepts nothing
    best = tar[ok].max()
    k = ok[tar[ok] == best][-1]
    return {"tar": float(tar[k]), "far": float(fars[k]), "threshold": float(min(t[k], np.finfo(float).max))}


def verification_report(scores: np.ndarray, labels: np.ndarray, folds: list[int] | None = None,
                        fars: tuple[float, ...] = (1e-1, 1e-2, 1e-3)) -> dict[str, Any]:
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels).astype(np.int64)
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"verification needs same and different pairs (got {n_pos} same, {n_neg} different)")
    out: dict[str, Any] = {"pairs": len(y), "positives": n_pos, "negatives": n_neg}
    out.update(kfold_accuracy(s, y, folds))
    ss = ScoreSet(s, y)  # same pairs play the live class: accepted when score >= threshold
    out["auc"] = ss.auc()
    out["eer"] = ss.eer()[0]
    out["tar_at_far"] = {f"{far:g}": _tar_at_far(ss, far) for far in fars}
    out["min_far_resolution"] = 1.0 / n_neg
    return out


__all__ = ["accuracy_at", "best_threshold", "candidate_thresholds", "kfold_accuracy", "stratified_folds",
           "tar_at_far", "verification_report"]
