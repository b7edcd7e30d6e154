"""Retrain the bundled model's recipe with other seeds and score each retrain on the three test splits, so a
retrain can be compared with the shipped model and with the leave-one-out seed spread (docs/model_card.md).

    python bench/bundled_retrain.py --cache data/cache/nis --out runs/bundled-retrain --seeds 1,2

Each seed runs ``openfas train -c bundled/openfas_light.yaml`` (train splits of N, I and S; their dev splits pick
the epoch and the threshold) and then ``openfas eval`` on the test split of each dataset at the stored threshold.
Finished runs in OUT are reused. ``--shipped RUN`` adds the run the bundled file was exported from as a row.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

DOMAINS = {"I": "Replay-Attack test", "N": "NUAA session 03", "S": "CelebA-Spoof test identities"}


def openfas(*args: str) -> None:
    cmd = [str(Path(sys.executable).with_name("openfas")), *args]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def retrain(cache: str, run: Path, seed: int) -> None:
    if not (run / "metrics.json").is_file():
        openfas("train", "-c", "bundled/openfas_light.yaml", f"data.cache={cache}", f"experiment.seed={seed}",
                "eval.report=false", "--run-dir", str(run), "--no-progress")
    evaluate(cache, run)


def evaluate(cache: str, run: Path) -> None:
    """Score the run's final checkpoint on each dataset's test split at its stored threshold."""
    ckpt = run / "checkpoints" / "final.safetensors"
    for domain in DOMAINS:
        if not (run / f"eval-test-{domain}" / "metrics.json").is_file():
            openfas("eval", str(ckpt), "--cache", cache, "--split", "test", "--domains", domain,
                    "--threshold", "stored", "--out", str(run / f"eval-test-{domain}"), "--no-report")


def scores(run: Path) -> dict[str, tuple[float, float]]:
    """(AUC, HTER) per test domain at the stored threshold."""
    out = {}
    for domain in DOMAINS:
        path = run / f"eval-test-{domain}" / "metrics.json"
        if path.is_file():
            frame = json.loads(path.read_text())["frame"]
            out[domain] = (frame["auc"], frame["hter"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", default="data/cache/nis", help="the prepared N / I / S cache")
    ap.add_argument("--out", type=Path, default=Path("runs/bundled-retrain"))
    ap.add_argument("--seeds", default="1,2")
    ap.add_argument("--shipped", type=Path, default=None, help="the run the bundled file was exported from")
    args = ap.parse_args()
    rows: list[tuple[str, dict[str, tuple[float, float]]]] = []
    if args.shipped is not None:
        evaluate(args.cache, args.shipped)
        rows.append(("shipped", scores(args.shipped)))
    retrains = []
    for seed in (int(s) for s in args.seeds.split(",")):
        run = args.out / f"seed{seed}"
        retrain(args.cache, run, seed)
        retrains.append(scores(run))
        rows.append((f"retrain seed {seed}", retrains[-1]))
    print("| run | " + " | ".join(f"{t} AUC / HTER %" for t in DOMAINS.values()) + " |")
    print("|---|" + "---|" * len(DOMAINS))
    for name, got in rows:
        cells = [f"{got[d][0]:.3f} / {100 * got[d][1]:.1f}" if d in got else "–" for d in DOMAINS]
        print(f"| {name} | " + " | ".join(cells) + " |")
    if len(retrains) > 1:
        cells = []
        for d in DOMAINS:
            aucs = [r[d][0] for r in retrains if d in r]
            cells.append(f"{statistics.mean(aucs):.3f} ± {statistics.stdev(aucs):.3f}" if len(aucs) > 1 else "–")
        print("| retrains, AUC mean ± sd | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
