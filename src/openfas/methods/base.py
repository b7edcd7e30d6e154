"""The contract between the training engine and a training algorithm (a "method").

The engine (:mod:`openfas.engine.trainer`) owns devices, data loading, distributed training, mixed
precision, optimisers, checkpoints and logging. A method owns only what differs between algorithms:

* :meth:`Method.build_model` – one ``nn.Module`` holding every trainable part (a container module when a
  method has several networks, e.g. LDCNet's FE/CF/LE/SE);
* :meth:`Method.stages` – the training stages (LDCNet: pre-train FE+CF, then everything) with their
  epochs and which parameters each optimises;
* :meth:`Method.training_loss` – the loss of one batch; a meta-learning method computes the inner update
  with ``torch.func.functional_call`` and returns the outer loss, whose backward gives the meta-gradient;
* :meth:`Method.score` – the liveness score (higher = more live) and optionally the predicted map;
* :meth:`Method.on_stage_start` – a hook, e.g. to compute and cache CAM quasi ground truth;
* data and evaluation hooks with the PAD behaviour as default, for methods that train on other data
  (face recognition): :meth:`Method.prepare_data` (locate/generate the data; default: the crop cache),
  :meth:`Method.train_dataset`, :meth:`Method.dev_metrics` (per-epoch) and :meth:`Method.evaluate`
  (after training; default: PAD scoring of dev/test with the configured threshold policy).

The hooks receive the engine as a :class:`TrainerContext` (a typed interface); methods never import the engine.
Methods register with ``@register_method("name")`` and declare their options in a pydantic ``Params``
model, so a config with an unknown method option fails naming the key.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import torch
import torch.nn as nn
from pydantic import BaseModel, ConfigDict

from openfas.config import Config, ConfigError
from openfas.data.locate import crop_geometry, resolve_cache
from openfas.models import create_model
from openfas.models._registry import model_factory

Batch = dict[str, torch.Tensor]


class RankInfo(Protocol):
    """This process's place in a (possibly distributed) run."""

    @property
    def is_main(self) -> bool: ...

    @property
    def rank(self) -> int: ...

    @property
    def world_size(self) -> int: ...


class TrainProgress(Protocol):
    """Where the run stands: epochs finished within the current stage, steps within the current epoch."""

    @property
    def epoch(self) -> int: ...

    @property
    def step_in_epoch(self) -> int: ...


class TrainerContext(Protocol):
    """What a method's hooks may use of the engine that runs it (:class:`openfas.engine.trainer.Trainer` is one).

    Methods never import the engine; the engine hands itself to the hooks as this interface.
    """

    cfg: Config
    device: torch.device
    run_dir: Path
    model: nn.Module  # the bare model (no DDP / compile wrapper)
    cache_dir: Path | None  # the PAD crop cache (set by :meth:`Method.prepare_data`)
    crop_info: dict[str, Any]  # how the training crops were cut (stored in checkpoints for deployment)

    @property
    def dist(self) -> RankInfo: ...

    @property
    def state(self) -> TrainProgress: ...

    def barrier(self) -> None:
        """Wait until every rank gets here (no-op when not distributed)."""

    def dataset(self, split: str, domains: list[str] | None, train: bool) -> Any:
        """A crop-cache dataset of ``split`` (``"all"`` = every split) with the config's pre-processing."""

    def pad_dev_metrics(self) -> dict[str, float]:
        """AUC / EER / HTER of the PAD dev split (empty when there is none)."""

    def evaluate_and_report(self) -> dict[str, Any]:
        """The PAD final evaluation: score dev and test, choose the threshold, write scores, metrics, report and
        the ``final`` checkpoint."""

    def save(self, name: str, optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None,
             threshold: float | None = None) -> Path | None:
        """Write ``checkpoints/<name>.safetensors`` (main rank; returns its path)."""


