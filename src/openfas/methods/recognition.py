"""Masked-face recognition methods: ``cosface`` (baseline) and ``csdn`` (Zhao et al., IEEE SPL 2022).

Both train on an identity folder (``data.identities``; masks synthesised on the fly, see
:mod:`openfas.recognition.data`) and are evaluated on verification pairs after training.

``cosface``: ``L = CE(s·(cos θ − m·onehot))`` on the embedding of the (masked-or-normal) input.

``csdn`` — our reconstruction from the abstract (the full text is closed access; every weight below is an
assumption, set in the config):

* sub-decision i: logits ``z_i = s·cos θ(e_i)`` of sub-embedding ``e_i`` against the shared class centres;
* ``L_cls = CosFace(e) + branch_weight · mean_i CosFace(e_i)`` — the weighted embedding and every
  sub-decision are trained to classify (``branch_weight`` assumed 0.5);
* ``L_kl = mean_x Σ_{i<j} ŵ_ij · ½[KL(p_i‖p_j) + KL(p_j‖p_i)]``, ``p_i = softmax(z_i / T)``,
  ``ŵ_ij ∝ w_i w_j`` from the concept branch (weights detached by default, so the branch cannot lower the loss
  by collapsing onto one sub-decision; ``kl_weight`` assumed 1);
* ``L_kd = mean_x [1 − cos(e(x_masked), t(x_normal))]`` against a frozen teacher ``t`` of the unmasked face
  (``kd_weight`` assumed 1); ``t`` is a loaded model (``teacher``), dlib's ResNet (``teacher=dlib``) or a
  precomputed table of the unmasked training images (``teacher_table``; no teacher cost per step);
* ``L = L_cls + kl_weight·L_kl + kd_weight·L_kd``.
* Quality: ``C(x) = exp(−D(x))`` with D the per-sample weighted divergence (activation configurable).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from openfas.config import ConfigError
from openfas.data.synth.identities import GENERATOR_VERSION, generate_identities
from openfas.io.checkpoint import CheckpointError, load_checkpoint
from openfas.losses.recognition import consistency_value, cosine_distillation_loss, weighted_bidirectional_kl
from openfas.methods.base import (
    Batch,
    Method,
    MethodParams,
    Stage,
    TrainerContext,
    register_method,
    unwrap_as,
)
from openfas.methods.restore import build_model_from_checkpoint
from openfas.models._registry import model_factory
from openfas.models.iresnet import RecognitionNet
from openfas.ops.cosface import cosface_logits
from openfas.recognition.align import FaceGeometry, default_geometry
from openfas.recognition.data import MaskedIdentityDataset, scan_identity_folder
from openfas.recognition.dlib_teacher import DlibTeacher
from openfas.recognition.embedding_table import EmbeddingTable, EmbeddingTableError
from openfas.recognition.evaluate import evaluate_pairs
from openfas.recognition.landmarks import LandmarkError
from openfas.recognition.teacher import Teacher, TeacherError, load_teacher

log = logging.getLogger(__name__)


class CosFaceParams(MethodParams):
    s: float = 32.0  # CosFace scale (FaceX-Zoo AM-Softmax default; insightface uses 64)
    m: float = 0.35  # CosFace margin (FaceX-Zoo default; insightface uses 0.4)
    # Start training from an openfas recognition checkpoint (fine-tuning a normal-face model on masked data):
    # every tensor whose name and shape match is copied; a single-decision output block initialises every
    # CSDN dropout block. Applied when a run starts (a resumed run keeps its own weights).
    init_from: str | None = None
    # precomputed teacher embeddings of the unmasked training images (openfas.recognition.embedding_table,
    # safetensors). csdn distils from them (each item reads its row instead of running the teacher); both
    # methods can start the class centres from them (init_centres)
    teacher_table: str | None = None
    # "teacher_table": start the CosFace class centres at each identity's mean (L2-normalised) teacher embedding
    # from teacher_table, for a student whose embedding space IS the teacher's at the start (models dlib-csdn /
    # dlib-face initialised from dlib's weights); random centres would send large, random classification
    # gradients into the pretrained trunk in the first steps
    init_centres: Literal["random", "teacher_table"] = "random"


class CSDNParams(CosFaceParams):
    # frozen teacher (see openfas.recognition.teacher) or "dlib" (dlib's ResNet, slow: prefer teacher_table);
    # needed when kd_weight > 0 and no teacher_table is given
    teacher: str | None = None
    teacher_input_size: int = 112  # input side of ONNX teachers
    kd_weight: float = 1.0  # assumed
    kl_weight: float = 1.0  # assumed
    branch_weight: float = 0.5  # assumed
    temperature: float = 1.0  # softmax temperature of the sub-decisions (assumed)
    detach_kl_weights: bool = True
    consistency_activation: Literal["exp", "tanh"] = "exp"


def init_centres_from_table(model: nn.Module, table_path: str | Path, train_root: str | Path) -> None:
    """CosFace class centres ← the normalised mean of each training identity's L2-normalised table rows."""
    classes, samples = scan_identity_folder(train_root)
    table = EmbeddingTable.load(table_path)
    rows = F.normalize(table.for_files(rel for rel, _ in samples).float(), dim=1)  # checked against the list
    head = unwrap_as(model, RecognitionNet, "csdn").head
    if tuple(head.weight.shape) != (len(classes), rows.shape[1]):
        raise ConfigError(f"method.init_centres=teacher_table: {table_path} gives {len(classes)} × {rows.shape[1]} "
                          f"centres, the model's head is {tuple(head.weight.shape)}")
    labels = torch.tensor([y for _, y in samples])
    centres = torch.zeros(len(classes), rows.shape[1]).index_add_(0, labels, rows)
    with torch.no_grad():
        head.weight.copy_(F.normalize(centres, dim=1).to(head.weight.dtype))
    log.info("init_centres: %d class centres from %s", len(classes), table_path)


