"""Presentation-attack-detection metrics as the field defines them (ISO/IEC 30107-3, OULU-NPU, CelebA-Spoof).

Conventions (the bob.measure / bob.pad.base ones): bona fide (live, label 1) is the positive class and a
higher score means more live; a sample is accepted as live when ``score >= threshold``. So an attack with
score ≥ τ is a false accept (counts in APCER / FAR) and a bona fide with score < τ a false reject (BPCER /
FRR). All rates are fractions in [0, 1].

* APCER of a PAI species = fraction of that species' attacks accepted; APCER = the worst species
  (ISO/IEC 30107-3 and the OULU-NPU protocols); ``apcer_pooled`` pools all attacks (CDCN-code style).
* BPCER = fraction of bona fide rejected; ACER = (APCER + BPCER) / 2; HTER = (FAR_pooled + FRR) / 2.
* EER: among the candidate thresholds (every distinct score, and +∞), the one minimising |FAR − FRR|
  (ties: the smallest such threshold); EER = (FAR + FRR) / 2 there.
* BPCER@APCER=x (BPCER20 = x 5 %): the smallest threshold at which every species' APCER ≤ x.
* TPR@FPR (CelebA-Spoof): spoof is the positive class, a sample is flagged spoof when score < τ; τ is taken
  from the sorted live scores so that at most ``fpr`` of live samples are flagged; TPR = spoof flagged.

Speed: :class:`ScoreSet` sorts the live scores and each species' attack scores once, merges them in linear
time into one error-rate grid (FAR/FRR at every distinct score) and answers every metric from those arrays
with ``searchsorted``; attack names are encoded to integer codes once. 10⁷ scores take a second or two.
The module-level functions are thin wrappers that build a :class:`ScoreSet` for one call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

ArrayLike = Sequence[float] | np.ndarray

#: Above this many distinct attack names, :func:`factorize` falls back to ``np.unique``.
_MAX_PEEL = 32


def _check(scores: ArrayLike, labels: ArrayLike, need_both: bool = True) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores ({s.size}) and labels ({y.size}) differ in length")
    if np.isnan(s).any():
        raise ValueError(f"scores contain {int(np.isnan(s).sum())} NaN values")
    if y.dtype == bool:
        y = y.astype(np.int8)
    if y.dtype.kind in "iu":
        ok = y.size == 0 or (int(y.min()) >= 0 and int(y.max()) <= 1)
    else:
        try:
            ok = bool(((y == 0) | (y == 1)).all())
        except (TypeError, ValueError):
            ok = False
    if not ok:
        raise ValueError("labels must be 1 (live) or 0 (attack)")
    y = y.astype(np.int64, copy=False)
    if need_both and (not (y == 1).any() or not (y == 0).any()):
        raise ValueError("both live (1) and attack (0) samples are needed")
    return s, y


def factorize(values: ArrayLike | Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Integer codes and the sorted distinct names (as ``str``) of a label array: ``names[codes] == values``.

    Few distinct values (attack types) are peeled off with one vectorised comparison each, which is far
    faster than ``np.unique`` on strings (a string sort); many distinct values fall back to ``np.unique``.
    """
    arr = np.asarray(values).ravel()
    n = arr.size
    if n == 0:
        return np.zeros(0, np.int64), []
    if arr.dtype.kind not in "USiub":
        arr = arr.astype(str)
    codes = np.full(n, -1, np.int64)
    found: list[Any] = []
    unassigned = np.ones(n, bool)
    start = 0
    while len(found) < _MAX_PEEL:
        step = int(np.argmax(unassigned[start:]))  # first value not yet assigned (argmax stops early)
        if not unassigned[start + step]:
            break
        start += step
        value = arr[start]
        hit = arr == value
        codes[hit] = len(found)
        unassigned &= ~hit
        found.append(value)
    else:
        if unassigned.any():  # many distinct values: one sort is cheaper than one pass per value
            uniq, inv = np.unique(arr, return_inverse=True)
            return inv.astype(np.int64).ravel(), [str(x) for x in uniq]
    names = [str(x) for x in found]
    order = sorted(range(len(names)), key=lambda i: names[i])
    remap = np.empty(len(names), np.int64)
    remap[order] = np.arange(len(names))
    return remap[codes], [names[i] for i in order]


