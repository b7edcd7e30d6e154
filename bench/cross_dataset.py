"""Real cross-dataset benchmark: train the packaged ``cross/`` configs on one prepared N / I / S cache and print
the model x protocol table (target AUC, HTER and ACER at the source-dev threshold, source-dev AUC, train time),
mean ± sd over seeds. Runs already finished in OUT are reused, so an interrupted benchmark resumes.

    python bench/cross_dataset.py --cache data/cache/nis --out runs/cross \
        --models lbp,minifasnet --protocols is_n,ns_i,ni_s,replay --seeds 0,1,2
    python bench/cross_dataset.py --out runs/cross --table-only          # the table of what OUT holds
    python bench/cross_dataset.py --models minifasnet --tag=-real data.augment=real   # a variant, by overrides

Protocols: ``is_n`` = [I, S] -> N, ``ns_i`` = [N, S] -> I, ``ni_s`` = [N, I] -> S (leave one dataset out; the
sources' dev splits pick the epoch and the threshold), ``replay`` = Replay-Attack train -> test with the devel
threshold. The cache is made by the three ``openfas data prepare`` lines in ``configs/cross/_data.yaml``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PROTOCOL_TITLES = {"is_n": "[I,S]→N", "ns_i": "[N,S]→I", "ni_s": "[N,I]→S", "replay": "I→I (intra)"}


def run_one(cache: str, out: Path, model: str, protocol: str, seed: int, extra: list[str], tag: str = "") -> Path:
    """Train one packaged config (skipped when the run folder already holds its metrics) and return its folder."""
    run = out / f"{model}{tag}_{protocol}_s{seed}"
    if (run / "metrics.json").is_file():
        return run
    openfas = str(Path(sys.executable).with_name("openfas"))
    cmd = [openfas, "train", "-c", f"cross/{model}_{protocol}.yaml", f"data.cache={cache}",
           f"experiment.seed={seed}", "eval.report=false", *extra, "--run-dir", str(run), "--no-progress"]
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=os.environ.copy())
    (run / "train_seconds.txt").write_text(f"{time.perf_counter() - start:.1f}\n")
    return run


def run_metrics(run: Path) -> dict[str, float]:
    """Target AUC / HTER / ACER (frame level) at the stored threshold, source-dev AUC, train minutes."""
    m = json.loads((run / "metrics.json").read_text())
    frame = m.get("frame", m)
    out = {"auc": float(frame["auc"]), "hter": float(frame["hter"]), "acer": float(frame["acer"])}
    chosen = m.get("checkpoint_selection", {})
    if chosen.get("metric") == "auc" and chosen.get("split") == "dev":
        out["dev_auc"] = float(chosen["value"])  # the source-dev AUC of the epoch kept
    secs = run / "train_seconds.txt"
    if secs.is_file():
        out["minutes"] = float(secs.read_text()) / 60
    out.update(attack_aucs(run / "scores_test.csv"))
    return out


def attack_aucs(scores_csv: Path) -> dict[str, float]:
    """AUC of the live target frames against each attack kind alone (``auc_print``, ``auc_replay``), from the
    run's per-frame test scores."""
    if not scores_csv.is_file():
        return {}
    from sklearn.metrics import roc_auc_score

    with scores_csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
    live = [float(r["score"]) for r in rows if r["label"] == "1"]
    out = {}
    for kind in ("print", "replay"):
        spoof = [float(r["score"]) for r in rows if r["label"] == "0" and r["attack"] == kind]
        if live and spoof:
            out[f"auc_{kind}"] = float(roc_auc_score([1] * len(live) + [0] * len(spoof), live + spoof))
    return out


def _fmt(values: list[float], pct: bool = False) -> str:
    if not values:
        return "–"
    k = 100.0 if pct else 1.0
    mean = statistics.mean(values) * k
    if len(values) == 1:
        return f"{mean:.1f}" if pct else f"{mean:.3f}"
    sd = statistics.stdev(values) * k
    return f"{mean:.1f} ± {sd:.1f}" if pct else f"{mean:.3f} ± {sd:.3f}"


