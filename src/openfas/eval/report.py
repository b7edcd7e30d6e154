"""A self-contained HTML evaluation report of a run folder (``report.html`` plus the PNGs in ``figures/``).

Sections: threshold policy and headline metrics; frame- and video-level metric tables with APCER per PAI
species; ROC and DET curves; score histograms per attack type; decisions at the chosen threshold; the
worst-scored examples (attacks scored most live, live faces scored least live) with their crops from the crop
cache; and, for pixel-wise methods given a model, their predicted maps next to the inputs. Images are
embedded as base64 so the page can be moved or mailed alone.
"""

from __future__ import annotations

import base64
import html
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from openfas.data.cache import CropCacheReader
from openfas.errors import OpenFASError
from openfas.eval import metrics as M
from openfas.eval import plots
from openfas.eval.runfiles import read_run_json
from openfas.eval.runner import Scorer, predict_samples
from openfas.eval.scores import ScoreTable, read_scores_csv, video_table

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

SCORE_FILES = ("scores_test.csv", "scores.csv")
_ROWS = [("auc", "AUC"), ("eer", "EER"), ("hter", "HTER"), ("apcer", "APCER (worst species)"),
         ("apcer_pooled", "APCER (pooled)"), ("bpcer", "BPCER"), ("acer", "ACER"), ("bpcer10", "BPCER10"),
         ("bpcer20", "BPCER20"), ("bpcer100", "BPCER100"), ("tpr@fpr=1e-2", "TPR@FPR=1e-2"),
         ("tpr@fpr=1e-3", "TPR@FPR=1e-3"), ("tpr@fpr=1e-4", "TPR@FPR=1e-4")]


class ReportError(OpenFASError, RuntimeError):
    """A run folder lacks what a report needs (the message names the file)."""


def load_run_files(run_dir: str | Path) -> tuple[dict[str, Any], ScoreTable, dict[str, Any] | None]:
    """``metrics.json``, the per-frame test scores and ``config.json`` (None when absent) of a run folder."""
    run_dir = Path(run_dir)
    try:
        metrics = read_run_json(run_dir, "metrics.json")
        config = read_run_json(run_dir, "config.json", required=False)
    except (FileNotFoundError, ValueError) as err:
        raise ReportError(str(err)) from None
    spath = next((run_dir / n for n in SCORE_FILES if (run_dir / n).exists()), None)
    if spath is None:
        raise ReportError(f"{run_dir}: no per-frame scores ({' or '.join(SCORE_FILES)})")
    table = read_scores_csv(spath)
    return metrics, table, config


def _img_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"><figcaption>' \
           f"{html.escape(alt)}</figcaption></figure>"


def _pct(x: Any) -> str:
    return f"{100 * float(x):.2f}" if isinstance(x, int | float) else "–"


