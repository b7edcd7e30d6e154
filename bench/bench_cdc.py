"""CDC speed: the same CDCN built three ways, measured side by side (ratios, not seconds).

    python bench/bench_cdc.py                        # full: training at 256×256, batch 8; inference at batch 1
    python bench/bench_cdc.py --size 128 --batch 4 --iters 2 --rounds 3   # reduced, for a busy CPU
    python bench/bench_cdc.py --memory-only          # only the peak-memory subprocesses (both allocator settings)

Variants (identical weights):

* ``plain``    – ``nn.Conv2d`` everywhere (θ = 0 network): the physical floor of the architecture;
* ``two-conv`` – CDC as in the official code, conv(x, w) − θ·conv₁ₓ₁(x, Σw) (:class:`openfas.ops.TwoConvCDC`);
* ``one-conv`` – :class:`openfas.ops.CDConv2d`: one convolution with θ·Σw folded into the kernel centre.

Training: forward + pixel-wise loss (MSE + CDL) + backward + Adam step. The variants are interleaved in
rounds (each round runs ``--iters`` timed steps of every variant after one warm-up step) and the median
step time is reported. Also tried on the one-conv variant: channels_last, ``torch.compile`` and bf16
autocast (``--no-extras`` skips them, ``--no-compile`` skips compile only).

Peak memory: each variant runs 2 training steps in a FRESH subprocess; reported is the growth of the
process's peak resident set size (Linux VmHWM, reset through /proc/self/clear_refs after building the
model, optimiser and batch) over the resident size at that point (on CUDA: ``torch.cuda.max_memory_allocated``).
It includes the Adam state, equal for all variants. Each variant is measured twice: with glibc's default
allocator settings, and with ``MALLOC_MMAP_THRESHOLD_=131072`` (every block ≥ 128 KiB is mmap-ed and returned
to the system when freed). By default glibc raises its mmap threshold after large blocks are freed, so later
activations come from the heap, whose freed space is reused but not returned: the high-water mark then
depends on the order of allocations and frees, not only on what is alive at once. The second column is close
to the live peak; it is the one that compares variants. (Measured at 128 px, batch 8: one-conv − plain =
+8 % with the default allocator but +1.2 % ≈ 10 MiB with the fixed threshold — the folded kernels, 8.6 MiB
for CDCN, which autograd keeps for the backward of each convolution.)

Inference (batch 1): the one-conv model folded with :func:`openfas.ops.fuse_model` (CDC kernels and
BatchNorm folded into plain convs), exported to ONNX (``torch.onnx.export(..., dynamo=False)``) and run in
onnxruntime, vs PyTorch eager with the two-conv formulation; reports the ratio and the max abs difference.

``--threads`` sets torch's (and onnxruntime's) intra-op threads (default 1: the machine is shared).
``--clock cpu`` times with the process's CPU time instead of wall time: on a machine shared with other jobs,
waiting for a core is then not counted (cache and memory-bandwidth contention still are), so ratios stay
meaningful where wall-clock medians of a few long steps are dominated by the neighbours' load.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn

from openfas.losses.depth import pixelwise_loss
from openfas.models.cdcn import CDCN, ConvFactory, cdc_factory
from openfas.ops import TwoConvCDC, fuse_model

THETA = 0.7


def conv_factory(kind: str) -> ConvFactory:
    if kind == "plain":
        return lambda i, o: nn.Conv2d(i, o, 3, padding=1, bias=False)
    if kind == "two-conv":
        return lambda i, o: TwoConvCDC(i, o, 3, padding=1, theta=THETA)
    if kind == "one-conv":
        return cdc_factory(THETA)
    raise ValueError(f"unknown conv kind {kind!r}")


def build(kind: str, variant: str, seed: int = 0) -> nn.Module:
    """The network with ``kind`` convolutions and weights identical across kinds (same seed, same order)."""
    torch.manual_seed(seed)
    ref = CDCN(variant=variant, conv=conv_factory("one-conv"))
    model = CDCN(variant=variant, conv=conv_factory(kind))
    with torch.no_grad():
        for p, q in zip(model.parameters(), ref.parameters(), strict=True):
            p.copy_(q)
    return model


def make_batch(batch: int, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 3, size, size, generator=g)
    target = torch.rand(batch, 32, 32, generator=g) * (torch.arange(batch) % 2 == 0).view(-1, 1, 1)
    return x.to(device), target.to(device)


class Trainer:
    """One model + Adam + a fixed batch; ``step()`` runs one training step."""

    def __init__(self, kind: str, variant: str, x: torch.Tensor, target: torch.Tensor, device: torch.device,
                 channels_last: bool = False, compile_: bool = False, bf16: bool = False) -> None:
        self.model = build(kind, variant).to(device)
        self.x = x
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
            self.x = x.contiguous(memory_format=torch.channels_last)
        self.target = target
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-4, weight_decay=5e-5)
        self.fn: Callable[[torch.Tensor], torch.Tensor] = torch.compile(self.model) if compile_ else self.model
        self.bf16 = bf16
        self.device = device

    def step(self) -> None:
        self.opt.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            pred = self.fn(self.x)
        loss = pixelwise_loss(pred.float(), self.target)["loss"]
        loss.backward()
        self.opt.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize()


CLOCK: Callable[[], float] = time.perf_counter  # --clock cpu: time.process_time


def timed(fn: Callable[[], object]) -> float:
    t0 = CLOCK()
    fn()
    return CLOCK() - t0


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> int:
    """Reset the kernel's peak-RSS mark (Linux ``clear_refs`` 5) and return the current RSS in bytes."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        rss = _status_kib("VmRSS")
        if rss is not None:
            return rss * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # fallback: high-water mark so far


