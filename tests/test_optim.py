"""Optimisers and schedules by torch class name, per-step schedules with warm-up, and exact resume with them."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from openfas.config import ConfigError, OptimConfig, load_config
from openfas.engine.trainer import Trainer
from openfas.io.checkpoint import load_checkpoint
from openfas.methods.build import check_config
from openfas.optim import build_optimizer, build_schedule, check_optim


def _opt(**kw: object) -> OptimConfig:
    return OptimConfig.model_validate(kw)


def test_optimizers_by_name_get_only_the_options_they_take() -> None:
    p = [torch.nn.Parameter(torch.zeros(3))]
    adam = build_optimizer(_opt(name="Adam", lr=0.01, betas=(0.8, 0.9)), p)
    assert type(adam) is torch.optim.Adam and adam.defaults["betas"] == (0.8, 0.9) and adam.defaults["lr"] == 0.01
    sgd = build_optimizer(_opt(name="sgd", momentum=0.5, options={"nesterov": True}), p)
    assert type(sgd) is torch.optim.SGD and sgd.defaults["momentum"] == 0.5 and sgd.defaults["nesterov"] is True
    rms = build_optimizer(_opt(name="rmsprop", options={"alpha": 0.9}), p)
    assert type(rms) is torch.optim.RMSprop and rms.defaults["alpha"] == 0.9
    with pytest.raises(ConfigError, match="optim.name: unknown 'lion'"):
        check_optim(_opt(name="lion"))
    with pytest.raises(ConfigError, match="optim.options: Adam has no option 'nesterov'"):
        check_optim(_opt(name="adam", options={"nesterov": True}))
    with pytest.raises(ConfigError, match="optim.scheduler: unknown 'warmcosine'"):
        check_optim(_opt(scheduler="warmcosine"))
    with pytest.raises(ConfigError, match="optim.scheduler_options: StepLR has no option 'steps'"):
        check_optim(_opt(scheduler="StepLR", scheduler_options={"steps": 3}))
    with pytest.raises(ConfigError, match="optim.name"):
        check_config(load_config(None, ["optim.name=lion"]))


def _lrs(o: OptimConfig, steps: int, steps_per_epoch: int = 1000, epochs: int = 1) -> list[float]:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer(o, [p])
    sched = build_schedule(o, opt, epochs)
    out = []
    for k in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.after_step()
        if (k + 1) % steps_per_epoch == 0:
            sched.after_epoch()
    return out


def test_linear_warmup_then_per_step_cosine_follow_the_formulas() -> None:
    o = _opt(name="sgd", lr=1.0, momentum=0.0, weight_decay=0.0, warmup_steps=4, warmup_start_factor=0.25)
    # LinearLR: lr_k = lr · (s + (1 − s) · min(k, N) / N)
    assert _lrs(o, 6) == pytest.approx([0.25, 0.4375, 0.625, 0.8125, 1.0, 1.0])
    o = _opt(name="sgd", lr=1.0, momentum=0.0, weight_decay=0.0, scheduler="CosineAnnealingLR",
             scheduler_options={"T_max": 8}, interval="step")
    assert _lrs(o, 9) == pytest.approx([0.5 * (1 + math.cos(math.pi * k / 8)) for k in range(9)], abs=1e-12)
    o = _opt(name="sgd", lr=1.0, momentum=0.0, weight_decay=0.0, scheduler="StepLR",
             scheduler_options={"step_size": 2, "gamma": 0.5}, interval="step")
    assert _lrs(o, 6) == pytest.approx([1, 1, 0.5, 0.5, 0.25, 0.25])
    # the short names step per epoch, as before
    o = _opt(name="sgd", lr=1.0, momentum=0.0, weight_decay=0.0, scheduler="step", step_size=1, gamma=0.1)
    assert _lrs(o, 6, steps_per_epoch=2, epochs=3) == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


def test_epoch_schedules_checkpoint_as_the_bare_torch_scheduler() -> None:
    o = _opt(scheduler="step", step_size=3)
    opt = build_optimizer(o, [torch.nn.Parameter(torch.zeros(1))])
    sched = build_schedule(o, opt, 5)
    bare = torch.optim.lr_scheduler.StepLR(torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))]), step_size=3,
                                           gamma=0.5)
    assert sched.state_dict().keys() == bare.state_dict().keys()  # runs from before this schedule resume
    assert "warmup_steps" not in load_config(None, []).to_dict()["optim"]  # config dumps unchanged by default


class _Crash(Exception):
    pass


def test_per_step_schedule_with_warmup_resumes_exactly(tiny_cache: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    overrides = [f"data.cache={tiny_cache}", "data.image_size=32", "data.map_size=8", "model.width=8",
                 "data.batch_size=8", "train.epochs=2", "train.save_every_steps=4", "eval.report=false",
                 "optim.lr=0.003", "optim.scheduler=CosineAnnealingLR", "optim.scheduler_options={T_max: 12}",
                 "optim.interval=step", "optim.warmup_steps=5"]
    cfg = load_config(None, overrides)
    Trainer(cfg, run_dir=tmp_path / "full", progress=False).fit()

    calls = {"n": 0}
    original = Trainer._check_finite

    def crash_at_step_10(self: Trainer, loss: torch.Tensor, stage: object) -> None:
        calls["n"] += 1
        if calls["n"] == 10:
            raise _Crash
        original(self, loss, stage)

    monkeypatch.setattr(Trainer, "_check_finite", crash_at_step_10)
    with pytest.raises(_Crash):
        Trainer(cfg, run_dir=tmp_path / "cut", progress=False).fit()
    monkeypatch.setattr(Trainer, "_check_finite", original)
    state = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.safetensors")
    assert state["meta"]["train_state"]["global_step"] == 8 and state["scheduler"]["steps"] == 8  # mid-epoch 2
    Trainer(cfg, resume=tmp_path / "cut", progress=False).fit()
    a = load_file(str(tmp_path / "full" / "checkpoints" / "final.safetensors"))
    b = load_file(str(tmp_path / "cut" / "checkpoints" / "final.safetensors"))
    keys = [k for k in a if k.startswith("model.")]
    assert keys and all(torch.equal(a[k], b[k]) for k in keys)