def init_from_checkpoint(model: nn.Module, path: str | Path) -> list[str]:
    """Copy matching tensors of an openfas checkpoint into ``model``; returns the names copied."""
    state = load_checkpoint(Path(path).expanduser())["model"]
    own = model.state_dict()
    n_blocks = sum(1 for k in own if k.startswith("blocks.") and k.endswith(".1.weight"))
    source: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        source[k] = v
        if k.startswith("blocks.0.") and "blocks.1.1.weight" not in state:  # single block → every block
            for i in range(1, n_blocks):
                source[f"blocks.{i}." + k[len("blocks.0."):]] = v
    copied = [k for k, v in source.items() if k in own and own[k].shape == v.shape]
    if not any(source[k].dim() > 0 for k in copied):  # BatchNorm step counters alone do not count
        raise CheckpointError(f"{path}: init_from: no tensor matches the model (names or shapes differ)")
    model.load_state_dict({k: source[k] for k in copied}, strict=False)
    skipped = sorted(set(own) - set(copied))
    log.info("init_from %s: %d tensors copied, %d kept from initialisation%s", path, len(copied), len(skipped),
             f" (e.g. {skipped[:4]})" if skipped else "")
    return copied



class IdentityPaths(NamedTuple):
    """Where a recognition run's data lies: the training identity folders, the verification pairs file and the
    folder its image paths are relative to (no pairs file: no verification)."""

    train: Path
    pairs: Path | None
    pairs_root: Path | None


