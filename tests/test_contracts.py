"""Contracts every component keeps; they need no editing when a config, model or method is added."""

from __future__ import annotations

import inspect

import pytest
import torch

from openfas.config import list_packaged_configs, load_config
from openfas.methods.build import build_method
from openfas.models import list_models
from openfas.models._registry import model_factory


@pytest.mark.parametrize("name", list_packaged_configs())
def test_every_packaged_config_loads_and_builds_its_method_and_model(name: str) -> None:
    cfg = load_config(name)
    method = build_method(cfg, name)
    assert method.cfg is cfg and type(method).name == cfg.method.name  # type: ignore[attr-defined]
    model = method.build_model()
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) > 0


def _tensors(out: object) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for v in out.values() for t in _tensors(v)]
    if isinstance(out, (tuple, list)):
        return [t for v in out for t in _tensors(v)]
    if hasattr(out, "__dataclass_fields__"):
        return [t for k in out.__dataclass_fields__ for t in _tensors(getattr(out, k))]
    return []


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_forwards_at_its_default_size(name: str) -> None:
    # built the way training builds it: the model's defaults plus what the default data section implies
    cfg = load_config(None, [f"model.name={name}"])
    model = build_method(cfg).build_model().eval()
    size_param = inspect.signature(model_factory(name)).parameters.get("image_size")
    size = size_param.default if size_param is not None else cfg.data.image_size
    torch.manual_seed(0)
    x = torch.rand(2, 3 * len(cfg.data.modalities), size, size)
    with torch.no_grad():
        outputs = _tensors(model(x))
    assert outputs, f"{name} returned no tensor"
    for t in outputs:
        assert t.shape[0] == 2 and torch.isfinite(t).all()


# ---------------------------------------------------------------------- one training step per method
# Methods whose options name a teacher checkpoint get the final checkpoint of this method's own run.
TEACHER_OF = {"csdn": "cosface", "distill": "pixelwise"}


def _config_name(method: str) -> str | None:
    """A packaged config of ``method``: RGB-only and synthetic-data ones first."""
    cfgs = {n: load_config(n) for n in list_packaged_configs()}
    names = [n for n, c in cfgs.items() if c.method.name == method]
    names.sort(key=lambda n: (cfgs[n].data.modalities != ["rgb"], "synth" not in n, n))
    return names[0] if names else None


@pytest.fixture(scope="module")
def pad_cache(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from conftest import build_tiny_cache

    return build_tiny_cache(tmp_path_factory.mktemp("contract") / "cache", per_group=1,
                            domains=("da", "db", "dc", "dd"), modalities=("rgb", "depth", "ir"))


@pytest.fixture(scope="module")
def one_step_runs(pad_cache, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN001, ANN201
    """``run(method)`` trains ``method`` for one step per epoch (every stage, one epoch) and returns
    ``(trainer, weights before training)``; runs are cached so teachers are trained once."""
    from openfas.engine.trainer import Trainer
    from openfas.methods import list_methods

    root = tmp_path_factory.mktemp("runs")
    done: dict[str, tuple] = {}

    def run(method: str) -> tuple:
        if method in done:
            return done[method]
        assert method in list_methods()
        name = _config_name(method)
        if name is None:  # the model a method trains is part of its packaged config
            pytest.skip(f"method {method!r} ships no packaged config (configs/) to train from")
        base = load_config(name)
        overrides = [f"method.name={method}", f"experiment.output_dir={root}", "train.epochs=1",
                     "train.max_steps_per_epoch=1", "train.device=cpu", "train.amp='off'", "train.save_every_steps=0",
                     "data.batch_size=8", "data.num_workers=0", "eval.report=false", f"data.cache={pad_cache}",
                     "data.train_domains=null", "data.test_domains=null",
                     f"data.identities.synth.cache_dir={root / 'ids'}", "data.identities.synth.identities=4",
                     "data.identities.synth.images_per_identity=2", "data.identities.synth.test_identities=2",
                     "data.identities.synth.test_images_per_identity=2", "data.identities.synth.pairs_per_identity=2",
                     "data.identities.synth.size=32"]
        # small inputs keep every run to seconds (the tiny crops are 32 px anyway)
        overrides += ["data.image_size=32", "data.map_size=8"]
        if "image_size" in base.model.kwargs():
            overrides.append("model.image_size=32")
        if "num_classes" in base.model.kwargs():
            overrides.append("model.num_classes=4")
        if method in TEACHER_OF:
            teacher, _ = run(TEACHER_OF[method])
            overrides.append(f"method.teacher={teacher.run_dir / 'checkpoints' / 'final.safetensors'}")
        cfg = load_config(name, overrides)
        trainer = Trainer(cfg, run_dir=root / method, progress=False)
        before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        trainer.fit()
        done[method] = (trainer, before)
        return done[method]

    return run


def _methods() -> list[str]:
    from openfas.methods import list_methods

    return list_methods()


@pytest.mark.parametrize("method", _methods())
def test_every_registered_method_trains_a_step_on_synthetic_data(method: str, one_step_runs) -> None:  # noqa: ANN001
    trainer, before = one_step_runs(method)
    assert (trainer.run_dir / "checkpoints" / "final.safetensors").is_file()
    losses = [h["loss"] for h in trainer.state.history if "loss" in h]
    assert losses and all(torch.isfinite(torch.tensor(losses)))
    after = trainer.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point())