def _peak_rss() -> int:
    hwm = _status_kib("VmHWM")
    return hwm * 1024 if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def memory_child(args: argparse.Namespace) -> None:
    """Run in a fresh process: peak memory growth of 2 training steps of one variant (prints JSON)."""
    device = torch.device(args.device)
    x, target = make_batch(args.batch, args.size, device)
    tr = Trainer(args._memory, args.variant, x, target, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.max_memory_allocated()
    else:
        gc.collect()
        base = _reset_peak_rss()
    for _ in range(2):
        tr.step()
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else _peak_rss()
    print(json.dumps({"kind": args._memory, "peak_growth_bytes": peak - base}))


MMAP_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}  # glibc: fixed threshold, large blocks go back at free()


def measure_memory(args: argparse.Namespace, kind: str, env: dict[str, str] | None = None) -> float:
    cmd = [sys.executable, __file__, "--_memory", kind, "--batch", str(args.batch), "--size", str(args.size),
           "--variant", args.variant, "--threads", str(args.threads), "--device", args.device]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                         env={**os.environ, **(env or {})}).stdout.strip().splitlines()[-1]
    return json.loads(out)["peak_growth_bytes"] / 2**20


def bench_memory(args: argparse.Namespace, device: torch.device) -> None:
    kinds = ("plain", "two-conv", "one-conv")
    if device.type == "cuda":
        print("\nPeak memory of 2 training steps, fresh subprocess per variant (torch.cuda.max_memory_allocated):")
        mem = {k: measure_memory(args, k) for k in kinds}
        for k, v in mem.items():
            print(f"  {k:24s} {v:8.1f} MiB  ({v / mem['plain']:.3f}× plain)")
        return
    print(f"\nPeak memory of 2 training steps, batch {args.batch}, {args.size}×{args.size}, fresh subprocess per "
          "variant (peak RSS growth, VmHWM):")
    print(f"  {'':24s} {'glibc default':>22s}   {'MALLOC_MMAP_THRESHOLD_=128K':>28s}")
    mem = {k: (measure_memory(args, k), measure_memory(args, k, MMAP_ENV)) for k in kinds}
    p0, p1 = mem["plain"]
    for k, (a, b) in mem.items():
        print(f"  {k:24s} {a:8.1f} MiB ({a / p0:.3f}× plain)   {b:8.1f} MiB ({b / p1:.3f}× plain)")
    for col, name in ((0, "glibc default"), (1, "fixed mmap threshold")):
        ok = mem["one-conv"][col] < mem["two-conv"][col]
        print(f"  one-conv below two-conv ({name}): {'OK' if ok else 'MISSED'} "
              f"({mem['one-conv'][col] / mem['two-conv'][col]:.3f}×)")


