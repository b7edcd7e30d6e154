"""PNG figures of an evaluation (matplotlib, Agg backend): ROC, DET, score histograms, confusion, examples.

Every function takes arrays, writes one PNG and returns its path; curves of millions of scores are thinned
to a few thousand points first (the curve drawn is unchanged at screen resolution).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import norm  # noqa: E402

from openfas.eval.metrics import ScoreSet  # noqa: E402

_MAX_POINTS = 4000


def _thin(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    n = arrays[0].size
    if n <= _MAX_POINTS:
        return arrays
    idx = np.unique(np.linspace(0, n - 1, _MAX_POINTS).astype(np.int64))
    return tuple(a[idx] for a in arrays)


def _save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_roc(sets: dict[str, ScoreSet], path: str | Path, threshold: float | None = None) -> Path:
    """ROC (TPR = live accepted against FPR = attacks accepted, log x axis), one curve per entry of ``sets``."""
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for name, ss in sets.items():
        r = ss.roc()
        fpr, tpr = _thin(r["fpr"], r["tpr"])
        ax.plot(np.maximum(fpr, 1e-5), tpr, label=f"{name} (AUC {100 * ss.auc():.2f} %)")
        if threshold is not None:
            far, frr = ss.far_frr([threshold])
            ax.plot(max(far[0], 1e-5), 1 - frr[0], "o", color=ax.lines[-1].get_color())
    ax.set_xscale("log")
    ax.set_xlim(1e-5, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("FPR (attacks accepted as live)")
    ax.set_ylabel("TPR (live accepted)")
    ax.set_title("ROC" + (" (dot: chosen threshold)" if threshold is not None else ""))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_det(sets: dict[str, ScoreSet], path: str | Path, threshold: float | None = None) -> Path:
    """DET: BPCER against APCER (pooled) on normal-deviate axes, as bob.pad's ``det`` plot."""
    lo = 1e-4
    ticks = np.array([1e-3, 1e-2, 5e-2, 0.2, 0.5, 0.8, 0.95])
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for name, ss in sets.items():
        d = ss.det()
        apcer, bpcer = _thin(d["apcer"], d["bpcer"])
        ax.plot(norm.ppf(np.clip(apcer, lo, 1 - lo)), norm.ppf(np.clip(bpcer, lo, 1 - lo)), label=name)
        e, _ = ss.eer()
        ax.plot(norm.ppf(np.clip(e, lo, 1 - lo)), norm.ppf(np.clip(e, lo, 1 - lo)), "x",
                color=ax.lines[-1].get_color())
        if threshold is not None:
            far, frr = ss.far_frr([threshold])
            ax.plot(norm.ppf(np.clip(far[0], lo, 1 - lo)), norm.ppf(np.clip(frr[0], lo, 1 - lo)), "o",
                    color=ax.lines[-1].get_color())
    labels = [f"{100 * t:g}" for t in ticks]
    ax.set_xticks(norm.ppf(ticks), labels)
    ax.set_yticks(norm.ppf(ticks), labels)
    ax.set_xlim(norm.ppf(lo), norm.ppf(0.99))
    ax.set_ylim(norm.ppf(lo), norm.ppf(0.99))
    ax.plot(ax.get_xlim(), ax.get_ylim(), ":", color="grey", lw=0.8)
    ax.set_xlabel("APCER, pooled (%)")
    ax.set_ylabel("BPCER (%)")
    ax.set_title("DET (x: EER, dot: chosen threshold)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    return _save(fig, path)


def plot_histograms(scores: np.ndarray, attacks: Sequence[str], path: str | Path,
                    threshold: float | None = None, bins: int = 50) -> Path:
    """Score histogram per attack type (``live`` included), normalised per type, with the threshold line."""
    s = np.asarray(scores, dtype=np.float64)
    a = np.asarray(attacks).astype(str)
    edges = np.histogram_bin_edges(s, bins=bins)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    names = sorted(set(a.tolist()), key=lambda x: (x != "live", x))
    for name in names:
        x = s[a == name]
        ax.hist(x, bins=edges.tolist(), histtype="step", density=True, lw=1.6, label=f"{name} ({x.size})")
    if threshold is not None:
        ax.axvline(threshold, color="black", ls="--", lw=1, label=f"threshold {threshold:.4g}")
    ax.set_xlabel("score (higher = more live)")
    ax.set_ylabel("density")
    ax.set_title("Score distribution per attack type")
    ax.legend(fontsize=8)
    return _save(fig, path)


def confusion_counts(scores: np.ndarray, attacks: Sequence[str], threshold: float
                     ) -> tuple[list[str], np.ndarray]:
    """Rows = attack types (live first), columns = (accepted as live, rejected as attack) at ``threshold``."""
    s = np.asarray(scores, dtype=np.float64)
    a = np.asarray(attacks).astype(str)
    names = sorted(set(a.tolist()), key=lambda x: (x != "live", x))
    counts = np.array([[int((s[a == n] >= threshold).sum()), int((s[a == n] < threshold).sum())] for n in names])
    return names, counts


def plot_confusion(scores: np.ndarray, attacks: Sequence[str], threshold: float, path: str | Path) -> Path:
    """Decision counts per attack type at ``threshold`` (cells: count and row percentage)."""
    names, counts = confusion_counts(scores, attacks, threshold)
    frac = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(4.8, 0.6 * len(names) + 1.6))
    ax.imshow(frac, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for i in range(len(names)):
        for j in range(2):
            ax.text(j, i, f"{counts[i, j]}\n{100 * frac[i, j]:.1f} %", ha="center", va="center",
                    color="white" if frac[i, j] > 0.6 else "black", fontsize=9)
    ax.set_xticks([0, 1], ["accepted as live", "rejected as attack"])
    ax.set_yticks(range(len(names)), names)
    ax.set_title(f"Decisions at threshold {threshold:.4g}")
    return _save(fig, path)


def plot_examples(images: Sequence[np.ndarray], titles: Sequence[str], path: str | Path,
                  maps: Sequence[np.ndarray | None] | None = None, columns: int = 4) -> Path:
    """A grid of RGB crops with titles; with ``maps``, each crop is followed by its predicted map."""
    per = 2 if maps is not None else 1
    n = max(1, len(images))
    cols = min(columns, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols * per, figsize=(2.3 * cols * per, 2.5 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, (img, title) in enumerate(zip(images, titles, strict=True)):
        r, c = divmod(i, cols)
        ax = axes[r, c * per]
        ax.imshow(img)
        ax.set_title(title, fontsize=7)
        heat = None if maps is None else maps[i]
        if heat is not None:
            m = axes[r, c * per + 1]
            m.imshow(heat, cmap="viridis", vmin=0, vmax=max(1.0, float(np.max(heat))))
            m.set_title("predicted map", fontsize=7)
    return _save(fig, path)
