"""Markdown table of runs made by bench/lfw_dlibinit_run.sh (docs/masked_recognition.md).

    python bench/lfw_dlibinit_summary.py RUN [RUN ...]

One row per run: 10-fold accuracy (%) on the clean / one-masked / both-masked lists of the split it was scored on
(``eval-<protocol>/metrics.json``; for one-masked the end-of-training ``metrics.json`` when there is no
``eval-one_masked``), whether the scores used mirror averaging (``flip``: yes / no / mixed), the quality score's
behaviour on the one-masked list (Spearman ρ of C(X) with mask coverage, and the ROC AUC of a low pair C(X) for a
wrongly verified pair; "–" for single-decision models) and the training time (``train_seconds.txt``). Runs named
``<group>-s<seed>`` also get a ``<group>: mean ± sd`` row (sample sd over the seeds whose three protocols are all
scored).
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path


def protocol_metrics(run: Path) -> list[dict | None]:
    """metrics.json of the clean / one-masked / both-masked lists (None where not scored yet)."""
    one = run / "eval-one_masked" / "metrics.json"
    files = [run / "eval-clean" / "metrics.json", one if one.is_file() else run / "metrics.json",
             run / "eval-both_masked" / "metrics.json"]
    return [json.loads(f.read_text()) if f.is_file() else None for f in files]


def flip_cell(metrics: list[dict | None]) -> str:
    seen = {bool(m.get("flip", False)) for m in metrics if m is not None}
    return "–" if not seen else "mixed" if len(seen) > 1 else "yes" if seen.pop() else "no"


def quality_cells(one_masked: dict | None) -> list[str]:
    """[ρ(C(X), coverage), AUC of low C(X) for a wrong pair] on the one-masked list, as text."""
    m = one_masked or {}
    rho = (m.get("quality_vs_coverage") or {}).get("spearman_all")
    auc = (m.get("quality_vs_errors") or {}).get("auc_wrong_by_low_quality")
    return ["–" if rho is None else f"{rho:+.2f}", "–" if auc is None else f"{auc:.2f}"]


def train_time(secs: Path) -> str:
    """Training minutes, or "–" while the run is unfinished (``/usr/bin/time`` writes the file when training ends)."""
    try:
        return f"{float(secs.read_text()) / 60:.1f} min"
    except (OSError, ValueError):
        return "–"


def main(runs: list[str]) -> None:
    print("| run | clean | one masked | both masked | flip | C(X)~coverage ρ | AUC low C(X)→wrong | train time |\n"
          "|---|---|---|---|---|---|---|---|")
    groups: dict[str, list[list[float]]] = {}
    for run in map(Path, runs):
        metrics = protocol_metrics(run)
        acc = [None if m is None else 100 * m["accuracy"] for m in metrics]
        t = train_time(run / "train_seconds.txt")
        cells = ["–" if a is None else f"{a:.2f}" for a in acc] + [flip_cell(metrics), *quality_cells(metrics[1]), t]
        print(f"| {run.name} | " + " | ".join(cells) + " |")
        m = re.fullmatch(r"(.+)-s\d+", run.name)
        if m and None not in acc:  # unfinished runs stay out of the mean
            groups.setdefault(m.group(1), []).append([a for a in acc if a is not None])
    for name, rows in groups.items():
        if len(rows) < 2:
            continue
        cells = [f"{statistics.mean(col):.2f} ± {statistics.stdev(col):.2f}" for col in zip(*rows, strict=True)]
        print(f"| **{name}: mean ± sd over {len(rows)} seeds** | " + " | ".join(cells) + " | | | | |")


if __name__ == "__main__":
    main(sys.argv[1:])
