"""Metrics speed: sort-based ``openfas.eval.metrics`` vs a naive threshold sweep, measured side by side.

    python bench/bench_metrics.py [--n 10000000] [--naive-n 20000]

The naive sweep evaluates FAR/FRR at every candidate threshold with a full pass over the scores
(O(n·t)); it is timed on ``--naive-n`` scores and extrapolated quadratically to ``--n`` (running it on
10⁷ scores would take days). The ratio printed is naive-extrapolated time / sort-based time, both for EER.
Results agree on the small set (checked here, not only timed). It also times the full ``summarize`` (every
metric, APCER per species from string attack labels) against calling each metric function separately.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from openfas.eval import metrics


def naive_eer(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    cand = np.append(np.unique(scores), np.inf)
    live, spoof = scores[labels == 1], scores[labels == 0]
    best = (np.inf, 0.0, 0.0)
    for t in cand:  # deliberately one pass per threshold
        far = float(np.mean(spoof >= t))
        frr = float(np.mean(live < t))
        if abs(far - frr) < best[0]:
            best = (abs(far - frr), (far + frr) / 2, float(t))
    return best[1], best[2]


def make(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    labels = (rng.random(n) < 0.3).astype(np.int64)
    scores = rng.normal(loc=labels * 1.5, scale=1.0)
    attacks = np.where(labels == 1, "none", rng.choice(["print1", "print2", "replay1", "replay2"], size=n))
    return scores, labels, attacks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--naive-n", type=int, default=20_000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)

    s, y, _ = make(args.naive_n, rng)
    t0 = time.perf_counter()
    ref = naive_eer(s, y)
    t_naive_small = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = metrics.eer(s, y)
    t_ours_small = time.perf_counter() - t0
    assert abs(ref[0] - ours[0]) < 1e-12 and ref[1] == ours[1], (ref, ours)

    s, y, a = make(args.n, rng)
    t0 = time.perf_counter()
    metrics.eer(s, y)
    t_eer = time.perf_counter() - t0
    t0 = time.perf_counter()
    summary = metrics.summarize(s, y, a, threshold=0.75)  # every metric, per species, string attack labels
    t_summary = time.perf_counter() - t0
    t0 = time.perf_counter()  # the same metrics, each one-call function sorting for itself
    metrics.apcer_bpcer(s, y, a, 0.75)
    metrics.eer(s, y)
    metrics.auc(s, y)
    for target in (0.10, 0.05, 0.01):
        metrics.bpcer_at_apcer(s, y, a, target)
    for f in (1e-2, 1e-3, 1e-4):
        metrics.tpr_at_fpr(s, y, f)
    t_separate = time.perf_counter() - t0

    naive_extrap = t_naive_small * (args.n / args.naive_n) ** 2
    print(f"metrics: n={args.n:,}  EER sort-based {t_eer:.2f}s; full summary (all metrics, {len(set(a[y == 0]))} "
          f"species, string labels) {t_summary:.2f}s")
    print(f"metrics: full summary sorting once {t_summary:.2f}s vs each metric sorting for itself "
          f"{t_separate:.2f}s -> ratio {t_separate / t_summary:.1f}x")
    print(f"metrics: naive sweep on {args.naive_n:,} scores {t_naive_small:.2f}s vs ours {t_ours_small:.4f}s "
          f"-> ratio {t_naive_small / max(t_ours_small, 1e-9):,.0f}x (same EER and threshold)")
    print(f"metrics: naive extrapolated to n={args.n:,}: {naive_extrap:,.0f}s -> ratio {naive_extrap / t_eer:,.0f}x")
    print(f"metrics: ACER at 0.75 = {summary['acer']:.4f}")


if __name__ == "__main__":
    main()
