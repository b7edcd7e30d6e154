"""ANRL's adaptive normalisation, fused vs separate, measured side by side (ratios, not seconds).

    python bench/bench_adaptive_norm.py                      # the synthetic-DG config: 64², batch 24, 3 domains
    python bench/bench_adaptive_norm.py --iters 3 --clock cpu

Variants (identical weights and batch):

* ``fused``    – :class:`openfas.ops.adaptive_norm.AdaptiveNorm2d` as shipped: one pass for the instance
  statistics, batch statistics derived from them, the mix applied as one affine map A ⊙ x + B;
* ``separate`` – the earlier formulation, written out here: λ ⊙ ``nn.BatchNorm2d``(x) + (1 − λ) ⊙
  ``nn.InstanceNorm2d``(x) with λ = σ(gate(GAP(x))).

Measured: one ANRL training step (``method.training_loss`` + backward + Adam) with ``meta`` true (second order
through the gates) and false, on the ``anrl/anrl_synth.yaml`` shapes; and the layer alone at the block-1 shape
(8 × 196 × 64 × 64) with an inner gradient w.r.t. the gate kept in the graph and an outer backward. The
variants are interleaved in rounds after one warm-up step each; medians are compared. Also printed: the
difference of the first step's loss between the variants (same weights, same batch, same meta split).
``--clock cpu`` uses the process CPU time, so waiting for a core on a shared machine is not counted.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn as nn

from openfas.ops.adaptive_norm import AdaptiveNorm2d

FUSED = AdaptiveNorm2d.forward


def separate(layer: AdaptiveNorm2d, x: torch.Tensor) -> torch.Tensor:
    lam = torch.sigmoid(layer.gate(x.mean(dim=(2, 3))))[:, :, None, None]
    return lam * layer.bn(x) + (1.0 - lam) * layer.inorm(x)


def use(variant: str) -> None:
    AdaptiveNorm2d.forward = FUSED if variant == "fused" else separate  # type: ignore[method-assign]


def build_step(meta: bool, size: int, per_group: int) -> tuple[Callable[[], float], nn.Module]:
    from openfas.config import load_config
    from openfas.methods import get_method
    from openfas.methods.base import Stage

    cfg = load_config("anrl/anrl_synth.yaml", [f"method.meta={str(meta).lower()}", f"data.image_size={size}"])
    cls = get_method("anrl")
    method = cls(cfg, cls.Params.model_validate(cfg.method.kwargs()))
    torch.manual_seed(0)
    model = method.build_model().train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-4)
    g = torch.Generator().manual_seed(0)
    n = 3 * 2 * per_group
    label = torch.tensor([1, 0] * (n // 2))
    batch = {"image": torch.rand(n, 3, size, size, generator=g) * 2 - 1,
             "target": torch.rand(n, cfg.data.map_size, cfg.data.map_size, generator=g) * label[:, None, None],
             "label": label, "domain": torch.arange(3).repeat_interleave(2 * per_group)}

    def step() -> float:
        torch.manual_seed(1)  # the same meta-train / meta-test split every step
        loss = method.training_loss(model, batch, Stage("main", 1))["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step, model


def build_layer() -> Callable[[], float]:
    torch.manual_seed(0)
    layer = AdaptiveNorm2d(196).train()
    x = torch.randn(8, 196, 64, 64, requires_grad=True)

    def step() -> float:
        y = layer(x)
        inner = torch.autograd.grad((y * y).mean(), list(layer.gate.parameters()), create_graph=True)
        outer = sum((gr ** 2).sum() for gr in inner) + y.mean()
        assert isinstance(outer, torch.Tensor)
        outer.backward()
        return float(outer.detach())

    return step


def compare(label: str, steps: dict[str, Callable[[], float]], iters: int, clock: Callable[[], float]) -> None:
    first = {}
    for v, fn in steps.items():  # warm-up; its value compares the variants on identical weights
        use(v)
        first[v] = fn()
    times: dict[str, list[float]] = {v: [] for v in steps}
    for _ in range(iters):
        for v, fn in steps.items():
            use(v)
            t0 = clock()
            fn()
            times[v].append(clock() - t0)
    use("fused")
    med = {v: statistics.median(t) for v, t in times.items()}
    print(f"{label}: separate / fused = {med['separate'] / med['fused']:.2f}x (medians {med['separate']:.3f}s vs "
          f"{med['fused']:.3f}s); first-step value fused {first['fused']:.7g}, separate {first['separate']:.7g}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--per-group", type=int, default=4, help="images per domain and class (batch = 6 × this)")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    print(f"adaptive-norm bench: ANRL at {args.size}², batch {6 * args.per_group}, {args.threads} threads, "
          f"{args.clock} clock, {args.iters} timed rounds")
    compare("layer 8×196×64×64, 2nd order", {v: build_layer() for v in ("fused", "separate")}, args.iters, clock)
    for meta in (True, False):
        steps = {}
        for v in ("fused", "separate"):
            fn, _ = build_step(meta, args.size, args.per_group)
            steps[v] = fn
        compare(f"ANRL step meta={meta}", steps, args.iters, clock)


if __name__ == "__main__":
    main()
