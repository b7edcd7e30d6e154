"""Optimisers and learning-rate schedules by torch class name (configured by :class:`openfas.config.OptimConfig`).

``build_optimizer(cfg.optim, params)`` instantiates ``torch.optim.<name>`` (case-insensitive) with the options
its signature accepts; ``build_schedule(cfg.optim, optimizer, stage_epochs)`` returns an :class:`LRSchedule`
that the engine calls after every optimiser step and after every epoch. A schedule without warm-up that steps
per epoch checkpoints exactly as the bare torch scheduler did, so runs started before this module resume
unchanged. :func:`check_optim` validates names and options (a config error names the key).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch.optim import lr_scheduler

from openfas.config import ConfigError, OptimConfig

_SHORT_SCHEDULERS = ("none", "step", "cosine")


def _find_class(module: Any, name: str, base: type, what: str) -> type:
    table = {k.lower(): v for k, v in vars(module).items()
             if inspect.isclass(v) and issubclass(v, base) and v is not base and not k.startswith("_")}
    cls = table.get(name.lower())
    if cls is None:
        offered = ", ".join(sorted(c.__name__ for c in set(table.values())))
        raise ConfigError(f"{what}: unknown {name!r}; torch offers {offered}")
    return cls


def optimizer_class(name: str) -> type[torch.optim.Optimizer]:
    return _find_class(torch.optim, name, torch.optim.Optimizer, "optim.name")


def scheduler_class(name: str) -> type[lr_scheduler.LRScheduler]:
    return _find_class(lr_scheduler, name, lr_scheduler.LRScheduler, "optim.scheduler")


def _accepted(cls: type, kwargs: dict[str, Any], key: str) -> None:
    params = inspect.signature(cls).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    for k in kwargs:
        if k not in params:
            raise ConfigError(f"{key}: {cls.__name__} has no option {k!r}")


def optimizer_kwargs(o: OptimConfig) -> dict[str, Any]:
    """The keyword arguments ``torch.optim.<name>`` gets: the common options its signature takes, then ``options``."""
    cls = optimizer_class(o.name)
    params = inspect.signature(cls).parameters
    common = {"lr": o.lr, "weight_decay": o.weight_decay, "momentum": o.momentum, "betas": tuple(o.betas)}
    kwargs = {k: v for k, v in common.items() if k in params}
    _accepted(cls, o.options, "optim.options")
    return {**kwargs, **o.options}


def check_optim(o: OptimConfig) -> None:
    """Raise :class:`ConfigError` for an unknown optimiser/scheduler or an option its class does not take."""
    optimizer_kwargs(o)
    if o.scheduler.lower() not in _SHORT_SCHEDULERS:
        _accepted(scheduler_class(o.scheduler), o.scheduler_options, "optim.scheduler_options")
    elif o.scheduler_options:
        raise ConfigError(f"optim.scheduler_options: only for torch scheduler classes, not {o.scheduler!r}")


def build_optimizer(o: OptimConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    return optimizer_class(o.name)(params, **optimizer_kwargs(o))


class LRSchedule:
    """The schedule of one stage: an optional per-step linear warm-up chained with the configured scheduler."""

    def __init__(self, main: lr_scheduler.LRScheduler | None, interval: str,
                 warmup: lr_scheduler.LinearLR | None = None) -> None:
        self.main, self.interval, self.warmup = main, interval, warmup
        self.warmup_steps = warmup.total_iters if warmup is not None else 0
        self.steps = 0

    def after_step(self) -> None:
        self.steps += 1
        if self.warmup is not None and self.steps <= self.warmup_steps:
            self.warmup.step()
        if self.main is not None and self.interval == "step":
            self.main.step()

    def after_epoch(self) -> None:
        if self.main is not None and self.interval == "epoch":
            self.main.step()

    def state_dict(self) -> dict[str, Any]:
        if self.warmup is None and self.interval == "epoch":  # the layout of checkpoints from before warm-up
            return self.main.state_dict() if self.main is not None else {}
        return {"main": self.main.state_dict() if self.main is not None else None,
                "warmup": self.warmup.state_dict() if self.warmup is not None else None, "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.warmup is None and self.interval == "epoch":
            if self.main is not None:
                self.main.load_state_dict(state)
            return
        if self.main is not None and state.get("main") is not None:
            self.main.load_state_dict(state["main"])
        if self.warmup is not None and state.get("warmup") is not None:
            self.warmup.load_state_dict(state["warmup"])
        self.steps = int(state.get("steps", 0))


def build_schedule(o: OptimConfig, opt: torch.optim.Optimizer, stage_epochs: int) -> LRSchedule | None:
    """The :class:`LRSchedule` of ``o`` for a stage of ``stage_epochs`` epochs (None: constant learning rate)."""
    name = o.scheduler.lower()
    main: lr_scheduler.LRScheduler | None = None
    if name == "step":
        main = lr_scheduler.StepLR(opt, step_size=o.step_size, gamma=o.gamma)
    elif name == "cosine":
        main = lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, stage_epochs))
    elif name != "none":
        main = scheduler_class(o.scheduler)(opt, **o.scheduler_options)
    warmup = None
    if o.warmup_steps > 0:
        warmup = lr_scheduler.LinearLR(opt, start_factor=o.warmup_start_factor, end_factor=1.0,
                                       total_iters=o.warmup_steps)
    if main is None and warmup is None:
        return None
    return LRSchedule(main, o.interval, warmup)
