"""Presentation-attack-detection metrics as the field defines them (ISO/IEC 30107-3, OULU-NPU, CelebA-Spoof).

Conventions (the bob.measure / bob.pad.base ones): bona fide (live, label 1) is the positive class and a
higher score means more live; a sample is accepted as live when ``score >= threshold``. So an attack with
score ≥ τ is a false accept (counts in APCER / FAR) and a bona fide with score < τ a false reject (BPCER /
FRR). All rates are fractions in [0, 1]. Everything is vectorised (sorting + ``searchsorted``), so 10⁷
scores take seconds.

* APCER of a PAI species = fraction of that species' attacks accepted; APCER = the worst species
  (ISO/IEC 30107-3 and the OULU-NPU protocols); ``apcer_pooled`` pools all attacks (CDCN-code style).
* BPCER = fraction of bona fide rejected; ACER = (APCER + BPCER) / 2; HTER = (FAR_pooled + FRR) / 2.
* EER: among the candidate thresholds (every distinct score, and +∞), the one minimising |FAR − FRR|
  (ties: the smallest such threshold); EER = (FAR + FRR) / 2 there.
* BPCER@APCER=x (BPCER20 = x 5 %): the smallest threshold at which every species' APCER ≤ x.
* TPR@FPR (CelebA-Spoof): spoof is the positive class, a sample is flagged spoof when score < τ; τ is taken
  from the sorted live scores so that at most ``fpr`` of live samples are flagged; TPR = spoof flagged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

ArrayLike = Sequence[float] | np.ndarray


def _check(scores: ArrayLike, labels: ArrayLike, need_both: bool = True) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores ({s.size}) and labels ({y.size}) differ in length")
    if np.isnan(s).any():
        raise ValueError(f"scores contain {int(np.isnan(s).sum())} NaN values")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 1 (live) or 0 (attack)")
    y = y.astype(np.int64)
    if need_both and (not (y == 1).any() or not (y == 0).any()):
        raise ValueError("both live (1) and attack (0) samples are needed")
    return s, y


def _accept_rate(sorted_scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Fraction of ``sorted_scores`` ≥ each threshold."""
    n = sorted_scores.size
    return (n - np.searchsorted(sorted_scores, thresholds, side="left")) / n