class MethodParams(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


@dataclass(frozen=True)
class Stage:
    """One training stage: ``epochs`` epochs optimising ``parameters`` (None = all trainable)."""

    name: str
    epochs: int
    param_filter: Callable[[str], bool] | None = None


class Method:
    """Base class of training algorithms; see the module docstring."""

    #: The name the method is registered under (set by :func:`register_method`).
    name: ClassVar[str] = ""
    Params: ClassVar[type[MethodParams]] = MethodParams
    #: Sampler the method needs: "random" or "domain_balanced" (every batch holds every source domain's
    #: live and spoof samples). ``None`` = take ``data.sampler`` from the config.
    sampler: ClassVar[str | None] = None
    #: Wrap the model in DistributedDataParallel. Methods that call the model through
    #: ``torch.func.functional_call`` with substituted weights set this False; the engine then averages
    #: gradients across ranks itself after backward.
    ddp_wrap: ClassVar[bool] = True

    def __init__(self, cfg: Config, params: MethodParams) -> None:
        self.cfg = cfg
        self.params = params

    def model_kwargs(self) -> dict[str, Any]:
        """Model options from the config, with ``map_size`` / ``in_channels`` / ``modalities`` /
        ``input_mean`` / ``input_std`` filled in from ``data`` when the model accepts them; a conflicting
        explicit value is a config error."""
        kwargs = self.cfg.model.kwargs()
        accepted = inspect.signature(model_factory(self.cfg.model.name)).parameters
        data = self.cfg.data
        derived = {"map_size": data.map_size, "in_channels": 3 * len(data.modalities),
                   "modalities": tuple(data.modalities), "input_mean": data.mean, "input_std": data.std}
        for key, value in derived.items():
            if key not in accepted:
                continue
            if key in kwargs:
                given = tuple(kwargs[key]) if key == "modalities" else kwargs[key]
                if given != value:
                    raise ConfigError(f"model.{key}={kwargs[key]!r} does not match the data config "
                                      f"(data gives {value!r}); remove model.{key} or change data")
            else:
                kwargs[key] = value
        return kwargs

    def build_model(self) -> nn.Module:
        return create_model(self.cfg.model.name, **self.model_kwargs())

    def stages(self) -> list[Stage]:
        return [Stage("main", self.cfg.train.epochs)]

    def trainable_parameters(self, model: nn.Module, stage: Stage) -> Iterable[nn.Parameter]:
        if stage.param_filter is None:
            return [p for p in model.parameters() if p.requires_grad]
        return [p for n, p in model.named_parameters() if p.requires_grad and stage.param_filter(n)]

    def on_stage_start(self, trainer: TrainerContext, stage: Stage) -> None:  # noqa: B027 - optional hook
        """Called before the first epoch of each stage (also after a resume into that stage)."""

    def on_epoch_start(self, stage: Stage, epoch: int, resumed_mid_epoch: bool) -> None:  # noqa: B027
        """Called before each epoch (``resumed_mid_epoch``: the epoch continues from a checkpoint)."""

    def state_dict(self) -> dict[str, Any]:
        """Training state the method keeps outside the model (e.g. ANRL's running class centres); it is saved
        in every checkpoint and given back by :meth:`load_state_dict` on resume. Tensors and JSON values."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Restore what :meth:`state_dict` returned."""

    # ------------------------------------------------------------------ data / evaluation hooks
    def prepare_data(self, trainer: TrainerContext) -> None:
        """Locate (or generate) the data before the model is built; sets ``trainer.cache_dir`` and
        ``trainer.crop_info``. Default: the PAD crop cache of ``data.cache``."""
        trainer.cache_dir = resolve_cache(self.cfg, trainer.dist.is_main)
        trainer.crop_info = crop_geometry(trainer.cache_dir, self.cfg.data.crop_fraction)

    def train_dataset(self, trainer: TrainerContext) -> Any:
        """The training dataset (``__len__``, ``__getitem__`` → dict with ``"image"``, ``set_epoch``)."""
        return trainer.dataset(self.cfg.data.train_split, self.cfg.data.train_domains, train=True)

    def dev_metrics(self, trainer: TrainerContext) -> dict[str, float]:
        """Metrics logged after every epoch. Default: PAD quick metrics on the dev split (if any)."""
        return trainer.pad_dev_metrics()

    def evaluate(self, trainer: TrainerContext) -> dict[str, Any]:
        """Final evaluation after training; writes results and the ``final`` checkpoint (rank 0) and returns
        a dict with a ``"headline"`` entry. Default: :meth:`Trainer.evaluate_and_report` (PAD)."""
        return trainer.evaluate_and_report()

    def training_loss(self, model: nn.Module, batch: Batch, stage: Stage) -> dict[str, torch.Tensor]:
        """Loss terms of one batch; must contain ``"loss"`` (the scalar to minimise)."""
        raise NotImplementedError

    @torch.no_grad()
    def score(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        """``{"score": B}`` (higher = more live), optionally ``{"map": B×h×w}``."""
        raise NotImplementedError


def unwrap_model(model: nn.Module) -> nn.Module:
    """The user module inside DDP (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        inner = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


M = TypeVar("M", bound=nn.Module)


def unwrap_as(model: nn.Module, cls: type[M], method: str) -> M:
    """:func:`unwrap_model`, checked to be the model class ``method`` trains (its named parts are used)."""
    net = unwrap_model(model)
    if not isinstance(net, cls):
        raise ConfigError(f"method {method} needs a {cls.__name__} model, got {type(net).__name__}")
    return net


_METHODS: dict[str, type[Method]] = {}


def register_method(name: str) -> Callable[[type[Method]], type[Method]]:
    def decorator(cls: type[Method]) -> type[Method]:
        _METHODS[name.lower()] = cls
        cls.name = name.lower()
        return cls

    return decorator


# Complete whenever reachable: importing this module runs the package's __init__ first, which imports every
# method file (each registers itself), so the registry never imports the package back.
def get_method(name: str) -> type[Method]:
    key = name.lower()
    if key not in _METHODS:
        raise KeyError(f"unknown method {name!r}; available: {', '.join(sorted(_METHODS))}")
    return _METHODS[key]


def list_methods() -> list[str]:
    return sorted(_METHODS)
