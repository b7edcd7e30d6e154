"""Side-by-side metrics of several run / eval folders (``openfas compare run1 run2 …``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from openfas.eval.runfiles import read_run_json

_ROWS = [("auc", "AUC (%)"), ("eer", "EER (%)"), ("hter", "HTER (%)"), ("apcer", "APCER worst (%)"),
         ("apcer_pooled", "APCER pooled (%)"), ("bpcer", "BPCER (%)"), ("acer", "ACER (%)"),
         ("bpcer20", "BPCER20 (%)"), ("tpr@fpr=1e-3", "TPR@FPR=1e-3 (%)")]


def _load(run_dir: Path) -> dict[str, Any]:
    return read_run_json(run_dir, "metrics.json")


def compare_runs(run_dirs: Sequence[str | Path], level: str = "headline") -> str:
    """A text table, one column per run: threshold policy and value, then the metrics at ``level``
    ("headline" = the level the run reports — video when available —, "frame" or "video"), in %."""
    if not run_dirs:
        raise ValueError("compare needs at least one run folder")
    dirs = [Path(d) for d in run_dirs]
    data = [_load(d) for d in dirs]
    cols: list[dict[str, Any]] = []
    for m in data:
        lvl = m.get("headline", {}).get("level", "frame") if level == "headline" else level
        summary = m.get(lvl) or {}
        thr = m.get("video_threshold") if lvl == "video" and "video_threshold" in m else m.get("threshold", {})
        cols.append({"level": lvl, "summary": summary, "thr": thr or {}})
    names = [d.name or str(d) for d in dirs]
    species = sorted({sp for c in cols for sp in c["summary"].get("apcer_per_attack", {})})
    rows: list[tuple[str, list[str]]] = [
        ("level", [c["level"] if c["summary"] else f"{c['level']} (absent)" for c in cols]),
        ("threshold policy", [str(c["thr"].get("policy", "?")) for c in cols]),
        ("threshold", [f"{c['thr']['value']:.6g}" if "value" in c["thr"] else "?" for c in cols]),
    ]
    for key, label in _ROWS:
        rows.append((label, [f"{100 * c['summary'][key]:.2f}" if key in c["summary"] else "–" for c in cols]))
    for sp in species:
        rows.append((f"APCER {sp} (%)", [f"{100 * c['summary']['apcer_per_attack'][sp]:.2f}"
                                         if sp in c["summary"].get("apcer_per_attack", {}) else "–" for c in cols]))
    rows.append(("live / attack", [f"{c['summary'].get('n_live', '–')} / {c['summary'].get('n_attack', '–')}"
                                   for c in cols]))
    w0 = max(len(r[0]) for r in rows)
    widths = [max(len(n), *(len(r[1][i]) for r in rows)) for i, n in enumerate(names)]
    lines = [" | ".join(["metric".ljust(w0), *(n.rjust(w) for n, w in zip(names, widths, strict=True))])]
    lines.append("-|-".join(["-" * w0, *("-" * w for w in widths)]))
    for label, vals in rows:
        lines.append(" | ".join([label.ljust(w0), *(v.rjust(w) for v, w in zip(vals, widths, strict=True))]))
    sources = {f"{n}: {c['thr'].get('source', '?')}" for n, c in zip(names, cols, strict=True)}
    return "\n".join(lines) + "\n\nthreshold sources:\n" + "\n".join(f"  {s}" for s in sorted(sources))
