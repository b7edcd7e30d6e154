"""Training throughput: openfas's in-epoch steps/s against a bare loop, and the data loading alone, side by side.

    python bench/bench_trainer.py [--models minifasnet,pixelnet,cdcn] [--workers 0,1] [--blocks 5] [--block 3]
                                  [--threads N] [--cache PREPARED_CACHE]

For each model (its packaged NUAA config: ``light/minifasnet_nuaa.yaml`` batch 32 at 80 px, ``nuaa/pixelnet_nuaa.yaml``
and ``nuaa/cdcn_nuaa.yaml`` batch 16 at 64 px, all with ``data.augment: relight``) and each ``data.num_workers`` of
``--workers``, one training epoch runs (``Trainer.fit``) and, interleaved with it in blocks so that other jobs on a
shared machine slow every variant alike:

* ``openfas`` – the trainer's own steps (load the batch, move it, loss, backward, step, logging); the first steps
                after each interruption are not counted (workers had time to load ahead);
* ``bare``    – ``create_model`` with the config's options, the method's loss and the config's optimizer, fed one
                fixed random batch of the same shape: forward, backward, step (the speed a loader cannot beat);
* ``data``    – one training batch made in the main process (items of the training set + collation): the work that
                workers take off the main process; ``data/bare`` is its time over a bare step's.

Rates are one over the median time per step (a few steps slowed down by other jobs do not move a median). Also
printed: the training loader alone with the chosen workers (batches/s, before the epoch) and the epoch-end cost
(dev scoring and checkpoint writing, s). The data is the synthetic set (``data.synth``: 24 subjects per domain,
8 frames per video, 96 px crops, generated once under ~/.cache/openfas/synth) unless ``--cache`` names a prepared
cache.
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
SYNTH = ["data.synth.subjects_per_domain=24", "data.synth.frames_per_video=8", "data.synth.size=96"]


def _config(model: str, cache: str | None, workers: str, steps: int, out: Path) -> Any:
    from openfas.config import load_config

    data = [f"data.cache={cache}"] if cache else ["data.cache=synthetic", *SYNTH]
    return load_config(MODELS[model], [*data, f"data.num_workers={workers}", "train.epochs=1",
                                       f"train.max_steps_per_epoch={steps}", "train.log_every=100000",
                                       "eval.report=false", f"experiment.output_dir={out}"])


def _median_rate(seconds: list[float]) -> float:
    return 1.0 / statistics.median(seconds) if seconds else float("nan")


class BareLoop:
    """The model, loss and optimizer of a config on one fixed random batch."""

    def __init__(self, cfg: Any) -> None:
        from openfas.methods.build import build_method
        from openfas.optim import build_optimizer

        self.method = build_method(cfg)
        model = self.method.build_model()
        if cfg.train.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model.train()
        self.opt = build_optimizer(cfg.optim, [p for p in model.parameters() if p.requires_grad])
        d = cfg.data
        b, s, m = d.batch_size, d.image_size, d.map_size
        g = torch.Generator().manual_seed(0)
        label = torch.randint(0, 2, (b,), generator=g)
        self.batch = {"image": torch.randn(b, 3 * len(d.modalities), s, s, generator=g),
                      "target": torch.rand(b, m, m, generator=g) * label[:, None, None].float(), "label": label,
                      "attack": label, "domain": torch.zeros(b, dtype=torch.long), "index": torch.arange(b)}
        if cfg.train.channels_last:
            self.batch["image"] = self.batch["image"].contiguous(memory_format=torch.channels_last)
        self.stage = self.method.stages()[0]

    def step(self) -> float:
        t = time.perf_counter()
        loss = self.method.training_loss(self.model, self.batch, self.stage)["loss"]
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        float(loss.detach())
        return time.perf_counter() - t


def measure(cfg: Any, blocks: int, block: int, run_dir: Path) -> dict[str, float]:
    from torch.utils.data import default_collate

    from openfas.engine.trainer import Trainer

    trainer = Trainer(cfg, run_dir=run_dir, progress=False)
    method: Any = trainer.method
    bare = BareLoop(cfg)
    skip = 2  # openfas steps not counted after an interruption (the workers' prefetched batches)
    times: dict[str, list[float]] = {"openfas": [], "bare": [], "data": []}
    ratios: list[float] = []  # per block: median bare step / median openfas step of the block before it
    spent = {"dev": 0.0, "checkpoint": 0.0}
    state = {"calls": 0, "last": None}
    train_set = method.train_dataset(trainer)  # the data-only batches: the same items, made here
    order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(1)).tolist()
    bs = cfg.data.batch_size

    def interleave() -> None:
        bare_block = [bare.step() for _ in range(block + 1)][1:]  # the first one is not counted (caches, workers)
        times["bare"] += bare_block
        mine = times["openfas"][len(times["openfas"]) - (block - 1):]
        if mine:
            ratios.append(statistics.median(bare_block) / statistics.median(mine))
        for _ in range(2):
            start = (len(times["data"]) * bs) % max(1, len(order) - bs)
            t = time.perf_counter()
            default_collate([train_set[j] for j in order[start:start + bs]])
            times["data"].append(time.perf_counter() - t)

    def loss_step(*args: Any, **kwargs: Any) -> Any:
        now = time.perf_counter()
        n = state["calls"]
        if state["last"] is not None and n % (block + skip) > skip:
            times["openfas"].append(now - state["last"])
        if n and n % (block + skip) == 0:
            interleave()
            now = time.perf_counter()
        state["calls"], state["last"] = n + 1, now
        return original(*args, **kwargs)

    def timed(fn: Any, key: str) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - t
        return wrapper

    original = method.training_loss
    method.training_loss = loss_step
    method.dev_metrics = timed(method.dev_metrics, "dev")
    trainer.save = timed(trainer.save, "checkpoint")  # type: ignore[method-assign]
    method.evaluate = lambda _trainer: {"headline": {}}  # the final test evaluation is not a training cost

    # the training loader alone, with the chosen workers, before the epoch
    loader, sampler = trainer._train_loader(train_set)
    sampler.set_epoch(0)
    train_set.set_epoch(0)
    stamps = []
    for i, _ in enumerate(loader):
        stamps.append(time.perf_counter())
        if i + 1 >= 2 + 2 * block:
            break
    del loader
    trainer.fit()
    steps = state["calls"]
    if steps < blocks * (block + skip):
        raise SystemExit(f"only {steps} training steps ran: the training split is too small for --blocks/--block")
    return {"openfas": _median_rate(times["openfas"]), "bare": _median_rate(times["bare"]),
            "ratio": statistics.median(ratios),
            "data_ms": statistics.median(times["data"]) * 1000,
            "loader": _median_rate([b - a for a, b in zip(stamps[2:], stamps[3:], strict=False)]),
            "dev_s": spent["dev"], "ckpt_s": spent["checkpoint"], "workers": trainer.num_workers}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="minifasnet,pixelnet,cdcn")
    ap.add_argument("--workers", default="0,1", help="data.num_workers values to compare (ints or auto)")
    ap.add_argument("--blocks", type=int, default=5, help="openfas blocks, each followed by a bare block")
    ap.add_argument("--block", type=int, default=3, help="steps counted per block")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    ap.add_argument("--cache", default=None, help="a prepared crop cache (default: the synthetic set)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import cv2

    from openfas.data.loading import available_cores

    print(f"torch {torch.__version__}: {torch.get_num_threads()} threads, OpenCV {cv2.getNumThreads()} threads, "
          f"{available_cores()} cores; data: {args.cache or 'synthetic (' + ' '.join(SYNTH) + ')'}", flush=True)
    print(f"{'model':<11} {'batch':>5} {'px':>4} {'workers':>7} | {'bare/s':>7} {'openfas/s':>9} {'ratio':>6} | "
          f"{'data ms':>7} {'data/bare':>9} | {'loader/s':>8} | {'dev s':>6} {'ckpt s':>6}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            for workers in args.workers.split(","):
                steps = args.blocks * (args.block + 2) + 1
                cfg = _config(model, args.cache, workers, steps, Path(tmp))
                r = measure(cfg, args.blocks, args.block, Path(tmp) / f"{model}-{workers}")
                d = cfg.data
                print(f"{model:<11} {d.batch_size:>5} {d.image_size:>4} {workers + '=' + str(r['workers']):>7} | "
                      f"{r['bare']:>7.2f} {r['openfas']:>9.2f} {r['ratio']:>5.2f}x | "
                      f"{r['data_ms']:>7.1f} {r['data_ms'] * r['bare'] / 1000:>9.1%} | {r['loader']:>8.1f} | "
                      f"{r['dev_s']:>6.2f} {r['ckpt_s']:>6.2f}", flush=True)
    print("workers: data.num_workers as given = as resolved. bare/s, openfas/s: training steps per second (openfas: "
          "in-epoch); ratio: the median over blocks of openfas's speed over the bare loop's in the block after it. "
          "data ms: one training batch made in the main process; data/bare: that over a bare step. loader/s: "
          "batches per second of the training loader alone with those workers. dev s, ckpt s: epoch-end dev "
          "scoring and checkpoint writing.")


if __name__ == "__main__":
    main()
