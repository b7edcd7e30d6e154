"""Typed configuration: one pydantic schema, loaded from YAML with dotted command-line overrides.

``load_config("configs/demo.yaml", ["model.width=16", "train.epochs=2"])``. Unknown keys anywhere are an
error that names the key. This module is the schema only and imports no registry: whether the model and method
exist and accept their options is checked where the config is built into objects
(:func:`openfas.methods.build.check_config`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_serializer

from openfas.errors import OpenFASError


class ConfigError(OpenFASError, ValueError):
    """A config file or override is invalid; the message names the file/key and the problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ExperimentConfig(_Strict):
    name: str = "run"
    seed: int = 0
    deterministic: bool = False
    output_dir: str = "runs"


class SynthConfig(_Strict):
    """Used when ``data.cache`` is ``"synthetic"``: the generated set is cached under ``cache_dir``."""

    cache_dir: str = "~/.cache/openfas/synth"
    domains: list[str] = Field(default_factory=lambda: ["synth_a", "synth_b", "synth_c", "synth_d"])
    subjects_per_domain: int = 6
    videos_per_subject: int = 1
    frames_per_video: int = 2
    size: int = 128
    modalities: list[str] = Field(default_factory=lambda: ["rgb"])
    seed: int = 0
    # How far each domain's camera lies from a neutral one (1 = generator default; e.g. 2.5 for a harder
    # leave-one-domain-out protocol, see openfas.data.synth.pad.camera_params).
    domain_shift: float = Field(default=1.0, ge=0.0)

    @model_serializer(mode="wrap")
    def _omit_default_additions(self, handler: Any) -> dict[str, Any]:
        """Options added after the first release are left out while at their default, so a default config
        dumps (config.json, the synthetic-cache digest) exactly as before they existed."""
        out = handler(self)
        if self.domain_shift == 1.0:
            out.pop("domain_shift", None)
        return out


class IdentitySynthConfig(_Strict):
    """Used when ``data.identities.root`` is ``"synthetic"``: synthetic identities with synthesised masks
    (:func:`openfas.data.synth.identities.generate_identities`), cached under ``cache_dir``."""

    cache_dir: str = "~/.cache/openfas/synth-ids"
    identities: int = 24
    images_per_identity: int = 8
    test_identities: int = 16
    test_images_per_identity: int = 4
    pairs_per_identity: int = 12
    size: int = 112
    degrade_prob: float = 0.5
    seed: int = 0


class IdentityDataConfig(_Strict):
    """Face-recognition data (methods ``cosface`` / ``csdn``): an identity-folder root for training and a
    verification pairs file evaluated after training."""

    root: str = "synthetic"  # root/<identity>/<image> (CASIA-WebFace style), or "synthetic"
    masked_root: str | None = None  # optional pre-masked copies with the same relative paths
    landmarks: str | None = None  # CSV of 5 landmarks per image; default root/landmarks.csv, else aligned template
    mask_prob: float = Field(0.5, ge=0.0, le=1.0)  # probability that a training item is masked
    mask_types: list[str] = Field(default_factory=lambda: ["surgical", "cloth", "n95"])
    pairs: str | None = None  # pairs file (lfw / mfr2 / mlfw); "synthetic" root: its generated masked pairs
    pairs_root: str | None = None  # image root of the pairs; default: the pairs file's folder
    pairs_format: Literal["auto", "lfw", "mfr2", "mlfw"] = "auto"
    pairs_ext: str | None = None  # image suffix of lfw/mfr2 pair lines (default .jpg for lfw, .png for mfr2)
    flip: bool = False  # eval / predict --embed: sum the embeddings of the image and its mirror (insightface)
    # the face chips the training images are (recorded in the checkpoint, so that eval / predict --embed cut the
    # same chips from photos): "arcface" five-point crops, "dlib" face chips, "auto": dlib for dlib-* models
    face_geometry: Literal["auto", "arcface", "dlib"] = "auto"
    synth: IdentitySynthConfig = Field(default_factory=IdentitySynthConfig)


