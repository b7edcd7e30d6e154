"""The one training engine every method plugs into.

Reading order: :class:`Trainer` builds data → model → (DDP) → stages; :meth:`Trainer.fit` runs the loop
(stage → epoch → step) with mixed precision, non-finite-loss guard, logging and atomic checkpoints;
:meth:`Trainer.score_split` produces per-frame scores for evaluation. What differs between algorithms lives in
:mod:`openfas.methods`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from openfas import _version
from openfas.config import Config, ConfigError, apply_overrides, config_from_dict
from openfas.data.dataset import FaceCropDataset
from openfas.data.loading import resolve_num_workers, train_loader
from openfas.data.samplers import DomainBalancedBatchSampler, EpochShuffleBatchSampler
from openfas.engine import distributed as D
from openfas.engine.data_check import adapt_to_cache, check_dev_split, light_shortcut_warnings
from openfas.engine.logger import RunLogger, log, setup_console_logging
from openfas.errors import OpenFASError
from openfas.eval.report import write_report
from openfas.eval.runner import score_cache
from openfas.eval.scores import ScoreTable, evaluate_tables, no_face_counts, quick_metrics
from openfas.io.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_checkpoint_meta,
    load_model_weights,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from openfas.methods.base import Method, Stage
from openfas.methods.build import build_method
from openfas.optim import LRSchedule, build_optimizer, build_schedule


class TrainingDiverged(OpenFASError, RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left untouched."""


@dataclass
class TrainState:
    stage: int = 0
    epoch: int = 0  # epochs finished within the current stage
    step_in_epoch: int = 0  # steps finished within the current epoch
    global_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
                "global_step": self.global_step, "history": self.history}


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def _autocast_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    if mode == "off":
        return None
    if mode == "bf16":
        return torch.bfloat16
    if mode == "fp16":
        return torch.float16
    # auto: mixed precision on GPUs only (bf16 where supported); CPUs stay in float32.
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None


def _split_filter(split: str) -> str | None:
    return None if split == "all" else split


