"""Meta-learning methods under DDP (torchrun, 2 CPU processes, gloo).

RFMetaFAS and ANRL cannot use the DDP wrapper (their inner step calls modules with substituted weights), so the
engine averages their gradients by hand (``ddp_wrap = False`` → :func:`openfas.engine.distributed.average_gradients`).
Checked against independent truth:

* both ranks start from the same weights and end with the same weights (parameters and buffers);
* the first optimizer step equals ``θ − lr · ½ (g_A + g_B)``, where g_A, g_B are the meta-gradients of the
  two ranks' batches recomputed here in ONE process from the recorded batches and random-generator states
  (so the meta split of each rank is reproduced). BatchNorm uses per-batch statistics in train mode; since
  each rank normalises its own batch, the per-rank gradient is exactly the single-process gradient of that
  batch, and the comparison is exact up to float rounding (it would NOT equal the gradient of the
  concatenated batch A∪B, which is not what is claimed);
* the run writes test scores and metrics.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import build_tiny_cache, run_torchrun
from safetensors.torch import load_file

from openfas.config import load_config
from openfas.methods import get_method

LR = 0.05

SCRIPT = """
import os, sys, torch
from safetensors.torch import save_file
from openfas.config import load_config
from openfas.engine.trainer import Trainer

out = sys.argv[1]
torch.set_num_threads(1)
t = Trainer(load_config(None, sys.argv[2:]), run_dir=out, progress=False)
rank = int(os.environ["RANK"])
orig, calls = t.method.training_loss, []

def dump(name):
    state = {k: v.detach().clone().contiguous() for k, v in t.model.state_dict().items()}
    save_file(state, f"{out}/{name}_rank{rank}.safetensors")

def recording(model, batch, stage):
    if len(calls) < 2:
        dump(f"before_step{len(calls)}")
    if not calls:
        torch.save({"batch": {k: v.cpu() for k, v in batch.items()}, "rng": torch.get_rng_state()},
                   f"{out}/batch_rank{rank}.pt")
    calls.append(1)
    return orig(model, batch, stage)

t.method.training_loss = recording
t.fit()
dump("final")
"""


def _overrides(cache: Path, name: str) -> list[str]:
    return [f"data.cache={cache}", "data.image_size=32", "data.map_size=32", "data.batch_size=6",
            f"model.name={name}", f"method.name={name}", "data.train_domains=[da,db,dc]", "data.test_domains=[da]",
            "train.epochs=1", "train.max_steps_per_epoch=2", "train.log_every=1", "eval.report=false",
            "optim.name=sgd", f"optim.lr={LR}", "optim.momentum=0", "optim.weight_decay=0"]


@pytest.fixture(scope="module")
def cache3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_cache(tmp_path_factory.mktemp("meta-ddp") / "cache", domains=("da", "db", "dc"), per_group=2)


def _reference_grads(name: str, cfg_over: list[str], state: dict[str, torch.Tensor],
                     rec: dict[str, object]) -> dict[str, torch.Tensor]:
    """The meta-gradient of one recorded batch, computed in this (single) process."""
    cfg = load_config(None, cfg_over)
    cls = get_method(name)
    method = cls(cfg, cls.Params.model_validate(cfg.method.kwargs()))
    model = method.build_model()
    model.load_state_dict(state)
    model.train()
    stage = method.stages()[0]
    method.on_epoch_start(stage, 0, resumed_mid_epoch=False)
    torch.set_rng_state(rec["rng"])  # type: ignore[arg-type]
    loss = method.training_loss(model, rec["batch"], stage)["loss"]  # type: ignore[arg-type]
    loss.backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["rfmeta", "anrl"])
def test_meta_method_ddp_matches_single_process_gradient_average(name: str, cache3: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    over = _overrides(cache3, name)
    run_torchrun(SCRIPT, tmp_path, [str(run), *over])

    def dump(name_: str, rank: int) -> dict[str, torch.Tensor]:
        return load_file(str(run / f"{name_}_rank{rank}.safetensors"))

    # identical weights on both ranks at the start and at the end (parameters and buffers)
    for stem in ("before_step0", "final"):
        a, b = dump(stem, 0), dump(stem, 1)
        assert a.keys() == b.keys()
        differ = [k for k in a if not torch.equal(a[k], b[k])]
        assert not differ, f"{stem}: {len(differ)} tensors differ between ranks, e.g. {differ[:3]}"

    # the two ranks trained on different batches
    recs = [torch.load(run / f"batch_rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert not torch.equal(recs[0]["batch"]["image"], recs[1]["batch"]["image"])

    # first update = −lr · mean of the two single-process meta-gradients
    init = dump("before_step0", 0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as on the ranks: same reduction order in the convolutions
    try:
        grads = [_reference_grads(name, over, init, rec) for rec in recs]
    finally:
        torch.set_num_threads(threads)
    after = dump("before_step1", 0)
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10

    def update_error(k: str, g: torch.Tensor) -> float:
        """max |observed update + lr·g| in units of (1e-3 · the largest observed update of the tensor + 16 float32
        ulps of its largest weight): < 1 means equal up to rounding. Conv biases in front of a BatchNorm have a
        zero true gradient; their observed "update" is pure rounding of the weight, hence the ulp term."""
        upd = (after[k] - init[k]).double()
        tol = 1e-3 * upd.abs().max() + 16 * 2.0**-23 * init[k].double().abs().max()
        return float((upd + LR * g.double()).abs().max() / tol.clamp_min(1e-30))

    errors = {k: update_error(k, 0.5 * (grads[0][k] + grads[1][k])) for k in grads[0]}
    worst = max(errors, key=errors.__getitem__)
    assert errors[worst] < 1.0, f"{worst}: update differs from −lr·mean(g_A, g_B) ({errors[worst]:.2f} × tolerance)"
    # the check tells averaging from using either rank's gradient alone: those miss by far more
    for r in (0, 1):
        alone = max(update_error(k, grads[r][k]) for k in grads[0])
        assert alone > 20, f"rank {r}'s gradient alone gives nearly the same update ({alone:.2f} × tolerance)"
    print(f"{name}: worst error {errors[worst]:.3f} × tol ({worst}); one rank alone: "
          f"{min(max(update_error(k, grads[r][k]) for k in grads[0]) for r in (0, 1)):.1f} × tol")

    # the run produced scores and metrics for the held-out domain (da test split: 3 attacks × 2 videos × 2 frames)
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= metrics["headline"]["auc"] <= 1.0
    assert len((run / "scores_test.csv").read_text().splitlines()) == 1 + 12
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()
             if json.loads(x)["phase"] == "train"]
    assert max(steps) == 2
