"""Embed face images with a trained recognition model and evaluate verification pairs.

Pair score = cosine similarity of the L2-normalised embeddings (optionally of the image + its mirror, summed
before normalising, as insightface does). Metrics: :func:`openfas.recognition.verification.verification_report`.
When the image root has a ``masks.csv`` (``file,…,coverage[,degraded]``; written by the synthetic generator)
the Spearman correlation between the model's quality score C(X) and the mask coverage is added, and how well
C(X) separates clean from degraded images (ROC AUC). For every multi-decision model the report also says whether a
low pair quality min(C(left), C(right)) flags the pairs verified wrongly (:func:`quality_vs_errors`).

Images are either already chips of the model's geometry (``preparer=None``: resized to the input size) or photos
that a :class:`~openfas.recognition.align.FacePreparer` turns into chips (detect, landmarks, chip); the result
then says how each face was found and how many were not (``faces``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from openfas.data.transforms import to_chw_float
from openfas.data.video import read_image
from openfas.eval.metrics import auc
from openfas.recognition.align import FacePreparer, PreparationReport
from openfas.recognition.data import load_face
from openfas.recognition.pairs import PairList, read_pairs, resolve_image
from openfas.recognition.verification import stratified_folds, verification_report


@torch.no_grad()
def embed_batch(model: torch.nn.Module, method: Any, x: torch.Tensor, flip: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(N×D L2-normalised embeddings, N C(X), N×n weights) of a batch; with ``flip`` the embedding of each face
    and of its left–right mirror are summed before normalising (C(X) and the weights are the unmirrored face's)."""
    e, q, w = method.embed(model, x)
    if flip:
        e = e + method.embed(model, torch.flip(x, dims=[3]))[0]
    return F.normalize(e.float(), dim=1), q.float(), w.float()


def load_prepared(path: str | Path, preparer: FacePreparer, image_size: int, mean: float, std: float,
                  report: PreparationReport | None = None, name: str | None = None) -> torch.Tensor:
    """A photo → its chip (``preparer``) → normalised 3×S×S RGB tensor; counts the face's route in ``report``."""
    img = read_image(path)
    prepared = preparer(img, str(path))
    chip = prepared.chip
    if chip.shape[:2] != (image_size, image_size):
        chip = cv2.resize(chip, (image_size, image_size), interpolation=cv2.INTER_AREA)
    if report is not None:
        how = prepared.face.how
        report.counts[how] = report.counts.get(how, 0) + 1
        if not prepared.found:
            report.not_found.append(name or str(path))
    return torch.from_numpy(to_chw_float(chip, mean, std))


def new_report(preparer: FacePreparer | None, image_size: int) -> PreparationReport:
    """An empty :class:`PreparationReport` for ``preparer`` (``None``: the images are chips already)."""
    if preparer is None:
        return PreparationReport(f"aligned input: each image resized to {image_size} px", {}, [])
    return PreparationReport(preparer.describe(), {}, [])