def _metrics_table(levels: dict[str, dict[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(k)} level (%)</th>" for k in levels)
    rows = []
    for key, name in _ROWS:
        if any(key in v for v in levels.values()):
            rows.append(f"<tr><td>{name}</td>" + "".join(f"<td>{_pct(v.get(key))}</td>" for v in levels.values())
                        + "</tr>")
    species = sorted({sp for v in levels.values() for sp in v.get("apcer_per_attack", {})})
    for sp in species:
        rows.append(f"<tr><td>APCER {html.escape(sp)}</td>"
                    + "".join(f"<td>{_pct(v.get('apcer_per_attack', {}).get(sp))}</td>" for v in levels.values())
                    + "</tr>")
    for key in ("n_live", "n_attack"):
        rows.append(f"<tr><td>{key}</td>" + "".join(f"<td>{v.get(key, '–')}</td>" for v in levels.values())
                    + "</tr>")
    return f'<table class="metrics"><tr><th>metric</th>{head}</tr>{"".join(rows)}</table>'


def _find_cache(config: dict[str, Any] | None, cache_dir: str | Path | None) -> Path | None:
    if cache_dir is not None:
        return Path(cache_dir)
    cache = ((config or {}).get("data") or {}).get("cache")
    if cache and cache != "synthetic" and (Path(cache).expanduser() / "crops.lmdb").exists():
        return Path(cache).expanduser()
    return None


def worst_examples(table: ScoreTable, n: int) -> list[int]:
    """Row indices of the ``n // 2`` highest-scored attacks and the ``n - n // 2`` lowest-scored live frames."""
    s, y = table.scores, table.labels
    att, live = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    k_att = min(n // 2, att.size)
    k_live = min(n - k_att, live.size)
    top_att = att[np.argsort(-s[att], kind="stable")[:k_att]]
    low_live = live[np.argsort(s[live], kind="stable")[:k_live]]
    return [int(i) for i in np.concatenate([top_att, low_live])]


def write_report(run_dir: str | Path, *, cache_dir: str | Path | None = None, model: nn.Module | None = None,
                 method: Scorer | None = None, device: str | torch.device = "cpu", n_examples: int = 8,
                 title: str | None = None) -> Path:
    """Write ``<run_dir>/report.html`` and ``<run_dir>/figures/*.png`` from ``metrics.json`` and the scores CSV.

    ``cache_dir`` (default: the run config's ``data.cache`` when it is a folder) supplies the crops of the
    worst-scored examples; ``model`` + ``method`` add the predicted maps of pixel-wise methods. Returns the
    path of the HTML page.
    """
    run_dir = Path(run_dir)
    metrics, table, config = load_run_files(run_dir)
    fig_dir = run_dir / "figures"
    thr = metrics.get("threshold", {})
    t_frame = float(thr.get("value", metrics.get("frame", {}).get("threshold", 0.5)))
    figures: list[tuple[Path, str]] = []
    notes: list[str] = []
    unit = metrics.get("unit", "frame")  # "image" when every test medium is a still image
    has_both = len(set(table.labels.tolist())) == 2
    if has_both:
        sets = {"frame": M.ScoreSet(table.scores, table.labels, np.asarray(table.attacks))}
        if "video" in metrics:
            vs, vl, va, _ = video_table(table)
            sets["video"] = M.ScoreSet(vs, vl, va)
        levels_txt = f"{unit} and video" if "video" in sets else unit
        figures.append((plots.plot_roc(sets, fig_dir / "roc.png", t_frame), f"ROC curve ({levels_txt} level)"))
        figures.append((plots.plot_det(sets, fig_dir / "det.png", t_frame), "DET curve"))
    else:
        notes.append("ROC/DET omitted: the scored set does not hold both live and attack samples.")
    figures.append((plots.plot_histograms(table.scores, table.attacks, fig_dir / "histograms.png", t_frame),
                    f"Score histograms per attack type ({unit} level)"))
    figures.append((plots.plot_confusion(table.scores, table.attacks, t_frame, fig_dir / "confusion.png"),
                    f"Decisions per attack type at the chosen threshold ({unit} level)"))

    idx = worst_examples(table, n_examples)
    example_rows = "".join(
        f"<tr><td>{html.escape(table.sample_ids[i])}</td><td>{html.escape(table.attacks[i])}</td>"
        f"<td>{table.scores[i]:.5g}</td><td>{'accepted' if table.scores[i] >= t_frame else 'rejected'}</td></tr>"
        for i in idx)
    cache = _find_cache(config, cache_dir)
    if idx and cache is not None:
        try:
            reader = CropCacheReader(cache)
            images = [reader.image(table.sample_ids[i])[:, :, ::-1] for i in idx]
            titles = [f"{table.attacks[i]} {table.scores[i]:.3g}" for i in idx]
            figures.append((plots.plot_examples(images, titles, fig_dir / "worst_examples.png"),
                            "Worst-scored examples: attacks scored most live, then live scored least live"))
            if model is not None and method is not None:
                _, maps = predict_samples(model, method, cache, [table.sample_ids[i] for i in idx], device)
                if maps is not None:
                    figures.append((plots.plot_examples(images, titles, fig_dir / "maps.png", maps=list(maps)),
                                    "Inputs and predicted maps of the worst-scored examples"))
        except Exception as err:  # noqa: BLE001 - a report without images is still a report
            notes.append(f"example images omitted: {err}")
    elif idx:
        notes.append("example images omitted: no crop cache given (pass cache_dir / --cache).")

    levels = {(unit if k == "frame" else k): metrics[k] for k in ("frame", "video") if k in metrics}
    nf = metrics.get("no_face")
    if isinstance(nf, dict) and "n_frames" in nf:
        per = ", ".join(f"{a} {n}" for a, n in nf["frames"].items()) or "none"
        nf_text = (f"<p><b>No face found:</b> {nf['n_frames']} test {unit}s ({per}) and {nf['n_media']} media with "
                   f"no usable {unit} at all; they are {html.escape(nf['policy'])} and included in every "
                   f"denominator ({metrics.get('n_test_frames', '?')} {unit}s in all).</p>")
    elif isinstance(nf, dict):
        nf_text = f"<p><b>No face found:</b> {html.escape(str(nf.get('unknown', '')))}.</p>"
    else:
        nf_text = ""
    h = metrics.get("headline", {})
    headline = " · ".join(f"{k.upper()} {_pct(h[k])} %" for k in ("auc", "eer", "hter", "apcer", "bpcer", "acer")
                          if k in h)
    vthr = metrics.get("video_threshold")
    thr_text = (f"<p><b>Threshold policy:</b> {html.escape(str(thr.get('policy', '?')))} — "
                f"{html.escape(str(thr.get('source', '')))}; {unit}-level value {t_frame:.6g}"
                + (f"; video-level value {float(vthr['value']):.6g} ({html.escape(vthr.get('source', ''))})"
                   if vthr else "") + ".</p>")
    cfg_html = (f"<details><summary>config</summary><pre>{html.escape(json.dumps(config, indent=2))}</pre>"
                "</details>") if config else ""
    title = title or f"openfas evaluation — {run_dir.name}"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 24px; color: #222; max-width: 1150px; }}
table {{ border-collapse: collapse; margin: 8px 0 16px; }}
td, th {{ border: 1px solid #bbb; padding: 3px 10px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
figure {{ display: inline-block; margin: 8px; vertical-align: top; }}
figure img {{ max-width: 540px; border: 1px solid #ddd; }}
figcaption {{ font-size: 12px; color: #555; max-width: 540px; }}
.headline {{ font-size: 18px; background: #eef4fb; padding: 8px 12px; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Generated {time.strftime("%Y-%m-%d %H:%M:%S")} by openfas. Conventions: label 1 = live (bona fide), 0 = attack;
higher score = more live; accepted as live when score ≥ threshold. APCER = worst PAI species (ISO/IEC 30107-3),
HTER pools all attacks.</p>
<h2 id="summary">Summary</h2>
<p class="headline">{html.escape(h.get("level", "frame"))} level: {headline}</p>
{thr_text}
{nf_text}
<h2 id="metrics">Metrics</h2>
{_metrics_table(levels)}
<h2 id="figures">Figures</h2>
{"".join(_img_tag(p, cap) for p, cap in figures)}
<h2 id="examples">Worst-scored examples</h2>
<table><tr><th>sample</th><th>attack</th><th>score</th><th>decision</th></tr>{example_rows}</table>
{"".join(f"<p><i>{html.escape(n)}</i></p>" for n in notes)}
{cfg_html}
</body></html>
"""
    out = run_dir / "report.html"
    out.write_text(page)
    return out