def bench_training(args: argparse.Namespace, device: torch.device) -> None:
    x, target = make_batch(args.batch, args.size, device)
    setups: dict[str, dict[str, bool | str]] = {k: {"kind": k} for k in ("plain", "two-conv", "one-conv")}
    if args.extras:
        setups["one-conv+channels_last"] = {"kind": "one-conv", "channels_last": True}
        setups["one-conv+bf16"] = {"kind": "one-conv", "bf16": True}
        if args.compile:
            setups["one-conv+compile"] = {"kind": "one-conv", "compile_": True}
    trainers: dict[str, Trainer] = {}
    for name, s in setups.items():
        kw = {k: v for k, v in s.items() if k != "kind"}
        try:
            tr = Trainer(str(s["kind"]), args.variant, x, target, device, **kw)  # type: ignore[arg-type]
            t = timed(tr.step)  # warm-up (compile happens here)
            print(f"  built {name:24s} warm-up step {t:7.2f} s", flush=True)
            trainers[name] = tr
        except Exception as err:  # noqa: BLE001 - an optional variant may not work on this machine
            print(f"  {name}: not available here ({type(err).__name__}: {str(err).splitlines()[0][:120]})")
    times: dict[str, list[float]] = {n: [] for n in trainers}
    for r in range(args.rounds):
        for name, tr in trainers.items():
            for _ in range(args.iters):
                times[name].append(timed(tr.step))
        print(f"  round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {statistics.median(v):.3f}s"
                                                         for n, v in times.items()), flush=True)
    med = {n: statistics.median(v) for n, v in times.items()}
    print(f"\nTraining step, {args.variant}, batch {args.batch}, {args.size}×{args.size}, "
          f"{args.threads} thread(s), median of {args.rounds}×{args.iters} interleaved steps:")
    for n, t in med.items():
        print(f"  {n:24s} {t:8.3f} s/step  ({args.batch / t:6.2f} img/s, {args.clock} clock)")
    r1 = med["two-conv"] / med["one-conv"]
    r2 = med["one-conv"] / med["plain"]
    print(f"  one-conv vs two-conv throughput: {r1:.3f}×   (goal ≥ 1.10×) {'OK' if r1 >= 1.10 else 'MISSED'}")
    print(f"  one-conv vs plain time:          {r2:.3f}×   (goal ≤ 1.05×) {'OK' if r2 <= 1.05 else 'MISSED'}")
    for n in med:
        if n.startswith("one-conv+"):
            print(f"  {n} vs one-conv throughput: {med['one-conv'] / med[n]:.3f}×")
    if args.memory:
        bench_memory(args, device)


