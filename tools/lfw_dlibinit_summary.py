"""Markdown table of runs made by tools/lfw_dlibinit_run.sh (docs/masked_recognition.md §8).

    python tools/lfw_dlibinit_summary.py RUN [RUN ...]

One row per run: 10-fold accuracy (%) on the clean / one-masked / both-masked lists of the split it was scored on
(one-masked: the end-of-training ``metrics.json``; the others: ``eval-<protocol>/metrics.json``) and the training
time (``train_seconds.txt``). Runs named ``<group>-s<seed>`` also get a ``<group>: mean ± sd`` row (sample sd over
the seeds whose three protocols are all scored).
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path


def accuracies(run: Path) -> list[float | None]:
    files = [run / "eval-clean" / "metrics.json", run / "metrics.json", run / "eval-both_masked" / "metrics.json"]
    return [100 * json.loads(f.read_text())["accuracy"] if f.is_file() else None for f in files]


def train_time(secs: Path) -> str:
    """Training minutes, or "–" while the run is unfinished (``/usr/bin/time`` writes the file when training ends)."""
    try:
        return f"{float(secs.read_text()) / 60:.1f} min"
    except (OSError, ValueError):
        return "–"


def main(runs: list[str]) -> None:
    print("| run | clean | one masked | both masked | train time |\n|---|---|---|---|---|")
    groups: dict[str, list[list[float]]] = {}
    for run in map(Path, runs):
        acc = accuracies(run)
        t = train_time(run / "train_seconds.txt")
        print(f"| {run.name} | " + " | ".join("–" if a is None else f"{a:.2f}" for a in acc) + f" | {t} |")
        m = re.fullmatch(r"(.+)-s\d+", run.name)
        if m and None not in acc:  # unfinished runs stay out of the mean
            groups.setdefault(m.group(1), []).append([a for a in acc if a is not None])
    for name, rows in groups.items():
        if len(rows) < 2:
            continue
        cells = [f"{statistics.mean(col):.2f} ± {statistics.stdev(col):.2f}" for col in zip(*rows, strict=True)]
        print(f"| **{name}: mean ± sd over {len(rows)} seeds** | " + " | ".join(cells) + " | |")


if __name__ == "__main__":
    main(sys.argv[1:])
