"""Trainer behaviour: exact resume after a hard kill, NaN guard, DDP on 2 CPU processes, checkpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import run_torchrun
from safetensors.torch import load_file

from openfas.config import load_config
from openfas.engine.trainer import Trainer, TrainingDiverged
from openfas.io.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from openfas.methods.base import Method, register_method

TINY = ["data.image_size=32", "data.map_size=8", "model.width=8", "data.batch_size=4", "optim.lr=0.003",
        "train.log_every=1", "eval.report=false"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


def _train_cmd(cache: Path, run_dir: Path, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "openfas.cli", "train", f"data.cache={cache}", *TINY, *extra,
            "--run-dir", str(run_dir), "--no-progress"]


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(str(run_dir / "checkpoints" / "final.safetensors")).items()
            if k.startswith("model.")}


def _logged_steps(run_dir: Path) -> int:
    log = run_dir / "metrics.jsonl"
    if not log.exists():
        return 0
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines() if line.strip()]
    return max(steps, default=0)


def test_resume_after_kill_matches_uninterrupted_run(tiny_cache: Path, tmp_path: Path) -> None:
    extra = ["train.epochs=3", "train.save_every_steps=3", "optim.scheduler=step", "optim.step_size=1"]
    full = tmp_path / "full"
    subprocess.run(_train_cmd(tiny_cache, full, extra), check=True, env=_env(), capture_output=True)
    total_steps = _logged_steps(full)
    assert total_steps == 3 * (48 // 4)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(tiny_cache, killed, extra), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while _logged_steps(killed) < 14 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "checkpoints" / "final.safetensors").exists(), "the run finished before the kill"
    saved = load_checkpoint(killed / "checkpoints" / "last.safetensors")["meta"]["train_state"]
    assert 0 < saved["global_step"] < total_steps

    subprocess.run(_train_cmd(tiny_cache, killed, extra)[:-3] + ["--resume", str(killed), "--no-progress"],
                   check=True, env=_env(), capture_output=True)
    a, b = _weights(full), _weights(killed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"


def test_resume_with_different_config_is_refused(tiny_cache: Path, tmp_path: Path) -> None:
    cfg = load_config(None, [f"data.cache={tiny_cache}", *TINY, "train.epochs=1"])
    Trainer(cfg, run_dir=tmp_path / "r", progress=False).fit()
    other = load_config(None, [f"data.cache={tiny_cache}", *TINY, "train.epochs=1", "optim.lr=0.1"])
    with pytest.raises(Exception, match=r"optim\.lr"):
        Trainer(other, resume=tmp_path / "r", progress=False)


class _NaNParams(Method.Params):  # type: ignore[misc,valid-type]
    nan_at_step: int = 5


@register_method("test-nan-after")
class _NaNMethod(Method):
    """Pixel loss that turns NaN at a chosen step (to test the divergence guard)."""

    Params = _NaNParams
    calls = 0

    def training_loss(self, model, batch, stage):  # noqa: ANN001, ANN201
        type(self).calls += 1
        pred = model(batch["image"])
        loss = ((pred - batch["target"]) ** 2).mean()
        if type(self).calls >= self.params.nan_at_step:
            loss = loss * float("nan")
        return {"loss": loss}

    @torch.no_grad()
    def score(self, model, batch):  # noqa: ANN001, ANN201
        return {"score": model(batch["image"]).flatten(1).mean(1)}


def test_nan_loss_stops_with_clear_message_and_keeps_last_checkpoint(tiny_cache: Path, tmp_path: Path) -> None:
    _NaNMethod.calls = 0
    cfg = load_config(None, [f"data.cache={tiny_cache}", *TINY, "train.epochs=2", "train.save_every_steps=2",
                             "method.name=test-nan-after", "method.nan_at_step=6"])
    trainer = Trainer(cfg, run_dir=tmp_path / "nan", progress=False)
    with pytest.raises(TrainingDiverged, match=r"non-finite loss .*global step 6\).*last good checkpoint"):
        trainer.fit()
    ckpt = load_checkpoint(tmp_path / "nan" / "checkpoints" / "last.safetensors")
    assert ckpt["meta"]["train_state"]["global_step"] == 4
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())


DDP_SCRIPT = """
import os, sys, torch
from safetensors.torch import save_file
from openfas.config import load_config
from openfas.engine.trainer import Trainer
cfg = load_config(None, sys.argv[2:])
t = Trainer(cfg, run_dir=sys.argv[1], progress=False)
t.fit()
rank = int(os.environ["RANK"])
save_file({k: v.contiguous() for k, v in t.model.state_dict().items()}, f"{sys.argv[1]}/rank{rank}.safetensors")
"""


@pytest.mark.slow
def test_ddp_two_cpu_processes_end_with_identical_weights(tiny_cache: Path, tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    run_torchrun(DDP_SCRIPT, tmp_path, [str(run), f"data.cache={tiny_cache}", *TINY, "train.epochs=2"])
    r0, r1 = load_file(str(run / "rank0.safetensors")), load_file(str(run / "rank1.safetensors"))
    assert r0.keys() == r1.keys()
    for k in r0:
        assert torch.equal(r0[k], r1[k]), f"{k} differs between ranks"
    # training happened: 2 epochs × (48 / 2 ranks / batch 4) = 12 optimizer steps logged by rank 0 only
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()
             if json.loads(x)["phase"] == "train"]
    assert max(steps) == 12


def test_checkpoint_roundtrip_atomic_and_tamper_detection(tmp_path: Path) -> None:
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(3, 4)).sum().backward()
    opt.step()
    path = save_checkpoint(tmp_path / "c.safetensors", model_state=model.state_dict(), meta={"x": 1},
                           optimizer_state=opt.state_dict())
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]  # no temporary file left behind
    ck = load_checkpoint(path)
    assert torch.equal(ck["model"]["weight"], model.weight.detach())
    opt2 = torch.optim.Adam(model.parameters())
    opt2.load_state_dict(ck["optimizer"])
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    # truncated file
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(path.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        load_checkpoint(bad)
    # a plain safetensors file without openfas metadata
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(CheckpointError, match="not an openfas checkpoint"):
        load_checkpoint(tmp_path / "plain.safetensors")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_checkpoint_detects_altered_tensor_bytes(tmp_path: Path) -> None:
    model = torch.nn.Linear(8, 4)
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(2, 8)).sum().backward()
    opt.step()  # the optimizer state holds 0-d "step" tensors too
    path = save_checkpoint(tmp_path / "c.safetensors", model_state=model.state_dict(), meta={},
                           optimizer_state=opt.state_dict())
    load_checkpoint(path)
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0x01  # one bit of the last tensor's data, header untouched
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(path)