@register_method("cosface")
class CosFaceMethod(Method):
    """Single-decision face recognition with the CosFace loss (the baseline on the same backbone)."""

    Params = CosFaceParams
    params: CosFaceParams

    # ------------------------------------------------------------------ model / data
    def model_kwargs(self) -> dict[str, Any]:
        kwargs = self.cfg.model.kwargs()
        accepted = inspect.signature(model_factory(self.cfg.model.name)).parameters
        if "num_classes" not in accepted or "image_size" not in accepted:
            raise ConfigError(f"method {self.name!r} needs a recognition model (iresnet or csdn), "
                              f"got model {self.cfg.model.name!r}")
        size = self.cfg.data.image_size
        if kwargs.get("image_size", size) != size:
            raise ConfigError(f"model.image_size={kwargs['image_size']} does not match data.image_size={size}")
        kwargs["image_size"] = size
        return kwargs

    def identity_paths(self, generate: bool = True) -> IdentityPaths:
        """Training root, pairs file and pairs root of ``data.identities`` (generating synthetic data)."""
        d = self.cfg.data.identities
        if d.root != "synthetic":
            pairs = Path(d.pairs).expanduser() if d.pairs else None
            return IdentityPaths(Path(d.root).expanduser(), pairs,
                                 Path(d.pairs_root).expanduser() if d.pairs_root else None)
        s = d.synth
        params = s.model_dump(mode="json")
        params.pop("cache_dir")
        params.update(mask_types=list(d.mask_types), generator_version=GENERATOR_VERSION)
        digest = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
        root = Path(s.cache_dir).expanduser() / f"ids-{digest}"
        if generate:
            generate_identities(root, identities=s.identities, images_per_identity=s.images_per_identity,
                                test_identities=s.test_identities, test_images_per_identity=s.test_images_per_identity,
                                size=s.size, degrade_prob=s.degrade_prob, mask_types=tuple(d.mask_types),
                                seed=s.seed, pairs_per_identity=s.pairs_per_identity)
        pairs = Path(d.pairs).expanduser() if d.pairs else root / "test" / "pairs.txt"
        return IdentityPaths(root / "train", pairs, Path(d.pairs_root).expanduser() if d.pairs_root else pairs.parent)

    def build_model(self) -> nn.Module:
        model = super().build_model()
        if self.params.init_from and getattr(self, "_training", False):
            init_from_checkpoint(model, self.params.init_from)
        if self.params.init_centres == "teacher_table" and getattr(self, "_training", False):
            if not self.params.teacher_table:
                raise ConfigError("method.init_centres=teacher_table needs method.teacher_table")
            init_centres_from_table(model, self.params.teacher_table, self.paths.train)
        return model

    def prepare_data(self, trainer: TrainerContext) -> None:
        self._training = True  # build_model() now serves a training run: apply init_from

        if trainer.dist.is_main:
            self.paths = self.identity_paths(generate=True)
        trainer.barrier()
        if not trainer.dist.is_main:
            self.paths = self.identity_paths(generate=False)
        trainer.crop_info = {"source": "identity-folder", "crop_size": self.cfg.data.image_size,
                             "face_geometry": self.face_geometry().to_meta()}

    def face_geometry(self) -> FaceGeometry:
        """The chips the training images are (``data.identities.face_geometry``; ``auto``: by model name)."""
        kind, size = self.cfg.data.identities.face_geometry, self.cfg.data.image_size
        return default_geometry(self.cfg.model.name, size) if kind == "auto" else FaceGeometry(kind, size)

    def train_dataset(self, trainer: TrainerContext) -> Any:
        d, data = self.cfg.data.identities, self.cfg.data
        ds = MaskedIdentityDataset(self.paths.train, image_size=data.image_size, mean=data.mean, std=data.std,
                                   mask_prob=d.mask_prob, mask_types=tuple(d.mask_types), masked_root=d.masked_root,
                                   landmarks=d.landmarks, train=data.augment not in (False, "none"),
                                   seed=self.cfg.experiment.seed)
        n = self.model_kwargs().get("num_classes")
        if n != ds.num_classes:
            raise ConfigError(f"{self.paths.train}: {ds.num_classes} identities, but model.num_classes={n}; "
                              f"set model.num_classes={ds.num_classes}")
        return ds

    def dev_metrics(self, trainer: TrainerContext) -> dict[str, float]:
        return {}

    def evaluate(self, trainer: TrainerContext) -> dict[str, Any]:
        """Verification on ``data.identities.pairs`` (if any); writes metrics.json and the final checkpoint."""
        result: dict[str, Any] = {"headline": {}}
        pairs = self.paths.pairs
        if trainer.dist.is_main:
            if pairs is not None:
                d = self.cfg.data.identities
                result = evaluate_pairs(trainer.model, self, pairs, self.paths.pairs_root,
                                        self.cfg.data.image_size, self.cfg.data.mean, self.cfg.data.std,
                                        trainer.device, self.cfg.data.batch_size, d.pairs_format, d.pairs_ext,
                                        d.flip, out_dir=trainer.run_dir)
            else:
                (trainer.run_dir / "metrics.json").write_text(json.dumps(result, indent=2))
            trainer.save("final")
        return result

    # ------------------------------------------------------------------ losses / inference
    def training_loss(self, model: nn.Module, batch: Batch, stage: Stage) -> dict[str, torch.Tensor]:
        out = model(batch["image"])
        loss = F.cross_entropy(cosface_logits(out.cosine, batch["label"], self.params.s, self.params.m),
                               batch["label"])
        return {"loss": loss, "cls": loss.detach()}

    @torch.no_grad()
    def embed(self, model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(embeddings N×D, quality N: NaN for a single-decision model, sub-decision weights N×n)."""
        out = model(x)
        return out.embedding.float(), torch.full((x.shape[0],), float("nan"), device=x.device), out.weights.float()

    @torch.no_grad()
    def score(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        emb, q, _ = self.embed(model, batch["image"])
        return {"score": q, "embedding": emb}


@register_method("csdn")
class CSDNMethod(CosFaceMethod):
    """Consistent Sub-Decision Network training (see the module docstring for the reconstructed loss)."""

    Params = CSDNParams
    params: CSDNParams

    def __init__(self, cfg: Any, params: CSDNParams) -> None:
        super().__init__(cfg, params)
        self._teacher: Any = None
        self._kd_targets: torch.Tensor | None = None  # teacher_table rows in dataset order

    def teacher(self, device: torch.device) -> Any:
        if self._teacher is None:
            if not self.params.teacher:
                raise ConfigError("method csdn: kd_weight > 0 needs method.teacher=<face-recognition checkpoint> "
                                  "(an openfas .safetensors, an .onnx graph or 'dlib') or "
                                  "method.teacher_table=<embeddings .safetensors>; or set kd_weight=0")
            t: Teacher | DlibTeacher
            if self.params.teacher == "dlib":
                try:
                    t = DlibTeacher(self.cfg.data.mean, self.cfg.data.std)
                except LandmarkError as err:
                    raise TeacherError(f"method.teacher=dlib: {err}") from None
            else:
                t = load_teacher(self.params.teacher, self.params.teacher_input_size, self.cfg.data.mean,
                                 self.cfg.data.std, build_model=build_model_from_checkpoint)
            dim = self.cfg.model.kwargs().get("embedding_dim", 512)
            if t.embedding_dim != dim:
                raise TeacherError(f"{t.path}: the teacher gives {t.embedding_dim}-d embeddings but the student "
                                   f"has model.embedding_dim={dim}; they must match for distillation")
            self._teacher = t
        return self._teacher.to(device)

    def train_dataset(self, trainer: TrainerContext) -> Any:
        ds = super().train_dataset(trainer)
        if self.params.teacher_table and self.params.kd_weight > 0:
            table = EmbeddingTable.load(self.params.teacher_table)
            dim = self.cfg.model.kwargs().get("embedding_dim", 512)
            if table.dim != dim:
                raise EmbeddingTableError(f"{table.path}: the table holds {table.dim}-d teacher embeddings but the "
                                          f"student has model.embedding_dim={dim}; they must match")
            self._kd_targets = table.for_files(rel for rel, _ in ds.samples)  # checked against the training list
        return ds

    def on_stage_start(self, trainer: TrainerContext, stage: Stage) -> None:
        if self.params.kd_weight > 0 and self._kd_targets is None:
            self.teacher(trainer.device)  # fail early, before the first step

    def sub_decisions(self, out: Any) -> torch.Tensor:
        return self.params.s * out.branch_cosine

    def divergence(self, out: Any, reduce: bool) -> torch.Tensor:
        w = out.weights.detach() if self.params.detach_kl_weights else out.weights
        return weighted_bidirectional_kl(self.sub_decisions(out), w, self.params.temperature, reduce=reduce)

    def training_loss(self, model: nn.Module, batch: Batch, stage: Stage) -> dict[str, torch.Tensor]:
        p = self.params
        if unwrap_as(model, RecognitionNet, "csdn").num_branches < 2:
            raise ConfigError("method csdn needs model csdn (several sub-decisions)")
        y = batch["label"]
        out = model(batch["image"])
        cls = F.cross_entropy(cosface_logits(out.cosine, y, p.s, p.m), y)
        n = out.branch_cosine.shape[1]
        branch = out.branch_cosine.reshape(-1, out.branch_cosine.shape[-1])
        branch_cls = F.cross_entropy(cosface_logits(branch, y.repeat_interleave(n), p.s, p.m),
                                     y.repeat_interleave(n))
        kl = self.divergence(out, reduce=True)
        loss = cls + p.branch_weight * branch_cls + p.kl_weight * kl
        terms = {"cls": cls.detach(), "branch_cls": branch_cls.detach(), "kl": kl.detach()}
        if p.kd_weight > 0:
            if self._kd_targets is not None:  # precomputed: the unmasked image's row (unflipped; see the docs)
                target = self._kd_targets[batch["index"].long().cpu()].to(out.embedding.device)
            else:
                target = self.teacher(batch["image_normal"].device)(batch["image_normal"])
            kd = cosine_distillation_loss(out.embedding, target)
            loss = loss + p.kd_weight * kd
            terms["kd"] = kd.detach()
        return {"loss": loss, **terms}

    @torch.no_grad()
    def embed(self, model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = model(x)
        q = consistency_value(self.divergence(out, reduce=False), self.params.consistency_activation)
        return out.embedding.float(), q, out.weights.float()
