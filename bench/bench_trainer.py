"""Training throughput: openfas's in-epoch steps/s against a bare loop, and the data loading alone, side by side.

    python bench/bench_trainer.py [--models minifasnet,pixelnet,cdcn] [--workers 0,1] [--steps 20] [--warmup 3]
                                  [--threads N] [--cache PREPARED_CACHE]

For each model (its packaged NUAA config: ``light/minifasnet_nuaa.yaml`` batch 32 at 80 px, ``nuaa/pixelnet_nuaa.yaml``
and ``nuaa/cdcn_nuaa.yaml`` batch 16 at 64 px, all with ``data.augment: relight``), in one process:

* ``bare``      – ``create_model`` with the config's options, the method's loss and the config's optimizer, fed one
                  fixed random batch of the same shape: forward, backward, step (the speed a loader cannot beat);
* ``openfas``   – the trainer's own epoch (``Trainer.fit``, one epoch of ``--warmup + --steps`` steps) with
                  ``data.num_workers`` = each of ``--workers``; steps/s after the warm-up, so worker start-up and the
                  epoch's end are left out;
* ``data``      – the trainer's training loader alone, same workers: batches/s, and ms per batch;
* ``epoch end`` – what the trainer does after the last step of an epoch: dev scoring and checkpoint writing (s).

The data is the synthetic set (``data.synth``: 8 subjects per domain, 8 frames per video, 96 px crops, generated
once under ~/.cache/openfas/synth) unless ``--cache`` names a prepared cache. Ratios are what matter on a shared
machine; rates are one over the median time per step (or batch), which a few steps slowed down by other jobs
do not move, and the bare loop runs before and after each openfas epoch.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

MODELS = {"minifasnet": "light/minifasnet_nuaa.yaml", "pixelnet": "nuaa/pixelnet_nuaa.yaml",
          "cdcn": "nuaa/cdcn_nuaa.yaml"}
SYNTH = ["data.synth.subjects_per_domain=8", "data.synth.frames_per_video=8", "data.synth.size=96"]


def _config(model: str, cache: str | None, workers: str, steps: int, out: Path) -> Any:
    from openfas.config import load_config

    data = [f"data.cache={cache}"] if cache else ["data.cache=synthetic", *SYNTH]
    return load_config(MODELS[model], [*data, f"data.num_workers={workers}", "train.epochs=1",
                                       f"train.max_steps_per_epoch={steps}", "train.log_every=100000",
                                       "eval.report=false", f"experiment.output_dir={out}"])


def _rate(stamps: list[float], warmup: int) -> float:
    """Steps per second after the warm-up: one over the median time between consecutive stamps (the median,
    not the mean: other jobs on a shared machine slow some steps down a lot)."""
    gaps = [b - a for a, b in zip(stamps[warmup:], stamps[warmup + 1:], strict=False)]
    return 1.0 / statistics.median(gaps) if gaps else float("nan")


def bare_loop(cfg: Any, steps: int, warmup: int) -> float:
    from openfas.methods.build import build_method
    from openfas.optim import build_optimizer

    method = build_method(cfg)
    model = method.build_model()
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    opt = build_optimizer(cfg.optim, [p for p in model.parameters() if p.requires_grad])
    d = cfg.data
    b, s, m = d.batch_size, d.image_size, d.map_size
    g = torch.Generator().manual_seed(0)
    label = torch.randint(0, 2, (b,), generator=g)
    batch = {"image": torch.randn(b, 3 * len(d.modalities), s, s, generator=g),
             "target": torch.rand(b, m, m, generator=g) * label[:, None, None].float(),
             "label": label, "attack": label, "domain": torch.zeros(b, dtype=torch.long), "index": torch.arange(b)}
    if cfg.train.channels_last:
        batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
    stage = method.stages()[0]
    stamps = []
    for _ in range(warmup + steps):
        stamps.append(time.perf_counter())
        loss = method.training_loss(model, batch, stage)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        float(loss.detach())
    stamps.append(time.perf_counter())
    return _rate(stamps, warmup)


def openfas_epoch(cfg: Any, steps: int, warmup: int, run_dir: Path) -> dict[str, float]:
    from openfas.engine.trainer import Trainer

    trainer = Trainer(cfg, run_dir=run_dir, progress=False)
    method: Any = trainer.method
    stamps: list[float] = []
    spent = {"dev": 0.0, "checkpoint": 0.0}

    def timed(fn: Any, key: str | None) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            if key is None:
                stamps.append(t)
            try:
                return fn(*args, **kwargs)
            finally:
                if key is not None:
                    spent[key] += time.perf_counter() - t
        return wrapper

    method.training_loss = timed(method.training_loss, None)
    method.dev_metrics = timed(method.dev_metrics, "dev")
    trainer.save = timed(trainer.save, "checkpoint")  # type: ignore[method-assign]
    method.evaluate = lambda _trainer: {"headline": {}}  # the final test evaluation is not a training cost

    # data alone first, through the trainer's own loader (same dataset, sampler, workers)
    train_set = method.train_dataset(trainer)
    loader, sampler = trainer._train_loader(train_set)
    sampler.set_epoch(0)
    train_set.set_epoch(0)
    data_stamps, data_cpu = [], []
    for i, _ in enumerate(loader):
        data_stamps.append(time.perf_counter())
        data_cpu.append(time.process_time())
        if i + 1 >= warmup + steps:
            break
    del loader
    t0 = time.perf_counter()
    trainer.fit()
    total = time.perf_counter() - t0
    n = len(stamps)
    if n < warmup + 2:
        raise SystemExit(f"only {n} training steps ran: the training split is too small for --steps")
    cpu_ms = statistics.median(b - a for a, b in zip(data_cpu[warmup:], data_cpu[warmup + 1:], strict=False)) * 1000
    return {"steps_s": _rate(stamps, warmup), "data_s": _rate(data_stamps, warmup), "data_cpu_ms": cpu_ms, "steps": n,
            "dev_s": spent["dev"], "ckpt_s": spent["checkpoint"], "fit_s": total,
            "workers": trainer.num_workers}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="minifasnet,pixelnet,cdcn")
    ap.add_argument("--workers", default="0,1", help="data.num_workers values to compare (ints or auto)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    ap.add_argument("--cache", default=None, help="a prepared crop cache (default: the synthetic set)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import cv2

    from openfas.data.loading import available_cores

    print(f"torch {torch.__version__}: {torch.get_num_threads()} threads, OpenCV {cv2.getNumThreads()} threads, "
          f"{available_cores()} cores; workers shown as data.num_workers=resolved; "
          f"data: {args.cache or 'synthetic (' + ' '.join(SYNTH) + ')'}", flush=True)
    header = (f"{'model':<11} {'batch':>5} {'px':>4} {'workers':>7} | {'bare/s':>7} {'openfas/s':>9} {'ratio':>6} | "
              f"{'data/s':>7} {'data ms':>7} {'cpu ms':>6} {'data/bare':>9} | {'dev s':>6} {'ckpt s':>6}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            for workers in args.workers.split(","):
                cfg = _config(model, args.cache, workers, args.warmup + args.steps + 1, Path(tmp))
                bare = bare_loop(cfg, args.steps, args.warmup)
                run = openfas_epoch(cfg, args.steps, args.warmup, Path(tmp) / f"{model}-{workers}")
                bare_after = bare_loop(cfg, args.steps, args.warmup)  # bracket the run: load changes over time
                bare_rate = statistics.mean([bare, bare_after])
                d = cfg.data
                row = (f"{model:<11} {d.batch_size:>5} {d.image_size:>4} {workers + '=' + str(run['workers']):>7} | "
                       f"{bare_rate:>7.2f} {run['steps_s']:>9.2f} {run['steps_s'] / bare_rate:>5.2f}x | "
                       f"{run['data_s']:>7.1f} {1000 / run['data_s']:>7.1f} {run['data_cpu_ms']:>6.1f} "
                       f"{bare_rate / run['data_s']:>9.1%} | "
                       f"{run['dev_s']:>6.2f} {run['ckpt_s']:>6.2f}")
                if not rows:
                    print(header)
                rows.append(row)
                print(row, flush=True)
    print("bare/s, openfas/s: training steps per second (openfas: in-epoch, after the warm-up; ratio = openfas/bare); "
          "data/s, data ms: batches per second and wall ms per batch of the training loader alone; cpu ms: the main "
          "process's CPU time per batch there (all the loading with 0 workers); data/bare: data ms over a bare "
          "step's; dev s, ckpt s: epoch-end dev scoring and checkpoint writing")


if __name__ == "__main__":
    main()