class DataConfig(_Strict):
    cache: str = "synthetic"  # a prepared cache folder, or "synthetic"
    train_split: str = "train"
    dev_split: str = "dev"
    test_split: str = "test"
    train_domains: list[str] | None = None  # None = all
    test_domains: list[str] | None = None
    modalities: list[str] = Field(default_factory=lambda: ["rgb"])
    image_size: int = Field(256, ge=1)
    map_size: int = Field(32, ge=1)
    mean: float = 0.5
    std: float = Field(0.5, gt=0.0)
    batch_size: int = Field(8, ge=1)
    # DataLoader worker processes: an int, or "auto" (from the cores per process and the device, see
    # openfas.data.loading.resolve_num_workers); batches are the same for any number
    num_workers: Annotated[int, Field(ge=0)] | Literal["auto"] = 0
    persistent_workers: bool = True  # keep the training workers between epochs (with num_workers > 0)
    prefetch_factor: int | None = Field(default=None, ge=1)  # batches loaded ahead per worker (None: torch's 2)
    # decode the training crops once and keep them in memory (shared with forked workers); "auto": when they
    # take at most 1 GiB. Batches are the same either way
    in_memory: bool | Literal["auto"] = "auto"
    sampler: Literal["random", "domain_balanced"] = "random"
    # training augmentation recipe: true = "openfas", false = "none", a method's official recipe by name
    # ("rfmeta", "anrl", "cdcn"), "real" (strong light/colour/blur/JPEG changes for small real-face sets),
    # "colour" (real's geometric, light and colour changes without blur, JPEG, noise or rescaling) or
    # "geometric" (its crop/flip/rotation alone, for texture inputs such as model.input_code=lbp);
    # "relight" (that crop/flip/rotation, then a random exposure, white balance and noise level per crop);
    # see openfas.data.transforms
    augment: bool | Literal["openfas", "none", "rfmeta", "anrl", "cdcn", "real", "colour", "geometric", "relight",
                            "light"] = True
    # Centre part of each stored crop the model sees (train and test); 0.5 of a cache prepared with --scale 2.7
    # is a crop of scale 1.35. Checkpoints record the resulting crop scale, so deployment crops the same way.
    crop_fraction: float = Field(default=1.0, gt=0.0, le=1.0)
    synth: SynthConfig = Field(default_factory=SynthConfig)
    identities: IdentityDataConfig = Field(default_factory=IdentityDataConfig)