def far_frr(scores: ArrayLike, labels: ArrayLike, thresholds: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """FAR (attacks accepted) and FRR (live rejected) at each threshold."""
    s, y = _check(scores, labels)
    t = np.asarray(thresholds, dtype=np.float64)
    far = _accept_rate(np.sort(s[y == 0]), t)
    frr = 1.0 - _accept_rate(np.sort(s[y == 1]), t)
    return far, frr


def eer(scores: ArrayLike, labels: ArrayLike) -> tuple[float, float]:
    """Equal error rate and its threshold (see the module docstring for the tie rule)."""
    s, y = _check(scores, labels)
    cand = np.append(np.unique(s), np.inf)
    far, frr = far_frr(s, y, cand)
    i = int(np.argmin(np.abs(far - frr)))
    return float((far[i] + frr[i]) / 2), float(cand[i])


def auc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the ROC curve (live positive); ties count one half."""
    s, y = _check(scores, labels)
    return float(roc_auc_score(y, s))


def roc(scores: ArrayLike, labels: ArrayLike) -> dict[str, np.ndarray]:
    """ROC points: ``fpr`` (attacks accepted), ``tpr`` (live accepted), ``thresholds``."""
    s, y = _check(scores, labels)
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    return {"fpr": fpr, "tpr": tpr, "thresholds": thr}


def det(scores: ArrayLike, labels: ArrayLike) -> dict[str, np.ndarray]:
    """DET points: APCER (pooled FAR) against BPCER (FRR) over all distinct thresholds."""
    s, y = _check(scores, labels)
    cand = np.append(np.unique(s), np.inf)
    far, frr = far_frr(s, y, cand)
    return {"apcer": far, "bpcer": frr, "thresholds": cand}


def apcer_bpcer(scores: ArrayLike, labels: ArrayLike, attacks: ArrayLike, threshold: float) -> dict[str, Any]:
    """ISO/IEC 30107-3 error rates at one threshold (fractions)."""
    s, y = _check(scores, labels)
    a = np.asarray(attacks).ravel()
    if a.shape != s.shape:
        raise ValueError(f"attacks ({a.size}) and scores ({s.size}) differ in length")
    neg = y == 0
    species = sorted({str(x) for x in a[neg]})
    accepted = s >= threshold
    per = {sp: float(accepted[neg & (a.astype(str) == sp)].mean()) for sp in species}
    bpcer = float((~accepted[y == 1]).mean())
    apcer = max(per.values())
    pooled = float(accepted[neg].mean())
    return {"apcer_per_attack": per, "apcer": apcer, "apcer_pooled": pooled, "bpcer": bpcer,
            "acer": (apcer + bpcer) / 2, "hter": (pooled + bpcer) / 2, "threshold": float(threshold)}


def threshold_at_apcer(scores: ArrayLike, labels: ArrayLike, attacks: ArrayLike, target: float) -> float:
    """Smallest threshold at which every species' APCER ≤ ``target``."""
    s, y = _check(scores, labels)
    a = np.asarray(attacks).ravel().astype(str)
    neg = y == 0
    t = -np.inf
    for sp in np.unique(a[neg]):
        x = np.sort(s[neg & (a == sp)])[::-1]  # descending
        k = int(np.floor(target * x.size + 1e-12))  # at most k attacks may be accepted
        if k < x.size:  # accept only scores strictly above the (k+1)-th largest
            t = max(t, float(np.nextafter(x[k], np.inf)))
    return float(t)


def bpcer_at_apcer(scores: ArrayLike, labels: ArrayLike, attacks: ArrayLike, target: float) -> tuple[float, float]:
    """BPCER at the smallest threshold meeting APCER ≤ ``target`` on the worst species; returns (bpcer, τ)."""
    s, y = _check(scores, labels)
    t = threshold_at_apcer(s, y, attacks, target)
    return float((s[y == 1] < t).mean()), t


def tpr_at_fpr(scores: ArrayLike, labels: ArrayLike, fpr: float) -> float:
    """CelebA-Spoof TPR@FPR: spoof positive, flagged when score < τ; τ from the sorted live scores."""
    s, y = _check(scores, labels)
    live = np.sort(s[y == 1])
    k = int(np.floor(fpr * live.size + 1e-12))  # at most k live samples may be flagged
    t = live[k] if k < live.size else np.inf  # flag scores strictly below the (k+1)-th smallest live score
    return float((s[y == 0] < t).mean())


def select_threshold(policy: str, scores: ArrayLike, labels: ArrayLike, attacks: ArrayLike | None = None,
                     value: float | None = None) -> float:
    """Threshold policies: ``fixed`` (``value``), ``eer`` / ``dev_eer`` (EER threshold of the given set —
    pass dev data for ``dev_eer``), ``apcer`` (smallest τ with worst-species APCER ≤ ``value`` on the set)."""
    if policy == "fixed":
        if value is None:
            raise ValueError("policy 'fixed' needs a value")
        return float(value)
    if policy in ("eer", "dev_eer"):
        return eer(scores, labels)[1]
    if policy == "apcer":
        if value is None or attacks is None:
            raise ValueError("policy 'apcer' needs attacks and a target APCER value")
        return threshold_at_apcer(scores, labels, attacks, value)
    raise ValueError(f"unknown threshold policy {policy!r}; use fixed, eer, dev_eer or apcer")


def video_level(scores: ArrayLike, labels: ArrayLike, attacks: ArrayLike, video_ids: ArrayLike
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Video scores = mean of their frames' scores; returns (scores, labels, attacks, video ids)."""
    s, y = _check(scores, labels, need_both=False)
    a = np.asarray(attacks).ravel()
    v = np.asarray(video_ids).ravel()
    ids, first, inv = np.unique(v, return_index=True, return_inverse=True)
    counts = np.bincount(inv)
    mean = np.bincount(inv, weights=s) / counts
    if (y != y[first][inv]).any():
        bad = ids[np.unique(inv[y != y[first][inv]])][:3]
        raise ValueError(f"frames of the same video carry different labels (e.g. {list(bad)})")
    return mean, y[first], a[first], ids


def summarize(scores: ArrayLike, labels: ArrayLike, attacks: ArrayLike, threshold: float) -> dict[str, Any]:
    """Every metric at ``threshold`` plus the threshold-free ones; JSON-serialisable, fractions in [0, 1]."""
    s, y = _check(scores, labels)
    out = apcer_bpcer(s, y, attacks, threshold)
    e, et = eer(s, y)
    b20, t20 = bpcer_at_apcer(s, y, attacks, 0.05)
    out.update({
        "auc": auc(s, y), "eer": e, "eer_threshold": et, "bpcer20": b20, "bpcer20_threshold": t20,
        "tpr@fpr=1e-2": tpr_at_fpr(s, y, 1e-2), "tpr@fpr=1e-3": tpr_at_fpr(s, y, 1e-3),
        "tpr@fpr=1e-4": tpr_at_fpr(s, y, 1e-4),
        "n_live": int((y == 1).sum()), "n_attack": int((y == 0).sum()),
    })
    return out