@torch.no_grad()
def embed_files(model: torch.nn.Module, method: Any, files: list[Path], image_size: int, mean: float, std: float,
                device: torch.device, batch_size: int = 64, flip: bool = False,
                preparer: FacePreparer | None = None, report: PreparationReport | None = None,
                names: list[str] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N×D L2-normalised embeddings, N quality scores C(X) (NaN for single-decision models), N×n weights).

    ``preparer``: the files are photos, cut into chips first (their routes counted in ``report``, the ones
    without a face listed by ``names``); ``None``: they are chips already, resized to ``image_size``."""
    model.eval().to(device)
    embs, quals, weights = [], [], []
    names = names or [str(f) for f in files]
    for k in range(0, len(files), batch_size):
        if preparer is None:
            x = torch.stack([load_face(f, image_size, mean, std) for f in files[k:k + batch_size]])
            if report is not None:
                report.counts["aligned"] = report.counts.get("aligned", 0) + len(files[k:k + batch_size])
        else:
            x = torch.stack([load_prepared(f, preparer, image_size, mean, std, report, n)
                             for f, n in zip(files[k:k + batch_size], names[k:k + batch_size], strict=True)])
        x = x.to(device)
        e, q, w = embed_batch(model, method, x, flip)
        embs.append(e.cpu())
        quals.append(q.cpu())
        weights.append(w.cpu())
    return torch.cat(embs).numpy(), torch.cat(quals).numpy(), torch.cat(weights).numpy()


def read_coverage(path: Path, column: str = "coverage") -> dict[str, float]:
    """``file → value`` of one numeric column of a ``masks.csv`` (empty when the column is absent)."""
    with open(path, newline="") as f:
        return {row["file"]: float(row[column]) for row in csv.DictReader(f) if row.get(column) not in (None, "")}


def quality_vs_errors(pair_quality: np.ndarray, correct: np.ndarray) -> dict[str, Any] | None:
    """Does a low C(X) flag the pairs the model gets wrong?

    ``pair_quality`` = min(C(left), C(right)) per pair; ``correct`` = the pair's decision at its fold's k-fold
    threshold was right. Reports the ROC AUC of (−quality) for "wrong" (0.5 = no signal, 1 = every wrong pair
    has a lower C(X) than every right one), the Spearman ρ between quality and correctness, and the error rate
    among the 25 % lowest-quality pairs vs the other 75 %."""
    from scipy.stats import spearmanr

    q = np.asarray(pair_quality, np.float64)
    ok = np.asarray(correct, bool)
    keep = np.isfinite(q)
    q, ok = q[keep], ok[keep]
    if len(q) < 4 or ok.all() or not ok.any():
        return None
    low = q <= np.quantile(q, 0.25)
    return {"auc_wrong_by_low_quality": auc(-q, (~ok).astype(np.int64)),
            "spearman_quality_correct": float(spearmanr(q, ok.astype(float))[0]) if np.ptp(q) > 0 else None,
            "error_rate_lowest_quartile": float((~ok[low]).mean()),
            "error_rate_other_pairs": float((~ok[~low]).mean()) if (~low).any() else None,
            "wrong_pairs": int((~ok).sum()), "pairs": int(len(q))}


def pair_correctness(scores: np.ndarray, labels: np.ndarray, report: dict[str, Any],
                     folds: list[int] | None) -> np.ndarray:
    """Per pair: is ``score >= threshold`` of its own k-fold split equal to its label?"""
    f = stratified_folds(labels) if folds is None else np.asarray(folds)
    thr = dict(zip(np.unique(f).tolist(), report["fold_thresholds"], strict=True))
    t = np.array([thr[int(k)] for k in f])
    return (scores >= t) == (np.asarray(labels) == 1)


def quality_vs_degradation(quality: dict[str, float], degraded: dict[str, float]) -> dict[str, Any] | None:
    """Does C(X) separate clean from degraded (blur/noise/JPEG) images? ROC AUC of C(X) for "clean"."""
    keys = [k for k in quality if k in degraded and np.isfinite(quality[k])]
    d = np.array([degraded[k] > 0 for k in keys])
    if len(keys) < 3 or d.all() or not d.any():
        return None
    q = np.array([quality[k] for k in keys])
    return {"auc_clean": auc(q, (~d).astype(np.int64)), "quality_mean_clean": float(q[~d].mean()),
            "quality_mean_degraded": float(q[d].mean()), "degraded_images": int(d.sum())}


def evaluate_pairs(model: torch.nn.Module, method: Any, pairs: str | Path | PairList, root: str | Path | None,
                   image_size: int, mean: float, std: float, device: torch.device, batch_size: int = 64,
                   fmt: str = "auto", ext: str | None = None, flip: bool = False,
                   out_dir: str | Path | None = None, preparer: FacePreparer | None = None) -> dict[str, Any]:
    """Verification metrics of ``pairs`` (images under ``root``, default the pairs file's folder).

    ``preparer``: the images are photos, cut into chips by it (see the module docstring); the result's ``faces``
    counts how each face was found and lists the images where none was (they are scored from the fallback chip).
    With ``out_dir``: writes ``scores_pairs.csv`` (left, right, label, score) and ``quality.csv``.
    """
    pl = pairs if isinstance(pairs, PairList) else read_pairs(pairs, fmt, ext)
    base = Path(root) if root is not None else Path(pl.source).parent
    rels = sorted(set(pl.left) | set(pl.right))
    files = [resolve_image(base, r, pl) for r in rels]
    report = new_report(preparer, image_size)
    emb, qual, weights = embed_files(model, method, files, image_size, mean, std, device, batch_size, flip,
                                     preparer, report, rels)
    index = {r: i for i, r in enumerate(rels)}
    li = np.array([index[r] for r in pl.left])
    ri = np.array([index[r] for r in pl.right])
    scores = (emb[li] * emb[ri]).sum(1)
    labels = np.array(pl.labels)
    result: dict[str, Any] = {"pairs_file": pl.source, "pairs_format": pl.format, "root": str(base),
                              "flip": flip, "score": "cosine similarity", "faces": report.to_json()}
    result.update(verification_report(scores, labels, pl.folds))
    if np.isfinite(qual).any():
        result["quality_mean"] = float(np.nanmean(qual))
        errs = quality_vs_errors(np.minimum(qual[li], qual[ri]), pair_correctness(scores, labels, result, pl.folds))
        if errs is not None:
            result["quality_vs_errors"] = errs
        cov_file = base / "masks.csv"
        if cov_file.is_file():
            coverage = read_coverage(cov_file)
            quality = {r: float(q) for r, q in zip(rels, qual, strict=True)}
            result["quality_vs_coverage"] = quality_coverage_correlation(quality, coverage)
            deg = quality_vs_degradation(quality, read_coverage(cov_file, "degraded"))
            if deg is not None:
                result["quality_vs_degradation"] = deg
            masked = np.array([coverage.get(r, np.nan) > 0 for r in rels])
            if masked.any() and (~masked).any():  # where the concept branch looks, with and without a mask
                w64 = weights.astype(np.float64)
                result["sub_decision_weights"] = {"unmasked": w64[~masked].mean(0).round(4).tolist(),
                                                  "masked": w64[masked].mean(0).round(4).tolist()}
    tar = result["tar_at_far"]
    result["headline"] = {"accuracy": result["accuracy"], "accuracy_std": result["accuracy_std"],
                          "auc": result["auc"], "eer": result["eer"],
                          **{f"tar@far={k}": v["tar"] for k, v in tar.items()}}
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "scores_pairs.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["left", "right", "label", "score"])
            for a, b, y, s in zip(pl.left, pl.right, labels.tolist(), scores.tolist(), strict=True):
                w.writerow([a, b, y, f"{s:.6f}"])
        with open(out / "quality.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["file", "quality"])
            for r, q in zip(rels, qual.tolist(), strict=True):
                w.writerow([r, f"{q:.6f}"])
        (out / "metrics.json").write_text(json.dumps(result, indent=2))
    return result


def quality_coverage_correlation(quality: dict[str, float], coverage: dict[str, float]) -> dict[str, Any]:
    """Spearman ρ between C(X) and mask coverage, over all images and over masked images only."""
    from scipy.stats import spearmanr

    common = [k for k in quality if k in coverage and np.isfinite(quality[k]) and np.isfinite(coverage[k])]
    q = np.array([quality[k] for k in common])
    c = np.array([coverage[k] for k in common])
    out: dict[str, Any] = {"images": len(common)}

    def rho(a: np.ndarray, b: np.ndarray) -> float | None:  # undefined (None) when either side is constant
        if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
            return None
        return float(spearmanr(a, b).statistic)

    if len(common) >= 3:
        out["spearman_all"] = rho(q, c)
        m = c > 0
        out["masked_images"] = int(m.sum())
        out["spearman_masked"] = rho(q[m], c[m])
        out["quality_mean_unmasked"] = float(q[~m].mean()) if (~m).any() else None
        out["quality_mean_masked"] = float(q[m].mean()) if m.any() else None
    return out


def is_verification_run(run_dir: str | Path) -> bool:
    """True when ``run_dir/metrics.json`` holds verification metrics (written by :func:`evaluate_pairs`)."""
    f = Path(run_dir) / "metrics.json"
    try:
        return f.is_file() and "tar_at_far" in json.loads(f.read_text())
    except (OSError, json.JSONDecodeError):
        return False


def compare_verification_runs(run_dirs: list[Path]) -> str:
    """A text table, one column per run: accuracy, AUC, EER, TAR@FAR and the C(X)–coverage correlation (%)."""
    cols = [(Path(r).name, json.loads((Path(r) / "metrics.json").read_text())) for r in run_dirs]

    def pct(v: Any) -> str:
        return "–" if v is None else f"{100 * v:.2f}"

    rows: list[tuple[str, list[str]]] = [
        ("pairs", [str(m.get("pairs", "?")) for _, m in cols]),
        ("accuracy (%)", [f"{100 * m['accuracy']:.2f} ± {100 * m['accuracy_std']:.2f}" for _, m in cols]),
        ("AUC (%)", [pct(m.get("auc")) for _, m in cols]),
        ("EER (%)", [pct(m.get("eer")) for _, m in cols]),
    ]
    fars = sorted({k for _, m in cols for k in m.get("tar_at_far", {})}, key=float, reverse=True)
    rows += [(f"TAR@FAR={k} (%)", [pct(m.get("tar_at_far", {}).get(k, {}).get("tar")) for _, m in cols])
             for k in fars]
    rows.append(("Spearman C(X)~coverage", [
        "–" if m.get("quality_vs_coverage", {}).get("spearman_all") is None
        else f"{m['quality_vs_coverage']['spearman_all']:+.3f}" for _, m in cols]))
    width = max(len(r[0]) for r in rows)
    colw = [max(len(name), *(len(r[1][i]) for r in rows)) for i, (name, _) in enumerate(cols)]
    lines = [" | ".join([f"{'metric':{width}s}", *(f"{n:>{w}s}" for (n, _), w in zip(cols, colw, strict=True))])]
    lines.append("-|-".join(["-" * width, *("-" * w for w in colw)]))
    lines += [" | ".join([f"{k:{width}s}", *(f"{v:>{w}s}" for v, w in zip(vals, colw, strict=True))])
              for k, vals in rows]
    return "\n".join(lines)


__all__ = ["compare_verification_runs", "embed_files", "evaluate_pairs", "is_verification_run", "load_prepared",
           "new_report",
           "pair_correctness", "quality_coverage_correlation", "quality_vs_degradation", "quality_vs_errors",
           "read_coverage"]