class ModelConfig(BaseModel):
    """``name`` plus the model factory's keyword arguments (checked against its signature)."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())
    name: str = "pixelnet"

    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class MethodConfig(BaseModel):
    """``name`` of the training method plus its options (checked against the method's ``Params``)."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())
    name: str = "pixelwise"

    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class OptimConfig(_Strict):
    """The optimiser and learning-rate schedule of every stage (see :mod:`openfas.optim`).

    ``name``: a ``torch.optim`` class, case-insensitive (``adam``, ``adamw``, ``sgd``, ``RMSprop``, ...); ``lr``,
    ``weight_decay``, ``momentum`` and ``betas`` go to it when its signature takes them, ``options`` adds any
    other keyword (e.g. ``{nesterov: true}``). ``scheduler``: ``none``, ``step`` (StepLR with ``step_size`` /
    ``gamma``), ``cosine`` (CosineAnnealingLR over the stage's epochs) or any ``torch.optim.lr_scheduler`` class
    name with ``scheduler_options``; it steps after every epoch or, with ``interval: step``, after every
    optimiser step. ``warmup_steps`` > 0 ramps the learning rate linearly over the first optimiser steps of each
    stage (torch's LinearLR, chained with the schedule).
    """

    name: str = "adam"
    lr: float = Field(1e-4, gt=0.0)
    weight_decay: float = Field(5e-5, ge=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    betas: tuple[Annotated[float, Field(ge=0.0, lt=1.0)], Annotated[float, Field(ge=0.0, lt=1.0)]] = (0.9, 0.999)
    scheduler: str = "none"
    step_size: int = Field(20, ge=1)  # epochs, for "step"
    gamma: float = Field(0.5, gt=0.0)
    options: dict[str, Any] = Field(default_factory=dict)
    scheduler_options: dict[str, Any] = Field(default_factory=dict)
    interval: Literal["epoch", "step"] = "epoch"
    warmup_steps: int = Field(0, ge=0)
    warmup_start_factor: float = Field(0.01, gt=0.0, le=1.0)

    @model_serializer(mode="wrap")
    def _omit_default_additions(self, handler: Any) -> dict[str, Any]:
        """Options added after the first release are left out while at their default, so a config that does
        not use them dumps (config.json, checkpoint metadata) exactly as before they existed."""
        out = handler(self)
        for key, default in (("options", {}), ("scheduler_options", {}), ("interval", "epoch"),
                             ("warmup_steps", 0), ("warmup_start_factor", 0.01)):
            if out.get(key) == default:
                out.pop(key, None)
        return out


class TrainConfig(_Strict):
    epochs: int = Field(10, ge=0)
    max_steps_per_epoch: int | None = Field(None, ge=1)
    log_every: int = Field(10, ge=1)
    save_every_steps: int = Field(0, ge=0)  # 0 = save at the end of each epoch only
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    grad_clip: float | None = Field(None, gt=0.0)
    channels_last: bool = False
    compile: bool = False
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
    # checkpoint selection: "last" = evaluate the last epoch; "auc" / "eer" / "hter" = evaluate the epoch of the
    # final stage that was best by that frame-level metric on ``select_split`` ("dev": data.dev_split of the
    # training domains; "test": data.test_split of the test domains — optimistic, it peeks at the target set);
    # ties keep the earlier epoch. The selected weights are saved as "best".
    select: Literal["last", "auc", "eer", "hter"] = "last"
    select_split: Literal["dev", "test"] = "dev"
    patience: int = Field(default=0, ge=0)  # with select != last: stop after this many epochs without a better one


class EvalConfig(_Strict):
    threshold: Literal["dev_eer", "dev_apcer", "eer", "fixed"] = "dev_eer"
    fixed_threshold: float = 0.5
    # for "dev_apcer": the dev threshold where the worst-species APCER <= this
    apcer_target: float = Field(0.05, gt=0.0, le=1.0)
    # dev set perfectly separated: "midpoint" of the gap between the highest attack and lowest live dev score,
    # or "policy" (the policy's value, at the gap's edge); see openfas.eval.scores
    separated_rule: Literal["midpoint", "policy"] = "midpoint"
    video_level: bool = True
    report: bool = True  # write report.html + figures at the end of training


class Config(_Strict):
    experiment: ExperimentConfig = Field(default_factory=ExperimentConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    method: MethodConfig = Field(default_factory=MethodConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _parse_value(text: str) -> Any:
    """Parse an override value as YAML (``0.7`` → float, ``[a,b]`` → list, ``null`` → None)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(tree: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key.path=value")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        node = tree
        for part in parts[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {key!r}: {part!r} is a value, not a section")
            node = nxt
        node[parts[-1]] = _parse_value(value)
    return tree


def format_validation_error(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"unknown key {loc!r}")
        else:
            lines.append(f"{loc}: {e['msg']}")
    return f"{source}: " + "; ".join(lines)


def config_from_dict(tree: dict[str, Any], source: str = "<config>") -> Config:
    try:
        cfg = Config.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None
    return cfg


PACKAGED_CONFIGS = Path(__file__).parent / "configs"


def list_packaged_configs() -> list[str]:
    """Names of the configs shipped with openfas (relative paths usable as ``load_config(name)``); files whose
    name starts with ``_`` are bases that configs inherit from (``_base_``), not configs of their own."""
    return sorted(str(p.relative_to(PACKAGED_CONFIGS)) for p in PACKAGED_CONFIGS.rglob("*.yaml")
                  if not p.name.startswith("_"))


BASE_KEY = "_base_"


def merge_trees(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """``child`` over ``base``: mappings merge key by key (recursively), anything else in ``child`` replaces."""
    out = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_trees(out[key], value)
        else:
            out[key] = value
    return out


def _find(path: str | Path, relative_to: Path | None = None) -> Path:
    p = Path(path)
    if relative_to is not None and not p.is_absolute() and (relative_to / p).exists():
        return relative_to / p
    if p.exists():
        return p
    packaged = PACKAGED_CONFIGS / p
    if not p.is_absolute() and packaged.exists():
        return packaged
    where = f" (from {relative_to})" if relative_to is not None else ""
    raise ConfigError(f"{path}: config file not found{where}")


def read_config_tree(path: str | Path, _seen: tuple[Path, ...] = (), _relative_to: Path | None = None
                     ) -> dict[str, Any]:
    """The YAML tree of a config file with its ``_base_`` chain resolved.

    ``_base_: <file>`` (or a list of files, later ones winning) names configs this one starts from; the path is
    relative to the including file's folder (else to the working directory, else a packaged config). The file's
    own keys then override the base key by key, so a protocol file holds only what differs.
    """
    p = _find(path, _relative_to)
    if p.resolve() in _seen:
        chain = " -> ".join(str(x) for x in (*_seen, p.resolve()))
        raise ConfigError(f"{p}: {BASE_KEY} inherits from itself ({chain})")
    try:
        tree = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{p}: not valid YAML: {err}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"{p}: top level must be a mapping of sections")
    bases = tree.pop(BASE_KEY, None)
    if bases is None:
        return tree
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{p}: {BASE_KEY} must be a file name or a list of file names")
    merged: dict[str, Any] = {}
    for base in bases:
        merged = merge_trees(merged, read_config_tree(base, (*_seen, p.resolve()), p.parent))
    return merge_trees(merged, tree)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config (or the defaults when ``path`` is None), resolve its ``_base_`` files (see
    :func:`read_config_tree`) and apply dotted overrides."""
    tree: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        p = _find(path)
        source = str(p)
        tree = read_config_tree(p)
    tree = apply_overrides(tree, list(overrides or []))
    return config_from_dict(tree, source)