def table(out: Path) -> str:
    """Markdown table of every finished run in ``out`` (groups differ only in the ``_s<seed>`` tag)."""
    groups: dict[tuple[str, Any], list[dict[str, Any]]] = {}
    for run in sorted(out.glob("*_s*")):
        if not (run / "metrics.json").is_file():
            continue
        stem = run.name.rsplit("_s", 1)[0]
        protocol = next((p for p in PROTOCOL_TITLES if stem.endswith("_" + p)), None)
        if protocol is None:
            continue
        seed = run.name.rsplit("_s", 1)[1]
        groups.setdefault((stem[: -len(protocol) - 1], protocol), []).append({**run_metrics(run), "seed": seed})
    lines = ["| model | protocol | seeds | target AUC | HTER % | ACER % | AUC prints | AUC replays | source-dev AUC "
             "| train min |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    order = list(PROTOCOL_TITLES)
    for (model, protocol), rows in sorted(groups.items(), key=lambda kv: (kv[0][0], order.index(kv[0][1]))):
        col = {k: [r[k] for r in rows if k in r]
               for k in ("auc", "hter", "acer", "auc_print", "auc_replay", "dev_auc", "minutes")}
        minutes = f"{statistics.mean(col['minutes']):.1f}" if col["minutes"] else "–"
        lines.append(f"| {model} | {PROTOCOL_TITLES[protocol]} | {len(rows)} | {_fmt(col['auc'])} | "
                     f"{_fmt(col['hter'], True)} | {_fmt(col['acer'], True)} | {_fmt(col['auc_print'])} | "
                     f"{_fmt(col['auc_replay'])} | {_fmt(col['dev_auc'])} | {minutes} |")
    lines += ["", leave_one_out_means(groups)]
    return "\n".join(lines)


def leave_one_out_means(groups: dict[tuple[str, Any], list[dict[str, Any]]]) -> str:
    """Per model with all three leave-one-out protocols: the mean of the three target AUCs of each seed that all
    three protocols have (what a recipe is chosen by), then mean ± sd over those seeds."""
    lines = ["| model | seeds | mean target AUC over [I,S]→N, [N,S]→I, [N,I]→S |", "|---|---|---|"]
    for model in sorted({m for m, _ in groups}):
        by_seed = [{r["seed"]: r["auc"] for r in groups.get((model, p), [])} for p in ("is_n", "ns_i", "ni_s")]
        seeds = sorted(set.intersection(*(set(b) for b in by_seed)), key=int)
        if not seeds:
            continue
        per_seed = [statistics.mean(b[seed] for b in by_seed) for seed in seeds]
        lines.append(f"| {model} | {len(seeds)} | {_fmt(per_seed)} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", default="data/cache/nis", help="the prepared N / I / S cache")
    ap.add_argument("--out", type=Path, default=Path("runs/cross"), help="folder of the run folders")
    ap.add_argument("--models", default="lbp,minifasnet", help="comma-separated: names of configs/cross/_<model>")
    ap.add_argument("--protocols", default="is_n,ns_i,ni_s", help="comma-separated: is_n, ns_i, ni_s, replay")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--table-only", action="store_true", help="print the table of OUT without training")
    ap.add_argument("--tag", default="", help="suffix of the model name in run folders (for a variant given by "
                                              "overrides, e.g. --tag=-real data.augment=real)")
    ap.add_argument("overrides", nargs="*", help="dotted config overrides passed to every run")
    args = ap.parse_args()
    if not args.table_only:
        for seed in (int(s) for s in args.seeds.split(",")):
            for model in args.models.split(","):
                for protocol in args.protocols.split(","):
                    if protocol not in PROTOCOL_TITLES:
                        ap.error(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOL_TITLES)}")
                    run_one(args.cache, args.out, model, protocol, seed, args.overrides, args.tag)
    print(table(args.out))


if __name__ == "__main__":
    main()
