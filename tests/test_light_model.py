"""The light deployable model family (MiniFASNet-class), its binary training method with the Fourier auxiliary
loss, and distillation from a pixel-wise teacher checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from deploy_fixtures import tiny_checkpoint

from openfas.config import load_config
from openfas.engine.trainer import Trainer
from openfas.io.checkpoint import load_checkpoint
from openfas.losses.spectrum import fourier_spectrum_target
from openfas.methods.restore import build_model_from_checkpoint
from openfas.models import create_model, list_models


def test_registry_sizes_and_outputs() -> None:
    assert {"minifasnet", "minifasnet-s"} <= set(list_models("minifasnet*"))
    for name, limit in (("minifasnet", 500_000), ("minifasnet-s", 200_000)):
        m = create_model(name).eval()
        n = sum(p.numel() for p in m.parameters())
        assert 50_000 < n <= limit, (name, n)
        depthwise = [c for c in m.modules() if isinstance(c, torch.nn.Conv2d) and c.groups == c.in_channels > 1]
        assert len(depthwise) >= 8  # depthwise-separable blocks throughout
        x = torch.randn(3, 3, 80, 80)
        logits = m(x)
        assert logits.shape == (3, 2)
        logits2, aux = m(x, aux=True)
        assert torch.equal(logits, logits2) and aux.shape == (3, 10, 10)
    m = create_model("minifasnet", image_size=64)
    assert m(torch.randn(2, 3, 64, 64), aux=True)[1].shape == (2, 8, 8)
    with pytest.raises(ValueError, match="model.image_size"):
        m(torch.randn(1, 3, 80, 80))
    with pytest.raises(ValueError, match="multiple of 16"):
        create_model("minifasnet", image_size=90)


def test_fourier_target_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (2, 3, 16, 16)).astype(np.float64)
    x = torch.tensor((pixels / 255 - 0.4) / 0.25, dtype=torch.float32)
    got = fourier_spectrum_target(x, 4, mean=0.4, std=0.25).numpy()
    for b in range(2):
        gray = (pixels[b] / 255).mean(0)
        amp = np.log1p(np.abs(np.fft.fftshift(np.fft.fft2(gray))))
        pooled = amp.reshape(4, 4, 4, 4).mean(axis=(1, 3))  # 16 → 4: mean of each 4×4 block
        want = (pooled - pooled.min()) / (pooled.max() - pooled.min())
        np.testing.assert_allclose(got[b], want, atol=1e-5)
    black = torch.full((1, 3, 8, 8), -1.0)  # pixel value 0 with mean = std = 0.5: a zero spectrum
    assert fourier_spectrum_target(black, 2).abs().max() == 0  # flat → 0, not a division by zero


def _light_overrides(cache: Path, method: list[str]) -> list[str]:
    return [f"data.cache={cache}", "data.image_size=32", "data.map_size=8", "data.batch_size=8",
            "model.name=minifasnet-s", "model.image_size=32", "optim.lr=0.003", "train.epochs=2",
            "train.log_every=1000", "eval.report=false", *method]


def test_binary_method_trains_and_scores(tiny_cache: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = load_config(None, _light_overrides(tiny_cache, ["method.name=binary", "method.ft_weight=1.0"]))
    trainer = Trainer(cfg, run_dir=tmp_path / "run", progress=False)
    result = trainer.fit()
    assert "auc" in result["headline"]
    ckpt = tmp_path / "run" / "checkpoints" / "final.safetensors"
    model, info = build_model_from_checkpoint(ckpt)
    x = torch.randn(4, 3, 32, 32)
    score = info["method"].score(model, {"image": x})["score"]
    logits = model(x)
    np.testing.assert_allclose(score.numpy(), F.softmax(logits, 1)[:, 1].detach().numpy(), atol=1e-6)
    # one step of the loss is CE + ft_weight · MSE(aux, Fourier target), written out here
    method = info["method"]
    model.train()
    batch = {"image": x, "label": torch.tensor([0, 1, 1, 0])}
    torch.manual_seed(1)
    out = method.training_loss(model, batch, None)
    torch.manual_seed(1)
    lg, aux = model(x, aux=True)
    want = F.cross_entropy(lg, batch["label"]) + F.mse_loss(aux, fourier_spectrum_target(x, 4))
    assert out["loss"].item() == pytest.approx(want.item(), rel=1e-5)


def test_distill_from_a_pixelwise_teacher(tiny_cache: Path, tmp_path: Path,
                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    teacher_path = tiny_checkpoint(tmp_path_factory.getbasetemp(), tiny_cache)  # pixelnet, pixel-wise maps
    teacher, tinfo = build_model_from_checkpoint(teacher_path)
    thr = load_checkpoint(teacher_path)["meta"]["threshold"]
    torch.manual_seed(0)
    cfg = load_config(None, _light_overrides(tiny_cache, ["method.name=distill", f"method.teacher={teacher_path}",
                                                          "method.temperature=0.1"]))
    trainer = Trainer(cfg, run_dir=tmp_path / "run", progress=False)
    trainer.fit()
    ckpt = tmp_path / "run" / "checkpoints" / "final.safetensors"
    meta = load_checkpoint(ckpt)["meta"]
    assert meta["model"] == "minifasnet-s" and meta["method"] == "distill"
    student, info = build_model_from_checkpoint(ckpt)
    assert not any(k.startswith("teacher") for k in student.state_dict())  # the teacher is not saved
    # the loss written out: CE + BCE(p_live, σ((s_t − τ)/T)) + MSE(aux, pooled teacher map)
    method = info["method"]
    method._student_scale = None
    method.teacher(torch.device("cpu"))  # load it now: building it draws from the RNG seeded below
    x = torch.randn(4, 3, 32, 32)
    y = torch.tensor([1, 0, 1, 0])
    student.train()
    torch.manual_seed(3)
    out = method.training_loss(student, {"image": x, "label": y}, None)
    torch.manual_seed(3)
    lg, aux = student(x, aux=True)
    with torch.no_grad():
        tmap = teacher(x)  # the teacher was trained on 32×32 crops of the same cache: same input
    t_score = tmap.flatten(1).mean(1)
    soft = torch.sigmoid((t_score - thr) / 0.1)
    p = torch.softmax(lg, 1)[:, 1]
    bce = -(soft * torch.log(p) + (1 - soft) * torch.log(1 - p)).mean()
    pooled = F.avg_pool2d(tmap.unsqueeze(1), 2).squeeze(1)  # teacher map 8×8 → student aux 4×4
    want = F.cross_entropy(lg, y) + bce + F.mse_loss(aux, pooled)
    assert out["loss"].item() == pytest.approx(want.item(), rel=1e-4)
    assert tinfo["meta"]["model"] == "pixelnet"

    bad = load_config(None, _light_overrides(tiny_cache, ["method.name=distill", "method.teacher=/nope.safetensors"]))
    with pytest.raises(ValueError, match="cannot load the teacher"):
        Trainer(bad, run_dir=tmp_path / "bad", progress=False).fit()
