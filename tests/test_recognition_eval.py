"""Verification metrics (10-fold accuracy against a brute-force computation, TAR@FAR) and pair-list parsers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from openfas.recognition.pairs import PairsError, detect_format, read_pairs, resolve_image
from openfas.recognition.verification import kfold_accuracy, tar_at_far, verification_report


def _brute_force_kfold(scores: list[float], labels: list[int], folds: list[int]) -> float:
    """Plain loops: for each fold, try every threshold candidate on the other folds, keep the first best."""
    accs = []
    for k in sorted(set(folds)):
        train = [(s, y) for s, y, f in zip(scores, labels, folds, strict=True) if f != k]
        test = [(s, y) for s, y, f in zip(scores, labels, folds, strict=True) if f == k]
        uniq = sorted({s for s, _ in train})
        cands = [uniq[0] - 1.0] + [(a + b) / 2 for a, b in zip(uniq, uniq[1:], strict=False)] + [uniq[-1] + 1.0]
        best_t, best_acc = None, -1.0
        for t in cands:
            acc = sum((s >= t) == (y == 1) for s, y in train) / len(train)
            if acc > best_acc:
                best_t, best_acc = t, acc
        accs.append(sum((s >= best_t) == (y == 1) for s, y in test) / len(test))
    return sum(accs) / len(accs)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kfold_accuracy_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 60
    labels = rng.integers(0, 2, n)
    scores = np.round(labels * 0.4 + rng.normal(0, 0.35, n), 2)  # rounding creates ties
    folds = list(np.arange(n) // 6)  # 10 consecutive folds, LFW style
    got = kfold_accuracy(scores, labels, folds)
    assert got["accuracy"] == pytest.approx(_brute_force_kfold(scores.tolist(), labels.tolist(), folds))
    assert len(got["fold_accuracies"]) == 10
    strat = kfold_accuracy(scores, labels)  # no folds given: stratified round-robin
    from openfas.recognition.verification import stratified_folds

    sf = stratified_folds(labels).tolist()
    assert strat["accuracy"] == pytest.approx(_brute_force_kfold(scores.tolist(), labels.tolist(), sf))


def test_perfectly_separable_scores_give_full_accuracy_and_tar() -> None:
    labels = np.array([1] * 20 + [0] * 20)
    scores = np.concatenate([np.linspace(0.6, 0.9, 20), np.linspace(-0.2, 0.3, 20)])
    rep = verification_report(scores, labels)
    assert rep["accuracy"] == 1.0 and rep["auc"] == 1.0 and rep["eer"] == 0.0
    assert rep["tar_at_far"]["0.001"]["tar"] == 1.0
    assert rep["min_far_resolution"] == pytest.approx(1 / 20)


def test_tar_at_far_hand_example() -> None:
    # 10 negatives: one scores above every positive but the best. FAR ≤ 0.1 allows that one false accept but not
    # the nine at 0.1, so the positive at 0.05 stays rejected.
    neg = [0.95] + [0.1] * 9
    pos = [0.99, 0.9, 0.8, 0.05]
    scores = np.array(pos + neg)
    labels = np.array([1] * 4 + [0] * 10)
    assert tar_at_far(scores, labels, 0.0)["tar"] == pytest.approx(0.25)  # threshold above 0.95
    assert tar_at_far(scores, labels, 0.1)["tar"] == pytest.approx(0.75)  # threshold in (0.1, 0.8]
    assert tar_at_far(scores, labels, 1.0)["tar"] == pytest.approx(1.0)


def test_parsers_lfw_mfr2_mlfw(tmp_path: Path) -> None:
    lfw = tmp_path / "lfw_pairs.txt"
    lfw.write_text("2\t1\nAbel_Pacheco\t1\t4\nAbel_Pacheco\t1\tAkhmed_Zakayev\t3\n"
                   "Bob\t2\t3\nBob\t1\tCarol\t1\n")
    p = read_pairs(lfw)
    assert p.format == "lfw" and p.labels == [1, 0, 1, 0] and p.folds == [0, 0, 1, 1]
    assert p.left[0] == "Abel_Pacheco/Abel_Pacheco_0001.jpg" and p.right[1] == "Akhmed_Zakayev/Akhmed_Zakayev_0003.jpg"

    mfr2 = tmp_path / "pairs.txt"
    mfr2.write_text("GaryHerbert 1 3\nGaryHerbert 2 ZuzanaCaputova 4\n\n")
    p = read_pairs(mfr2)
    assert p.format == "mfr2" and p.folds is None and p.labels == [1, 0]
    assert p.right[1] == "ZuzanaCaputova/ZuzanaCaputova_0004.png"

    mlfw = tmp_path / "mlfw.txt"
    mlfw.write_text("a/x_0001.jpg b/y_0002.jpg 0\na/x_0001.jpg a/x_0003.jpg 1\n")
    p = read_pairs(mlfw)
    assert p.format == "mlfw" and p.labels == [0, 1] and p.left == ["a/x_0001.jpg", "a/x_0001.jpg"]
    assert detect_format(["10 300"]) == "lfw"


def test_malformed_pairs_line_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "pairs.txt"
    bad.write_text("Gary 1 3\nGary one Zuzana 2\n")
    with pytest.raises(PairsError, match=r"pairs\.txt:2: expected 'Name i j'"):
        read_pairs(bad)
    bad.write_text("a.jpg b.jpg 1\na.jpg b.jpg yes\n")
    with pytest.raises(PairsError, match=r"pairs\.txt:2: expected 'img1 img2 label'"):
        read_pairs(bad, "mlfw")
    bad.write_text("Gary 1 3\n")
    with pytest.raises(PairsError, match=r"pairs\.txt:1: expected the LFW header"):
        read_pairs(bad, "lfw")
    with pytest.raises(PairsError, match="not found"):
        read_pairs(tmp_path / "missing.txt")
    p = read_pairs(tmp_path / "pairs.txt")
    with pytest.raises(PairsError, match="Gary/Gary_0001.png' not found under"):
        resolve_image(tmp_path, p.left[0], p)


def test_verification_metrics_share_the_pad_core_and_match_independent_computations() -> None:
    from sklearn.metrics import roc_auc_score, roc_curve

    from openfas.eval.metrics import eer as pad_eer

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 400)
    scores = np.round(rng.normal(labels * 0.8, 1.0), 1)  # rounded: many ties
    rep = verification_report(scores, labels)
    assert rep["auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    # EER by its definition: over every distinct score and +inf, argmin |FAR − FRR| (smallest τ on ties)
    cands = np.append(np.unique(scores), np.inf)
    far = np.array([(scores[labels == 0] >= t).mean() for t in cands])
    frr = np.array([(scores[labels == 1] < t).mean() for t in cands])
    i = int(np.argmin(np.abs(far - frr)))
    assert rep["eer"] == pytest.approx((far[i] + frr[i]) / 2, abs=1e-12)
    assert rep["eer"] == pytest.approx(pad_eer(scores, labels)[0], abs=0)  # one rule for PAD and verification
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    for target in (0.0, 0.05, 0.3):
        ok = fpr <= target
        assert rep_tar(scores, labels, target) == pytest.approx(tpr[ok].max(), abs=1e-12)


def rep_tar(scores: np.ndarray, labels: np.ndarray, far: float) -> float:
    return tar_at_far(scores, labels, far)["tar"]
