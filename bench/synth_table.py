"""Held-out-domain table of finished run folders (the synthetic multi-modal and DG evidence tables).

    python bench/synth_table.py runs/a runs/b …          # one row per run folder
    python bench/synth_table.py --group runs/*seed*      # also mean ± sd over runs whose names differ only in
                                                         # the seed tag (…_s0, …_s1 → one group)

Per run (from ``metrics.json`` and ``scores_test.csv``): number of test frames/videos, frame-level AUC, AUC of
live vs each attack alone, a 95 % interval of the frame AUC from a bootstrap over videos (live and attack
videos resampled separately; frames follow their video, so correlated frames are not counted as independent),
frame-level EER, and HTER / ACER at the run's own threshold policy (``eval.threshold``: ``eer`` = the test set's
own EER threshold, an oracle; ``dev_eer`` = chosen on the source domains' dev split), plus video-level AUC/ACER.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
from pathlib import Path

import numpy as np

from openfas.eval.metrics import auc


def _rows(run: Path) -> list[dict[str, str]]:
    with open(run / "scores_test.csv", newline="") as f:
        return list(csv.DictReader(f))


def _auc(rows: list[dict[str, str]]) -> float:
    return auc(np.array([float(r["score"]) for r in rows]), np.array([int(r["label"]) for r in rows]))


def bootstrap_auc(rows: list[dict[str, str]], reps: int = 1000, seed: int = 0) -> tuple[float, float]:
    by: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by.setdefault(r["video"], []).append(r)
    live = [v for v, rs in by.items() if rs[0]["label"] == "1"]
    spoof = [v for v, rs in by.items() if rs[0]["label"] == "0"]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(reps):
        pick = list(rng.choice(live, len(live))) + list(rng.choice(spoof, len(spoof)))
        out.append(_auc([r for v in pick for r in by[v]]))
    lo, hi = np.percentile(out, [2.5, 97.5])
    return float(lo), float(hi)


def row(run: Path) -> dict[str, float | str]:
    m = json.loads((run / "metrics.json").read_text())
    rows = _rows(run)
    f, v = m["frame"], m["video"]
    out: dict[str, float | str] = {"run": run.name, "frames": m["n_test_frames"], "videos": m["n_test_videos"],
                                   "auc": f["auc"]}
    for att in sorted({r["attack"] for r in rows} - {"live"}):
        out[f"auc_{att}"] = _auc([r for r in rows if r["attack"] in ("live", att)])
    out["ci_lo"], out["ci_hi"] = bootstrap_auc(rows)
    out.update(eer=f["eer"], hter=f["hter"], acer=f["acer"], video_auc=v["auc"], video_acer=v["acer"],
               threshold=m["threshold"]["policy"])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--group", action="store_true", help="mean ± sd over runs differing only in a _s<N> tag")
    args = p.parse_args()
    rows = [row(r) for r in args.runs]
    keys = [k for k in rows[0] if k not in ("run", "threshold")]
    print("run".ljust(28) + "".join(k.rjust(11) for k in keys) + "  threshold")
    for r in rows:
        print(str(r["run"]).ljust(28) + "".join(
            (f"{r[k]:11.3f}" if isinstance(r.get(k), float) else str(r.get(k, "-")).rjust(11)) for k in keys)
            + f"  {r['threshold']}")
    if args.group:
        groups: dict[str, list[dict[str, float | str]]] = {}
        for r in rows:
            groups.setdefault(re.sub(r"_s\d+$", "", str(r["run"])), []).append(r)
        print("\nmean ± sd over seeds")
        for name, rs in groups.items():
            cells = []
            for k in ("auc", "eer", "hter", "acer"):
                vals = [float(x[k]) for x in rs]
                sd = statistics.stdev(vals) if len(vals) > 1 else float("nan")
                cells.append(f"{k} {statistics.mean(vals):.3f} ± {sd:.3f}")
            print(f"  {name:28s} n={len(rs)}  " + "  ".join(cells))


if __name__ == "__main__":
    main()