class Trainer:
    """Train one method on one config; also the evaluator of its checkpoints."""

    def __init__(self, cfg: Config, run_dir: str | Path | None = None, resume: str | Path | None = None,
                 progress: bool = True, allow_config_change: bool = False) -> None:
        """``resume``: a run folder or checkpoint to continue; ``cfg`` must then equal the run's own config
        (:func:`resume_config` reads it) unless ``allow_config_change`` (the CLI's ``--allow-override``)."""
        setup_console_logging()
        cfg = cfg.model_copy(deep=True)
        for note in adapt_to_cache(cfg):  # demo settings of a synthetic protocol on one's own cache
            log.info("%s", note)
        self.dist, self.device = D.init_distributed(cfg.train.device)
        self.cfg = cfg
        self.num_workers = resolve_num_workers(cfg.data.num_workers, self.device.type)  # per rank
        self.progress = progress and self.dist.is_main
        self.state = TrainState()
        self._resume_ckpt: dict[str, Any] | None = None
        self._running: dict[str, float] = {}
        if resume is not None:
            ckpt_path = resume_checkpoint_path(resume)
            if Path(resume).is_dir():
                run_dir = Path(resume)
            self._resume_ckpt = load_checkpoint(ckpt_path)
            saved = self._resume_ckpt["meta"].get("config")
            if saved is not None:
                try:  # fill sections added to the schema since the run started with their defaults
                    saved = config_from_dict(saved, source=str(ckpt_path)).to_dict()
                except ConfigError:
                    pass  # compared as stored; the difference is reported below
            if saved is not None and saved != cfg.to_dict():
                diff = _config_diff(saved, cfg.to_dict())
                if not allow_config_change:
                    raise ConfigError(f"{ckpt_path}: the config differs from the one the run was started with "
                                      f"({diff}); `openfas train --resume RUN` alone continues with the run's own "
                                      "config, add --allow-override to change it")
                log.warning("resuming %s with a changed config: %s", ckpt_path, diff)
            if run_dir is None:
                run_dir = ckpt_path.parent.parent
        if run_dir is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            run_dir = Path(cfg.experiment.output_dir) / f"{cfg.experiment.name}-{cfg.model.name}-{stamp}"
            if self.dist.enabled:  # every rank must agree on the folder
                run_dir = Path(str(D.all_gather_object(str(run_dir))[0]))
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        if self.dist.is_main:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            _remove_stale_temp_files(self.run_dir)
            (self.run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        resumed_at = None
        if self._resume_ckpt is not None:  # the logs go back to the checkpoint: steps after it are run again
            meta = self._resume_ckpt["meta"]
            resumed_at = {"step": meta["train_state"]["global_step"], "rows": meta.get("log_rows")}
        self.logger = RunLogger(self.run_dir, enabled=self.dist.is_main, resume=resumed_at)
        seed_everything(cfg.experiment.seed + self.dist.rank, cfg.experiment.deterministic)

        self.method: Method = build_method(cfg)
        self.cache_dir: Path | None = None
        self.crop_info: dict[str, Any] = {}
        self.method.prepare_data(self)  # default: the PAD crop cache (sets cache_dir and crop_info)
        if self.cache_dir is not None:
            check_dev_split(cfg, self.cache_dir)  # before the first epoch, not after it
            if self.dist.is_main and self._resume_ckpt is None:
                for line in light_shortcut_warnings(cfg, self.cache_dir):
                    log.warning("%s", line)
        self.model = self.method.build_model().to(self.device)
        if cfg.train.channels_last:
            # Module.to(memory_format=...) is documented and works; torch's overloads omit it
            self.model = self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        if self._resume_ckpt is not None:
            load_model_weights(self.model, self._resume_ckpt["model"], "resume checkpoint")
        self.train_model: nn.Module = self.model
        if self.dist.enabled and not self.method.ddp_wrap:
            D.broadcast_module(self.model)  # ranks were seeded seed + rank; DDP would broadcast, we must
        if self.dist.enabled and self.method.ddp_wrap:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = DDP(self.model, device_ids=ids)
        if cfg.train.compile:
            compiled = torch.compile(self.train_model)
            assert isinstance(compiled, nn.Module), "torch.compile of a module returns a module"
            self.train_model = compiled
        self.amp_dtype = _autocast_dtype(cfg.train.amp, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)

    # ------------------------------------------------------------------ data
    def barrier(self) -> None:
        """Wait until every rank gets here (no-op when not distributed)."""
        D.barrier()

    def _crop_cache(self) -> Path:
        if self.cache_dir is None:
            raise RuntimeError(f"method {self.cfg.method.name!r} located no PAD crop cache in prepare_data, "
                               "but this step reads one")
        return self.cache_dir

    def dataset(self, split: str, domains: list[str] | None, train: bool) -> FaceCropDataset:
        d = self.cfg.data
        return FaceCropDataset(self._crop_cache(), split=_split_filter(split), domains=domains,
                               modalities=d.modalities, image_size=d.image_size, map_size=d.map_size,
                               train=train and d.augment is not False, augment=d.augment, mean=d.mean, std=d.std,
                               seed=self.cfg.experiment.seed, crop_fraction=d.crop_fraction,
                               in_memory=d.in_memory if train else False)

    def _train_loader(self, dataset: Any) -> tuple[DataLoader, EpochShuffleBatchSampler]:
        kind = self.method.sampler or self.cfg.data.sampler
        bs = self.cfg.data.batch_size
        sampler: EpochShuffleBatchSampler
        if kind == "domain_balanced":
            sampler = DomainBalancedBatchSampler(dataset.domain_ids, dataset.labels, bs,
                                                 seed=self.cfg.experiment.seed, rank=self.dist.rank,
                                                 world_size=self.dist.world_size)
        else:
            sampler = EpochShuffleBatchSampler(len(dataset), bs, seed=self.cfg.experiment.seed,
                                               rank=self.dist.rank, world_size=self.dist.world_size)
        # Batches and augmentation are seeded by the sampler/dataset: any number of workers gives the same ones.
        d = self.cfg.data
        loader = train_loader(dataset, sampler, self.num_workers, seed=self.cfg.experiment.seed + self.dist.rank,
                              pin_memory=self.device.type == "cuda", persistent_workers=d.persistent_workers,
                              prefetch_factor=d.prefetch_factor)
        return loader, sampler

    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        if self.cfg.train.channels_last and out["image"].dim() == 4:
            out["image"] = out["image"].contiguous(memory_format=torch.channels_last)
        return out

    # ------------------------------------------------------------------ optim
    def _build_optimizer(self, stage: Stage) -> tuple[torch.optim.Optimizer, LRSchedule | None]:
        params = list(self.method.trainable_parameters(self.model, stage))
        if not params:
            raise ConfigError(f"stage {stage.name!r} has no trainable parameters")
        opt = build_optimizer(self.cfg.optim, params)
        return opt, build_schedule(self.cfg.optim, opt, stage.epochs)

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_meta(self, threshold: float | None = None,
                        threshold_info: dict[str, Any] | None = None) -> dict[str, Any]:
        d = self.cfg.data
        return {
            "openfas_version": _version.__version__,
            "model": self.cfg.model.name,
            "model_kwargs": self.cfg.model.kwargs(),
            "method": self.cfg.method.name,
            "config": self.cfg.to_dict(),
            "preprocess": {"image_size": d.image_size, "map_size": d.map_size, "mean": d.mean, "std": d.std,
                           "modalities": list(d.modalities), "channel_order": "RGB",
                           "crop": getattr(self, "crop_info", {})},
            "threshold": threshold,
            "threshold_info": threshold_info,
            "train_state": self.state.to_json(),
            "log_rows": dict(self.logger.rows),  # lines in metrics.jsonl / scalars.csv when this was saved
        }

    def save(self, name: str, optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None,
             threshold: float | None = None, threshold_info: dict[str, Any] | None = None) -> Path | None:
        if not self.dist.is_main:
            return None
        extra = {"rng": rng_state(), "method": self.method.state_dict(), "running": dict(self._running)}
        return save_checkpoint(self.ckpt_dir / f"{name}.safetensors", model_state=self.model.state_dict(),
                               meta=self.checkpoint_meta(threshold, threshold_info),
                               optimizer_state=optimizer.state_dict() if optimizer else None,
                               scheduler_state=scheduler.state_dict() if scheduler else None,
                               extra_state=extra)

    # ------------------------------------------------------------------ training
    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def fit(self) -> dict[str, Any]:
        """Run every stage to the end (continuing a resumed run exactly); returns the final evaluation."""
        train_set = self.method.train_dataset(self)
        loader, sampler = self._train_loader(train_set)
        stages = self.method.stages()
        resume = self._resume_ckpt
        if resume is not None:
            ts = resume["meta"]["train_state"]
            self.state = TrainState(ts["stage"], ts["epoch"], ts["step_in_epoch"], ts["global_step"],
                                    ts.get("history", []))
        if self.dist.is_main:
            log.info("run folder %s | %d train samples | device %s | world size %d | amp %s",
                     self.run_dir, len(train_set), self.device, self.dist.world_size, self.amp_dtype)
        for si, stage in enumerate(stages):
            if si < self.state.stage:
                continue
            self.method.on_stage_start(self, stage)
            opt, sched = self._build_optimizer(stage)
            if resume is not None and resume["optimizer"] is not None and si == self.state.stage:
                opt.load_state_dict(resume["optimizer"])
                if sched is not None and resume["scheduler"] is not None:
                    sched.load_state_dict(resume["scheduler"])
                set_rng_state(resume["extra"]["rng"])
                self.method.load_state_dict(resume["extra"].get("method") or {})
                self._running = dict(resume["extra"].get("running") or {})
                resume = None
            while self.state.epoch < stage.epochs:
                self._run_epoch(stage, si, train_set, loader, sampler, opt, sched)
                if self._patience_exhausted(si):
                    break
            self.state.stage, self.state.epoch, self.state.step_in_epoch = si + 1, 0, 0
            self.save("last")
        self.selection = self._restore_best()
        result = self.method.evaluate(self)
        if self.dist.is_main:
            log.info("finished: %s", json.dumps(result.get("headline", {})))
        self.logger.close()
        return result

    def _run_epoch(self, stage: Stage, si: int, train_set: Any, loader: DataLoader,
                   sampler: EpochShuffleBatchSampler, opt: torch.optim.Optimizer, sched: LRSchedule | None) -> None:
        cfg = self.cfg
        epoch_id = si * 100_000 + self.state.epoch
        sampler.set_epoch(epoch_id, skip=self.state.step_in_epoch)
        self.method.on_epoch_start(stage, self.state.epoch, resumed_mid_epoch=self.state.step_in_epoch > 0)
        train_set.set_epoch(epoch_id)
        total = len(sampler) + self.state.step_in_epoch
        limit = cfg.train.max_steps_per_epoch
        if limit is not None:
            total = min(total, limit)
        self.train_model.train()
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, initial=self.state.step_in_epoch, leave=False,
                       desc=f"{stage.name} epoch {self.state.epoch + 1}/{stage.epochs}",
                       disable=None)  # None: no bar when stderr is not a terminal (log files keep the INFO lines)
        params = [p for g in opt.param_groups for p in g["params"]]
        # loss sums of this epoch so far (restored by a mid-epoch resume, so the logged means stay right)
        running: dict[str, float] = self._running if self.state.step_in_epoch > 0 else {}
        self._running = running
        for batch in loader:
            if self.state.step_in_epoch >= total:
                break
            batch = self._to_device(batch)
            with self._autocast():
                losses = self.method.training_loss(self.train_model, batch, stage)
            loss = losses["loss"]
            self._check_finite(loss, stage)
            opt.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if self.dist.enabled and not self.method.ddp_wrap:
                D.average_gradients(params)
            if cfg.train.grad_clip:
                self.scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(params, cfg.train.grad_clip)
            self.scaler.step(opt)
            self.scaler.update()
            if sched is not None:
                sched.after_step()
            self.state.step_in_epoch += 1
            self.state.global_step += 1
            for k, v in losses.items():
                running[k] = running.get(k, 0.0) + float(v.detach())
            if self.state.global_step % max(1, cfg.train.log_every) == 0:
                n = self.state.step_in_epoch
                self.logger.scalars(self.state.global_step, {k: v / n for k, v in running.items()},
                                    phase="train", stage=stage.name, epoch=self.state.epoch)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
            if cfg.train.save_every_steps and self.state.global_step % cfg.train.save_every_steps == 0:
                self.save("last", opt, sched)
        if bar is not None:
            bar.close()
        if sched is not None:
            sched.after_epoch()
        # DDP keeps parameters in sync; BatchNorm statistics drift per rank after the last forward.
        D.broadcast_buffers(self.model)
        self.state.epoch += 1
        self.state.step_in_epoch = 0
        n_steps = max(1, total)
        summary = {k: v / n_steps for k, v in running.items()}
        summary.update(self.method.dev_metrics(self))
        best = self._selection_metric(si, summary) if self.cfg.train.select != "last" else None
        if best is not None:
            summary[best[0]] = best[1]
        self.state.history.append({"stage": stage.name, "epoch": self.state.epoch, **summary})
        self.logger.scalars(self.state.global_step, summary, phase="epoch", stage=stage.name,
                            epoch=self.state.epoch)
        if self.dist.is_main:
            log.info("%s epoch %d/%d: %s", stage.name, self.state.epoch, stage.epochs,
                     ", ".join(f"{k}={v:.4f}" for k, v in summary.items()))
        self.save("last", opt, sched)
        if best is not None and self._is_best_epoch():
            self.save("best")

    # ------------------------------------------------------------------ checkpoint selection (train.select)
    def _selection_metric(self, si: int, summary: dict[str, float]) -> tuple[str, float] | None:
        """(history key, value) of the selection metric after an epoch of the final stage, else None.

        On dev, the epoch's dev metrics are reused when the method logged them (no second scoring pass)."""
        if si != len(self.method.stages()) - 1:
            return None
        t = self.cfg.train
        d = self.cfg.data
        key = self._selection_key()
        if t.select_split == "dev" and f"dev_{t.select}" in summary:
            return key, float(summary[f"dev_{t.select}"])
        split, domains = ((d.dev_split, d.train_domains) if t.select_split == "dev"
                          else (d.test_split, d.test_domains if d.test_domains is not None else d.train_domains))
        value = quick_metrics(self.score_split(split, domains)).get(t.select)
        return (key, float(value)) if value is not None else None

    def _selection_key(self) -> str:
        """The history key of ``train.select`` on ``train.select_split`` (e.g. ``select_dev_auc``)."""
        return f"select_{self.cfg.train.select_split}_{self.cfg.train.select}"

    def _selection_values(self) -> list[float]:
        """The selection metric of every epoch that computed it, in order."""
        key = self._selection_key()
        return [h[key] for h in self.state.history if key in h]

    def _best_index(self, values: list[float]) -> int:
        """Index of the best value (ties keep the earlier epoch)."""
        better = max if self.cfg.train.select == "auc" else min
        return values.index(better(values))

    def _is_best_epoch(self) -> bool:
        """The epoch just appended to the history is the best so far (ties keep the earlier epoch)."""
        values = self._selection_values()
        return bool(values) and self._best_index(values) == len(values) - 1

    def _patience_exhausted(self, si: int) -> bool:
        """``train.patience``: stop the final stage after that many epochs without a better selection metric."""
        p = self.cfg.train.patience
        if not p or self.cfg.train.select == "last" or si != len(self.method.stages()) - 1:
            return False
        values = self._selection_values()
        if not values or len(values) - 1 - self._best_index(values) < p:
            return False
        if self.dist.is_main:
            log.info("early stop: no better %s for %d epochs (best: epoch %d of this stage)", self.cfg.train.select,
                     p, self._best_index(values) + 1)
        return True

    def _restore_best(self) -> dict[str, Any] | None:
        """Load the selected epoch's weights before the final evaluation; returns what was selected."""
        t = self.cfg.train
        if t.select == "last":
            return None
        key = self._selection_key()
        rows = [h for h in self.state.history if key in h]
        path = self.ckpt_dir / "best.safetensors"
        if not rows or not path.exists():
            log.warning("train.select=%s: no %s metric was computed (no %s split with both classes?); the last "
                        "epoch is evaluated", t.select, t.select_split, t.select_split)
            return None
        pick = rows[self._best_index([h[key] for h in rows])]
        D.barrier()  # rank 0 wrote best.safetensors
        load_model_weights(self.model, load_checkpoint(path, self.device)["model"], str(path))
        note = {"metric": t.select, "split": t.select_split, "level": "frame", "epoch": pick["epoch"],
                "value": pick[key], "optimistic": t.select_split == "test"}
        if t.select_split == "test" and self.dist.is_main:
            log.warning("checkpoint selected by %s on the TEST split (as the official code does): the reported "
                        "test numbers are optimistic", t.select)
        return note

    def _check_finite(self, loss: torch.Tensor, stage: Stage) -> None:
        ok = torch.isfinite(loss.detach()).float().reshape(1)
        if self.dist.enabled:
            D.all_reduce_mean(ok)
        if float(ok) < 1.0:
            last = self.ckpt_dir / "last.safetensors"
            where = f"last good checkpoint: {last}" if last.exists() else "no checkpoint was written yet"
            raise TrainingDiverged(
                f"non-finite loss ({float(loss.detach())}) at stage {stage.name!r}, epoch {self.state.epoch + 1}, "
                f"step {self.state.step_in_epoch + 1} (global step {self.state.global_step + 1}); {where}. "
                "Lower optim.lr, enable train.grad_clip or check the data.")

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def score_split(self, split: str, domains: list[str] | None) -> ScoreTable:
        """Score every frame of a split (on rank 0's model; all ranks hold the same weights)."""
        return score_cache(self.model, self.method, self._crop_cache(), split, domains, self.device,
                           self.cfg.data.batch_size, num_workers=self.num_workers,
                           amp_dtype=self.amp_dtype)

    def pad_dev_metrics(self) -> dict[str, float]:
        try:
            dev = self.score_split(self.cfg.data.dev_split, self.cfg.data.train_domains)
        except Exception as err:  # noqa: BLE001 - a missing dev split must not stop training
            log.debug("no dev evaluation: %s", err)
            return {}
        return {f"dev_{k}": v for k, v in quick_metrics(dev).items()}

    def evaluate_and_report(self) -> dict[str, Any]:
        """Score dev and test, pick the threshold per ``eval.threshold``, write scores, metrics and final model."""
        cfg = self.cfg
        test_domains = cfg.data.test_domains if cfg.data.test_domains is not None else cfg.data.train_domains
        test = self.score_split(cfg.data.test_split, test_domains)
        dev = None
        if cfg.eval.threshold in ("dev_eer", "dev_apcer"):
            dev = self.score_split(cfg.data.dev_split, cfg.data.train_domains)
        no_face = no_face_counts(self.cache_dir, cfg.data.test_split, test_domains) if self.cache_dir else None
        result = evaluate_tables(test, dev, cfg.eval.threshold, cfg.eval.fixed_threshold, cfg.eval.video_level,
                                 apcer_target=cfg.eval.apcer_target, no_face=no_face,
                                 separated_rule=cfg.eval.separated_rule)
        rule = getattr(self.method, "score_rule", None)
        if callable(rule):  # how the method turned maps into scores (e.g. CDCN mean vs Σmap/Σmask)
            result["score_rule"] = rule()
        result["checkpoint_selection"] = getattr(self, "selection", None) or {"metric": "last epoch"}
        cal = result["threshold"].get("calibration") or {}
        if cal.get("warning"):
            log.warning("threshold: %s", cal["warning"])
        if self.dist.is_main:
            test.write_csv(self.run_dir / "scores_test.csv")
            if dev is not None:
                dev.write_csv(self.run_dir / "scores_dev.csv")
            (self.run_dir / "metrics.json").write_text(json.dumps(result, indent=2))
            self.save("final", threshold=result["threshold"]["value"], threshold_info=result["threshold"])
            if cfg.eval.report:
                try:
                    path = write_report(self.run_dir, cache_dir=self.cache_dir, model=self.model,
                                        method=self.method, device=self.device)
                    log.info("report: %s", path)
                except Exception as err:  # noqa: BLE001 - a report problem must not lose a finished run
                    log.warning("could not write the report (%s: %s); scores and metrics are saved",
                                type(err).__name__, err)
        return result


