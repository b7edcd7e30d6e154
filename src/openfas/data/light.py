"""Light shortcuts: can a few numbers about a crop's LIGHT tell live from attack in a dataset?

A model trained on one room's recordings can learn the room instead of the attack. On NUAA's training sessions the
face's mean colour alone (three numbers) separates live from print across sessions at AUC 1.000 / 0.993, and its
noise relative to its brightness at 0.98 / 0.99 (docs/real_faces.md): live faces there are darker, warmer and
noisier than the prints, and a CNN trained on them scored an unseen session below chance. :func:`light_shortcuts`
measures such statistics per split of a crop cache so that ``openfas data inspect`` can warn before training;
``data.augment: relight`` (:class:`openfas.data.transforms.RandomRelight`) is the remedy it suggests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from openfas.data.cache import CropCacheReader
from openfas.data.locate import crop_geometry
from openfas.data.sample import LIVE, CropRecord
from openfas.data.transforms import central_window, face_fraction

STATISTICS = ("brightness", "colour", "noise", "noise/brightness")


def face_window(size: int, crop_scale: float) -> slice:
    """The central square of a crop cut at ``crop_scale`` × the face box that lies on the face
    (:func:`openfas.data.transforms.face_fraction`)."""
    return central_window(size, face_fraction(crop_scale))


def light_statistics(crop: np.ndarray, crop_scale: float = 1.5) -> dict[str, np.ndarray]:
    """Light statistics of one H×W×3 uint8 crop's face window.

    ``brightness``: mean grey level; ``colour``: the channel means divided by their sum (white balance, 3 values);
    ``noise``: log of the median absolute 4-neighbour Laplacian of the grey face (a robust sensor-noise level);
    ``noise/brightness``: log of that level over the brightness.
    """
    if crop.ndim != 3 or crop.shape[2] != 3:
        raise ValueError(f"light statistics need an H×W×3 crop, got shape {crop.shape}")
    rows, cols = face_window(crop.shape[0], crop_scale), face_window(crop.shape[1], crop_scale)
    face = crop[rows, cols].astype(np.float64)
    means = face.reshape(-1, 3).mean(0)
    grey = face.mean(-1)
    lap = 4 * grey[1:-1, 1:-1] - grey[2:, 1:-1] - grey[:-2, 1:-1] - grey[1:-1, 2:] - grey[1:-1, :-2]
    noise = float(np.median(np.abs(lap))) if lap.size else 0.0
    bright = float(grey.mean())
    return {
        "brightness": np.array([bright]),
        "colour": means / max(float(means.sum()), 1e-6),
        "noise": np.array([np.log(noise + 1e-3)]),
        "noise/brightness": np.array([np.log((noise + 1e-3) / max(bright, 1e-3))]),
    }


@dataclass(frozen=True)
class ShortcutReport:
    """How well one light statistic separates live from attack within one split."""

    split: str
    statistic: str
    auc: float          # live vs attack; 0.5 = the statistic says nothing (see shortcut_aucs)
    live: int
    attack: int

    @property
    def strength(self) -> float:
        """|AUC − 0.5| × 2: 0 = the statistic says nothing about the label, 1 = it decides it alone."""
        return abs(self.auc - 0.5) * 2


def shortcut_aucs(features: dict[str, np.ndarray], labels: np.ndarray, split: str) -> list[ShortcutReport]:
    """AUC of each statistic alone, live = positive.

    A one-number statistic is scored as it is (AUC > 0.5: live crops have the higher values, < 0.5: the lower);
    a vector (``colour``) by a logistic regression, cross-validated over 5 folds (its AUC is then ≥ 0.5 up to noise).
    """
    live, attack = int((labels == 1).sum()), int((labels == 0).sum())
    out = []
    for name, f in features.items():
        if min(live, attack) < 5:
            continue
        if f.shape[1] == 1:
            score = f[:, 0]
        else:
            clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
            score = cross_val_predict(clf, f, labels, cv=min(5, live, attack), method="decision_function")
        out.append(ShortcutReport(split, name, float(roc_auc_score(labels, score)), live, attack))
    return out


def light_shortcuts(reader: CropCacheReader, splits: Sequence[str] | None = None, per_split: int = 2000,
                    seed: int = 0, records: Sequence[CropRecord] | None = None,
                    domains: Sequence[str] | None = None) -> list[ShortcutReport]:
    """Light-statistic AUCs per split of a cache (at most ``per_split`` crops per split, drawn with ``seed``).

    A cache that holds several domains (datasets) is measured per domain and split (reported as
    ``domain/split``): a statistic that tells live from attack inside each dataset is the shortcut, whatever
    it does across them. ``domains``: only these (default: all). ``records``: the cache's records when the
    caller has already read them (else they are read here)."""
    scale = float(crop_geometry(reader.cache_dir).get("scale") or 1.5)
    if records is None:
        records = reader.records()
    if domains is not None:
        records = [r for r in records if r.domain in set(domains)]
    chosen = sorted({r.split for r in records}) if splits is None else list(splits)
    several = len({r.domain for r in records}) > 1
    groups = sorted({(r.domain if several else "", r.split) for r in records if r.split in chosen},
                    key=lambda g: (chosen.index(g[1]), g[0]))
    rng = np.random.default_rng(seed)
    reports: list[ShortcutReport] = []
    for domain, split in groups:
        recs = [r for r in records if r.split == split and (not several or r.domain == domain)]
        if len(recs) > per_split:
            recs = [recs[i] for i in sorted(rng.choice(len(recs), per_split, replace=False))]
        stats = [light_statistics(reader.image(r.sample_id, "rgb"), scale) for r in recs]
        feats = {k: np.stack([s[k] for s in stats]) for k in STATISTICS}
        labels = np.array([1 if r.label == LIVE else 0 for r in recs])
        reports += shortcut_aucs(feats, labels, f"{domain}/{split}" if several else split)
    return reports


def shortcut_lines(reports: Sequence[ShortcutReport], warn_at: float = 0.8) -> list[str]:
    """Human-readable lines for ``data inspect``: a table, then a warning per statistic that nearly decides a split."""
    if not reports:
        return ["light shortcuts: not measured (a split needs at least 5 live and 5 attack crops)"]
    lines = ["light shortcuts (AUC of one light statistic of the face alone, live vs attack; 0.5 = none, "
             "< 0.5 = live lower):",
             f"  {'split':10s} {'statistic':18s} {'AUC':>6s}"]
    lines += [f"  {r.split:10s} {r.statistic:18s} {r.auc:6.3f}" for r in reports]
    for split in dict.fromkeys(r.split for r in reports):
        strong = [r for r in reports if r.split == split and r.strength >= warn_at]
        if strong:
            what = ", ".join(f"{r.statistic} (AUC {r.auc:.3f})" for r in strong)
            lines.append(f"WARNING: in split {split!r} each of these statistics of the face's light alone separates "
                         f"live from attack: {what}. A model can learn this recording's light instead of the attack: "
                         "train with data.augment=relight and check on another session or camera.")
    return lines