def bench_inference(args: argparse.Namespace, device: torch.device) -> None:
    import numpy as np
    import onnxruntime as ort

    size = args.infer_size
    two = build("two-conv", args.variant).to(device)
    one = build("one-conv", args.variant).to(device)
    # non-trivial BatchNorm statistics so that the folding is exercised
    g = torch.Generator().manual_seed(2)
    calib = torch.randn(4, 3, 32, 32, generator=g).to(device)
    with torch.no_grad():
        two.train()(calib)
        one.train()(calib)
    two.eval()
    one.eval()
    fused = fuse_model(one)
    x = torch.randn(1, 3, size, size, generator=g).to(device)
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # the input-shape checks are constant
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cdcn.onnx"
        torch.onnx.export(fused.cpu(), (x.cpu(),), str(path), input_names=["image"], output_names=["map"],
                          opset_version=17, dynamo=False)
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    x_np = x.cpu().numpy()
    fused = fused.to(device)

    def run_two() -> torch.Tensor:
        with torch.no_grad():
            return two(x)

    def run_one() -> torch.Tensor:
        with torch.no_grad():
            return one(x)

    def run_fused() -> torch.Tensor:
        with torch.no_grad():
            return fused(x)

    def run_ort() -> np.ndarray:
        return sess.run(None, {"image": x_np})[0]

    fns = {"eager two-conv": run_two, "eager one-conv": run_one, "eager fused": run_fused,
           "onnxruntime fused": run_ort}
    for f in fns.values():
        f()
    times: dict[str, list[float]] = {n: [] for n in fns}
    for _ in range(args.rounds):
        for n, f in fns.items():
            for _ in range(max(3, args.iters)):
                times[n].append(timed(f))
    med = {n: statistics.median(v) for n, v in times.items()}
    ref = run_two().cpu().numpy()
    diff = float(np.abs(run_ort() - ref).max())
    diff_fused = float(np.abs(run_fused().cpu().numpy() - ref).max())
    print(f"\nInference, {args.variant}, batch 1, {size}×{size}, {args.threads} thread(s), "
          f"median of {args.rounds}×{max(3, args.iters)} interleaved runs:")
    for n, t in med.items():
        print(f"  {n:24s} {t * 1000:8.2f} ms  ({med['eager two-conv'] / t:.3f}× eager two-conv)")
    r = med["eager two-conv"] / med["onnxruntime fused"]
    print(f"  onnxruntime fused vs eager two-conv: {r:.3f}×   (goal ≥ 1.5×) {'OK' if r >= 1.5 else 'MISSED'}")
    print(f"  max |onnxruntime − eager two-conv| = {diff:.2e}   (goal ≤ 1e-4) {'OK' if diff <= 1e-4 else 'MISSED'}")
    print(f"  max |eager fused − eager two-conv| = {diff_fused:.2e}   (max |map| = {float(np.abs(ref).max()):.3e})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=256, help="training image size (divisible by 8)")
    p.add_argument("--infer-size", type=int, default=256, help="inference image size")
    p.add_argument("--iters", type=int, default=2, help="timed steps per variant per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--variant", choices=["cdcn", "cdcn++"], default="cdcn")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="cpu: the process's CPU time (time.process_time) instead of wall time — much less "
                        "sensitive to other jobs on a shared machine (CPU device, --threads 1 only)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-extras", dest="extras", action="store_false", help="skip channels_last/compile/bf16")
    p.add_argument("--no-compile", dest="compile", action="store_false", help="skip torch.compile")
    p.add_argument("--no-memory", dest="memory", action="store_false", help="skip the peak-memory subprocesses")
    p.add_argument("--no-train", dest="train", action="store_false")
    p.add_argument("--memory-only", action="store_true", help="only the peak-memory subprocesses")
    p.add_argument("--no-infer", dest="infer", action="store_false")
    p.add_argument("--_memory", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    if args._memory:
        memory_child(args)
        return
    device = torch.device(args.device)
    if args.clock == "cpu":
        if device.type != "cpu":
            p.error("--clock cpu measures CPU time: use it with --device cpu")
        global CLOCK
        CLOCK = time.process_time
    print(f"torch {torch.__version__}, device {device}, threads {args.threads}, clock {args.clock}")
    if args.memory_only:
        bench_memory(args, device)
        return
    if args.train:
        bench_training(args, device)
    if args.infer:
        bench_inference(args, device)


if __name__ == "__main__":
    main()