class ScoreSet:
    """Scores sorted once for every metric (live, each attack species, and the merged error-rate grid).

    ``ScoreSet(scores, labels, attacks)``; ``attacks`` may be omitted (then every attack is species
    ``"attack"``). All metrics below agree exactly with the module-level functions of the same name.
    """

    def __init__(self, scores: ArrayLike, labels: ArrayLike, attacks: ArrayLike | None = None) -> None:
        s, y = _check(scores, labels)
        live_mask = y == 1
        self.live = np.sort(s[live_mask])
        att = s[~live_mask]
        if attacks is None:
            codes, names = np.zeros(att.size, np.int64), ["attack"]
        else:
            a = np.asarray(attacks).ravel()
            if a.shape != s.shape:
                raise ValueError(f"attacks ({a.size}) and scores ({s.size}) differ in length")
            codes, names = factorize(a[~live_mask])
        self.species: list[str] = names
        if len(names) == 1:
            self.species_scores = [np.sort(att)]
            self.attack = self.species_scores[0]
        else:
            self.species_scores = [np.sort(att[codes == k]) for k in range(len(names))]
            # timsort merges the already-sorted runs in O(n log k)
            self.attack = np.sort(np.concatenate(self.species_scores), kind="stable")
        self.n_live, self.n_attack = int(self.live.size), int(self.attack.size)
        self._grid: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------ rates at given thresholds
    def far_frr(self, thresholds: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """FAR (attacks with score ≥ τ) and FRR (live with score < τ) at each threshold."""
        t = np.asarray(thresholds, dtype=np.float64)
        far = (self.n_attack - np.searchsorted(self.attack, t, side="left")) / self.n_attack
        frr = np.searchsorted(self.live, t, side="left") / self.n_live
        return far, frr

    def grid(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(thresholds, FAR, FRR) at every distinct score and +∞, ascending: the candidate set of the EER."""
        t, far, frr, _, _ = self._full_grid()
        return t, far, frr

    def _full_grid(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self._grid is None:
            merged = np.concatenate([self.live, self.attack])
            perm = np.argsort(merged, kind="stable")  # two sorted runs: a linear-time merge
            values = merged[perm]
            is_live = perm < self.n_live
            del perm, merged
            start = np.flatnonzero(np.concatenate([[True], values[1:] != values[:-1]]))
            live_before = np.concatenate([[0], np.cumsum(is_live)])[start]  # live scores < τ
            att_before = start - live_before  # attack scores < τ
            thr = np.append(values[start], np.inf)
            live_below = np.append(live_before, self.n_live)
            att_below = np.append(att_before, self.n_attack)
            far = (self.n_attack - att_below) / self.n_attack
            frr = live_below / self.n_live
            self._grid = (thr, far, frr, live_below, att_below)
        return self._grid

    # ------------------------------------------------------------------ threshold-free metrics
    def eer(self) -> tuple[float, float]:
        """Equal error rate and its threshold: argmin |FAR − FRR| over the grid (smallest τ on ties)."""
        t, far, frr, live_below, att_below = self._full_grid()
        # |FAR − FRR| compared exactly in integers, so ties break by the rule, not by rounding
        gap = np.abs((self.n_attack - att_below) * self.n_live - live_below * self.n_attack)
        i = int(np.argmin(gap))
        return float((far[i] + frr[i]) / 2), float(t[i])

    def auc(self) -> float:
        """ROC AUC (live positive) = Mann–Whitney U / (n_live·n_attack), ties counting one half."""
        _, _, _, live_below, att_below = self._full_grid()
        live_in = np.diff(live_below)  # live scores equal to each distinct value
        att_in = np.diff(att_below)
        twice_u = int((live_in * (2 * att_below[:-1] + att_in)).sum())
        return float(twice_u / (2 * self.n_live * self.n_attack))

    def roc(self) -> dict[str, np.ndarray]:
        """ROC points by decreasing threshold: ``fpr`` (attacks accepted), ``tpr`` (live accepted)."""
        t, far, frr = self.grid()
        return {"fpr": far[::-1].copy(), "tpr": 1.0 - frr[::-1], "thresholds": t[::-1].copy()}

    def det(self) -> dict[str, np.ndarray]:
        """DET points: APCER (pooled FAR) and BPCER (FRR) over every candidate threshold (ascending)."""
        t, far, frr = self.grid()
        return {"apcer": far, "bpcer": frr, "thresholds": t}

    # ------------------------------------------------------------------ at a threshold
    def apcer_bpcer(self, threshold: float) -> dict[str, Any]:
        """ISO/IEC 30107-3 error rates at ``threshold``: APCER per species and worst, BPCER, ACER, HTER."""
        t = float(threshold)
        per = {name: float((x.size - np.searchsorted(x, t, side="left")) / x.size)
               for name, x in zip(self.species, self.species_scores, strict=True)}
        apcer = max(per.values())
        bpcer = float(np.searchsorted(self.live, t, side="left") / self.n_live)
        pooled = float((self.n_attack - np.searchsorted(self.attack, t, side="left")) / self.n_attack)
        return {"apcer_per_attack": per, "apcer": apcer, "apcer_pooled": pooled, "bpcer": bpcer,
                "acer": (apcer + bpcer) / 2, "hter": (pooled + bpcer) / 2, "threshold": t}

    def threshold_at_apcer(self, target: float) -> float:
        """Smallest threshold at which every species' APCER ≤ ``target`` (bob.pad ``bpcerN`` criterion)."""
        t = -np.inf
        for x in self.species_scores:
            k = int(np.floor(target * x.size + 1e-12))  # at most k attacks of this species may be accepted
            if k < x.size:  # accept only scores strictly above the (k+1)-th largest
                t = max(t, float(np.nextafter(x[x.size - 1 - k], np.inf)))
        return float(t)

    def bpcer_at_apcer(self, target: float) -> tuple[float, float]:
        """BPCER at :meth:`threshold_at_apcer` (``target`` = 0.05 gives BPCER20); returns (bpcer, τ)."""
        t = self.threshold_at_apcer(target)
        return float(np.searchsorted(self.live, t, side="left") / self.n_live), t

    def tpr_at_fpr(self, fpr: float) -> float:
        """CelebA-Spoof TPR@FPR: spoof positive, flagged when score < τ; τ from the sorted live scores."""
        k = int(np.floor(fpr * self.n_live + 1e-12))  # at most k live samples may be flagged
        t = self.live[k] if k < self.n_live else np.inf  # flag scores strictly below the (k+1)-th smallest
        return float(np.searchsorted(self.attack, t, side="left") / self.n_attack)

    def summarize(self, threshold: float) -> dict[str, Any]:
        """Every metric at ``threshold`` plus the threshold-free ones; JSON-serialisable, fractions in [0, 1]."""
        out = self.apcer_bpcer(threshold)
        e, et = self.eer()
        out.update({"auc": self.auc(), "eer": e, "eer_threshold": et})
        for name, target in (("bpcer10", 0.10), ("bpcer20", 0.05), ("bpcer100", 0.01)):
            b, bt = self.bpcer_at_apcer(target)
            out[name], out[f"{name}_threshold"] = b, bt
        for f in (1e-2, 1e-3, 1e-4):
            out[f"tpr@fpr={f:.0e}".replace("e-0", "e-")] = self.tpr_at_fpr(f)
        out.update({"n_live": self.n_live, "n_attack": self.n_attack})
        return out


# ---------------------------------------------------------------------- one-call wrappers
def far_frr(scores: ArrayLike, labels: ArrayLike, thresholds: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """FAR (attacks accepted) and FRR (live rejected) at each threshold."""
    return ScoreSet(scores, labels).far_frr(thresholds)


def eer(scores: ArrayLike, labels: ArrayLike) -> tuple[float, float]:
    """Equal error rate and its threshold (see the module docstring for the tie rule)."""
    return ScoreSet(scores, labels).eer()


def auc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the ROC curve (live positive); ties count one half."""
    return ScoreSet(scores, labels).auc()


def roc(scores: ArrayLike, labels: ArrayLike) -> dict[str, np.ndarray]:
    """ROC points: ``fpr`` (attacks accepted), ``tpr`` (live accepted), ``thresholds`` (decreasing)."""
    return ScoreSet(scores, labels).roc()


def det(scores: ArrayLike, labels: ArrayLike) -> dict[str, np.ndarray]:
    """DET points: APCER (pooled FAR) against BPCER (FRR) over all distinct thresholds."""
    return ScoreSet(scores, labels).det()


def apcer_bpcer(scores: ArrayLike, labels: ArrayLike, attacks: ArrayLike, threshold: float) -> dict[str, Any]:
    """ISO/IEC 30107-3 error rates at one threshold (fractions)."""
    return ScoreSet(scores, labels, attacks).apcer_bpcer(threshold)


def threshold_at_apcer(scores: ArrayLike, labels: ArrayLike, attacks: ArrayLike, target: float) -> float:
    """Smallest threshold at which every species' APCER ≤ ``target``."""
    return ScoreSet(scores, labels, attacks).threshold_at_apcer(target)


def bpcer_at_apcer(scores: ArrayLike, labels: ArrayLike, attacks: ArrayLike, target: float) -> tuple[float, float]:
    """BPCER at the smallest threshold meeting APCER ≤ ``target`` on the worst species; returns (bpcer, τ)."""
    return ScoreSet(scores, labels, attacks).bpcer_at_apcer(target)


def tpr_at_fpr(scores: ArrayLike, labels: ArrayLike, fpr: float) -> float:
    """CelebA-Spoof TPR@FPR: spoof positive, flagged when score < τ; τ from the sorted live scores."""
    return ScoreSet(scores, labels).tpr_at_fpr(fpr)


#: Threshold policies accepted by :func:`select_threshold` (the ``dev_*`` ones expect the dev set's scores).
POLICIES = ("fixed", "eer", "dev_eer", "apcer", "dev_apcer")


def select_threshold(policy: str, scores: ArrayLike, labels: ArrayLike, attacks: ArrayLike | None = None,
                     value: float | None = None) -> float:
    """Threshold policies: ``fixed`` (``value``); ``eer`` / ``dev_eer`` (EER threshold of the given set —
    pass dev data for ``dev_eer``); ``apcer`` / ``dev_apcer`` (smallest τ with worst-species APCER ≤
    ``value`` on the given set, bob.pad's ``bpcerN`` criterion — pass dev data for ``dev_apcer``)."""
    if policy == "fixed":
        if value is None:
            raise ValueError("policy 'fixed' needs a value")
        return float(value)
    if policy in ("eer", "dev_eer"):
        return eer(scores, labels)[1]
    if policy in ("apcer", "dev_apcer"):
        if value is None or attacks is None:
            raise ValueError(f"policy {policy!r} needs attacks and a target APCER value")
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"policy {policy!r}: target APCER {value} is not a fraction in [0, 1]")
        return threshold_at_apcer(scores, labels, attacks, value)
    raise ValueError(f"unknown threshold policy {policy!r}; use one of {', '.join(POLICIES)}")


def separation_gap(scores: ArrayLike, labels: ArrayLike) -> tuple[float, float, bool]:
    """``(highest attack score, lowest live score, separated)``; ``separated`` is True when every live score is
    strictly above every attack score, i.e. any threshold in ``(highest attack, lowest live]`` makes no error."""
    s, y = _check(scores, labels)
    max_attack, min_live = float(s[y == 0].max()), float(s[y == 1].min())
    return max_attack, min_live, bool(min_live > max_attack)


def video_level(scores: ArrayLike, labels: ArrayLike, attacks: ArrayLike, video_ids: ArrayLike
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Video scores = mean of their frames' scores; returns (scores, labels, attacks, video ids)."""
    s, y = _check(scores, labels, need_both=False)
    a = np.asarray(attacks).ravel()
    v = np.asarray(video_ids).ravel()
    if not (a.size == v.size == s.size):
        raise ValueError(f"scores ({s.size}), attacks ({a.size}) and video ids ({v.size}) differ in length")
    ids, first, inv = np.unique(v, return_index=True, return_inverse=True)
    inv = inv.ravel()
    counts = np.bincount(inv)
    mean = np.bincount(inv, weights=s) / counts
    if (y != y[first][inv]).any():
        bad = ids[np.unique(inv[y != y[first][inv]])][:3]
        raise ValueError(f"frames of the same video carry different labels (e.g. {list(bad)})")
    return mean, y[first], a[first], ids


def summarize(scores: ArrayLike, labels: ArrayLike, attacks: ArrayLike, threshold: float) -> dict[str, Any]:
    """Every metric at ``threshold`` plus the threshold-free ones; JSON-serialisable, fractions in [0, 1]."""
    return ScoreSet(scores, labels, attacks).summarize(threshold)
