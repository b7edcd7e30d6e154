"""Metrics against hand-computed values and an independent brute-force threshold sweep."""

from __future__ import annotations

import numpy as np
import pytest

from openfas.eval import metrics as M

# live: 0.9 0.8 0.6 0.4 ; print: 0.7 0.3 ; replay: 0.5 0.2 0.1 0.6
S = np.array([0.9, 0.8, 0.6, 0.4, 0.7, 0.3, 0.5, 0.2, 0.1, 0.6])
Y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
A = np.array(["live"] * 4 + ["print"] * 2 + ["replay"] * 4)


def test_rates_at_threshold_by_hand_ties_count_as_live() -> None:
    r = M.apcer_bpcer(S, Y, A, 0.6)
    # print accepted: 0.7 → 1/2 ; replay accepted: 0.6 (tie ≥ τ) → 1/4 ; live rejected: 0.4 → 1/4
    assert r["apcer_per_attack"] == {"print": 0.5, "replay": 0.25}
    assert r["apcer"] == 0.5
    assert r["apcer_pooled"] == pytest.approx(2 / 6)
    assert r["bpcer"] == 0.25
    assert r["acer"] == pytest.approx((0.5 + 0.25) / 2)
    assert r["hter"] == pytest.approx((2 / 6 + 0.25) / 2)


def test_eer_by_hand() -> None:
    # candidates: τ=0.6 → FAR 2/6, FRR 1/4 (|diff| 1/12); τ=0.7 → FAR 1/6, FRR 2/4 ; τ=0.5 → FAR 3/6, FRR 1/4
    e, t = M.eer(S, Y)
    assert t == 0.6
    assert e == pytest.approx((2 / 6 + 1 / 4) / 2)


def test_auc_equals_mann_whitney() -> None:
    rng = np.random.default_rng(0)
    s = np.round(rng.normal(size=300), 1)  # rounding creates ties
    y = rng.integers(0, 2, 300)
    pos, neg = s[y == 1], s[y == 0]
    u = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (pos.size * neg.size)
    assert M.auc(s, y) == pytest.approx(u)


def test_bpcer_at_apcer_and_tpr_at_fpr_by_hand() -> None:
    # APCER ≤ 0.5 per species: print (2) may accept 1 → τ just above 0.3; replay (4) may accept 2 → above 0.2
    # → τ = next float after 0.3 ; live rejected: none (min live 0.4) → BPCER 0
    b, t = M.bpcer_at_apcer(S, Y, A, 0.5)
    assert t == np.nextafter(0.3, 1) and b == 0.0
    # APCER ≤ 0: τ above 0.7 → live rejected: 0.6, 0.4 → 2/4
    b, t = M.bpcer_at_apcer(S, Y, A, 0.0)
    assert b == 0.5
    # CelebA-Spoof: FPR 0.25 → 1 of 4 live may be flagged → τ = 2nd smallest live (0.6): spoof < 0.6: 0.5 0.3 0.2 0.1
    assert M.tpr_at_fpr(S, Y, 0.25) == pytest.approx(4 / 6)
    # FPR 0 → τ = smallest live (0.4): spoof < 0.4: 0.3 0.2 0.1
    assert M.tpr_at_fpr(S, Y, 0.0) == pytest.approx(3 / 6)


def _brute(s: np.ndarray, y: np.ndarray, a: np.ndarray) -> tuple[float, float, float]:
    cands = sorted(set(s.tolist())) + [np.inf]
    best = None
    for t in cands:  # EER by a plain loop
        far = sum(1 for v, l in zip(s, y, strict=True) if l == 0 and v >= t) / (y == 0).sum()
        frr = sum(1 for v, l in zip(s, y, strict=True) if l == 1 and v < t) / (y == 1).sum()
        if best is None or abs(far - frr) < best[0] - 1e-15:
            best = (abs(far - frr), (far + frr) / 2)
    bp = None
    for t in sorted(set(s.tolist()) | {np.nextafter(v, np.inf) for v in s.tolist()}):
        worst = max(np.mean(s[(y == 0) & (a == sp)] >= t) for sp in ("print", "replay"))
        if worst <= 0.05:
            bp = float(np.mean(s[y == 1] < t))
            break
    live = s[y == 1]
    tpr = None
    for t in sorted(set(live.tolist()), reverse=True):  # largest τ with live flagged ≤ 1 %
        if np.mean(live < t) <= 0.01:
            tpr = float(np.mean(s[y == 0] < t))
            break
    return best[1], bp, tpr


def test_against_brute_force_sweep() -> None:
    rng = np.random.default_rng(1)
    for _ in range(3):
        n = 400
        y = (rng.random(n) < 0.4).astype(int)
        s = np.round(rng.normal(y * 1.2, 1.0), 2)
        a = np.where(y == 1, "live", np.where(rng.random(n) < 0.5, "print", "replay"))
        e, b, tpr = _brute(s, y, a)
        assert M.eer(s, y)[0] == pytest.approx(e)
        assert M.bpcer_at_apcer(s, y, a, 0.05)[0] == pytest.approx(b)
        assert M.tpr_at_fpr(s, y, 0.01) == pytest.approx(tpr)


def test_video_level_and_errors() -> None:
    s, y, a, ids = M.video_level([0.2, 0.4, 0.9], [0, 0, 1], ["print", "print", "live"], ["v1", "v1", "v2"])
    assert ids.tolist() == ["v1", "v2"] and s.tolist() == pytest.approx([0.3, 0.9]) and y.tolist() == [0, 1]
    with pytest.raises(ValueError, match="different labels"):
        M.video_level([0.2, 0.4], [0, 1], ["print", "live"], ["v", "v"])
    with pytest.raises(ValueError, match="NaN"):
        M.eer([0.1, np.nan], [0, 1])
    with pytest.raises(ValueError, match="both live"):
        M.auc([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="differ in length"):
        M.eer([0.1, 0.2], [1])


def test_summarize_is_json_serialisable() -> None:
    import json

    out = M.summarize(S, Y, A, 0.6)
    json.dumps(out)
    assert out["n_live"] == 4 and out["n_attack"] == 6
