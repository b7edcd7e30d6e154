"""Cost of meta-learning: one RFMetaFAS / ANRL meta step vs one plain step (same networks, same losses, same
domain-balanced batch, aggregated over the source domains), measured side by side.

    python bench/bench_meta.py [--size 128] [--per-group 4] [--iters 5] [--threads 2]

Time: the variants are interleaved in rounds and the median step time (forward + backward + Adam) is compared.
Peak memory: each variant runs a few steps in a fresh subprocess; we report the growth of the peak resident set
size (VmHWM, reset through /proc/self/clear_refs after a first step) over the resident size before the
steps (CPU; on a GPU use torch.cuda.max_memory_allocated instead). Ratios are what matter on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch


def build(name: str, meta: bool, size: int, per_group: int):  # noqa: ANN201
    from openfas.config import load_config
    from openfas.methods import get_method

    cfg = load_config(None, [f"model.name={name}", f"method.name={name}", f"method.meta={str(meta).lower()}",
                             f"data.image_size={size}", "data.map_size=32"])
    cls = get_method(name)
    method = cls(cfg, cls.Params.model_validate(cfg.method.kwargs()))
    torch.manual_seed(0)
    model = method.build_model().train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    n = 3 * 2 * per_group
    label = torch.tensor([1, 0] * (n // 2))
    batch = {"image": torch.randn(n, 3, size, size, generator=g),
             "target": torch.rand(n, 32, 32, generator=g) * label[:, None, None],
             "label": label, "domain": torch.arange(3).repeat_interleave(2 * per_group)}
    return method, model, opt, batch


def step(method, model, opt, batch) -> None:  # noqa: ANN001
    from openfas.methods.base import Stage

    loss = method.training_loss(model, batch, Stage("main", 1))["loss"]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def _rss_kb(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    method, model, opt, batch = build(args.child_name, args.child_meta == "1", args.size, args.per_group)
    step(method, model, opt, batch)  # optimizer state allocated
    try:  # reset the peak (VmHWM) to the current RSS (Linux); else fall back to the lifetime peak
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    base = _rss_kb("VmRSS:")
    for _ in range(2):
        step(method, model, opt, batch)
    peak = _rss_kb("VmHWM:")
    print(json.dumps({"delta_mb": (peak - base) / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--per-group", type=int, default=4)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--child-name")
    ap.add_argument("--child-meta")
    args = ap.parse_args()
    if args.child_name:
        child(args)
        return
    torch.set_num_threads(args.threads)
    print(f"meta bench: image {args.size}², batch {6 * args.per_group} (3 domains × live/spoof × {args.per_group}), "
          f"{args.threads} threads")
    for name in ("rfmeta", "anrl"):
        variants = {v: build(name, v == "meta", args.size, args.per_group) for v in ("meta", "plain")}
        times: dict[str, list[float]] = {v: [] for v in variants}
        for v in variants:  # warm-up
            step(*variants[v])
        for _ in range(args.iters):
            for v, parts in variants.items():
                t0 = time.perf_counter()
                step(*parts)
                times[v].append(time.perf_counter() - t0)
        med = {v: statistics.median(t) for v, t in times.items()}
        mem = {}
        for v in variants:
            out = subprocess.run([sys.executable, __file__, "--child-name", name, "--child-meta",
                                  "1" if v == "meta" else "0", "--size", str(args.size), "--per-group",
                                  str(args.per_group), "--threads", str(args.threads)],
                                 capture_output=True, text=True, check=True)
            mem[v] = json.loads(out.stdout.strip().splitlines()[-1])["delta_mb"]
        print(f"{name}: meta step / plain step time = {med['meta'] / med['plain']:.2f}x "
              f"(medians {med['meta']:.3f}s vs {med['plain']:.3f}s); peak RSS growth meta {mem['meta']:.0f} MB vs "
              f"plain {mem['plain']:.0f} MB = {mem['meta'] / max(mem['plain'], 1e-6):.2f}x")


if __name__ == "__main__":
    main()