def resume_checkpoint_path(resume: str | Path) -> Path:
    """The checkpoint ``--resume`` continues from: ``<run>/checkpoints/last.safetensors`` for a run folder.
    A run folder without that file is an error that says why: when a kill interrupted the run's first checkpoint
    write, the temporary file it left is removed and named."""
    p = Path(resume)
    if not p.is_dir():
        return p
    path = p / "checkpoints" / "last.safetensors"
    if path.is_file():
        return path
    removed = _remove_stale_temp_files(p)
    again = (f"start it again with `openfas train -c {p / 'config.json'}`" if (p / "config.json").is_file()
             else "start it again")
    if removed:
        names = ", ".join(str(t) for t in removed)
        raise CheckpointError(f"{p}: the run has no complete checkpoint to resume from: its first checkpoint write "
                              f"was interrupted (removed the partial file {names}); {again}")
    raise CheckpointError(f"{p}: the run has no checkpoint to resume from ({path} not found): it stopped before "
                          f"its first checkpoint; {again}")


def resume_config(resume: str | Path, overrides: list[str] | None = None) -> Config:
    """The config a run was started with (stored in its checkpoint), with optional dotted ``overrides``."""
    path = resume_checkpoint_path(resume)
    saved = load_checkpoint_meta(path).get("config")
    if not isinstance(saved, dict):
        raise CheckpointError(f"{path}: the checkpoint stores no config; pass the run's config with -c")
    return config_from_dict(apply_overrides(copy.deepcopy(saved), list(overrides or [])),
                            source=f"{path} (the run's config)")


def _remove_stale_temp_files(run_dir: Path) -> list[Path]:
    """Delete temporary files left by a process killed while writing a checkpoint or CAM cache; returns them."""
    removed = []
    for tmp in sorted([*run_dir.glob("checkpoints/*.safetensors.*.tmp"), *run_dir.glob("*.safetensors.tmp")]):
        if tmp.is_file():
            log.info("removing a stale temporary file %s (left by an interrupted write)", tmp)
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _config_diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> str:
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            d = _config_diff(va, vb, f"{prefix}{k}.")
            if d:
                return d
        elif va != vb:
            return f"{prefix}{k}: {va!r} → {vb!r}"
    return ""


__all__ = ["Trainer", "TrainingDiverged", "resume_checkpoint_path", "resume_config"]
