"""LDCNet (Huang et al., BMVC 2022): the LDC operator against its formula evaluated directly, the networks, the
batch-hard triplet loss against a brute-force one, Grad-CAM against a hand computation, the loss, and the two-stage
method through the Trainer (CAM cache, resume inside stage 2, folded export)."""

from __future__ import annotations

import copy
import importlib.util
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from openfas.config import load_config
from openfas.eval.cam import CamCacheError, cam_to_target, grad_cam, load_cam_cache, save_cam_cache
from openfas.losses import batch_hard_triplet_loss
from openfas.methods import get_method
from openfas.methods.base import Stage
from openfas.models import create_model
from openfas.models.ldcnet import PretrainedWeightsError
from openfas.ops import LDConv2d, fuse_model, ldc_kernel

torch.set_num_threads(1)
TOL = dict(rtol=0, atol=1e-10)


# ------------------------------------------------------------------ LDC operator
def ldc_direct(x: torch.Tensor, w: torch.Tensor, m: torch.Tensor, theta: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """y(p0) = Σ_n w'(p_n)·x(p0 + p_n), with w'[o,i,u,v] = w[o,i,u,v]·(1 − θ·m[o,i]·c[u,v]·Σ_{u',v'} w[o,i,u',v'])
    written out per tap and per window position (3×3, zero padding 1): no conv2d, no folding helper."""
    cout, cin = w.shape[:2]
    xp = F.pad(x, (1, 1, 1, 1))
    h, wd = x.shape[-2:]
    ho, wo = (h - 1) // stride + 1, (wd - 1) // stride + 1
    out = torch.zeros(x.shape[0], cout, ho, wo, dtype=x.dtype)
    for u in range(3):
        for v in range(3):
            if (u, v) == (1, 1):
                tap = torch.stack([torch.stack([w[o, i, 1, 1] * (1 - theta[0] * m[o, i] * w[o, i].sum())
                                                for i in range(cin)]) for o in range(cout)])
            else:
                tap = w[:, :, u, v]
            nb = xp[:, :, u:u + stride * (ho - 1) + 1:stride, v:v + stride * (wo - 1) + 1:stride]
            out = out + torch.einsum("oc,bchw->bohw", tap, nb)
    return out


def _random_ldc(cin: int = 3, cout: int = 4, stride: int = 1, seed: int = 0) -> LDConv2d:
    torch.manual_seed(seed)
    conv = LDConv2d(cin, cout, 3, stride=stride, padding=1).double()
    with torch.no_grad():
        conv.learnable_mask.copy_(torch.rand_like(conv.learnable_mask) * 2 - 0.5)
        conv.theta.fill_(0.37)
    return conv


@pytest.mark.parametrize("stride,size", [(1, (7, 6)), (2, (9, 8))])
def test_ldc_matches_formula_evaluated_directly(stride: int, size: tuple[int, int]) -> None:
    conv = _random_ldc(stride=stride)
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    ref = ldc_direct(x, conv.weight, conv.learnable_mask, conv.theta, stride)
    assert torch.allclose(conv(x), ref, **TOL)


def test_ldc_initial_values_and_hand_computed_centre_tap() -> None:
    conv = LDConv2d(2, 3)
    assert torch.equal(conv.learnable_mask, torch.ones(3, 2)) and conv.theta.item() == 0.5
    w = torch.arange(9, dtype=torch.float64).reshape(1, 1, 3, 3)  # Σw = 36, centre 4
    k = ldc_kernel(w, torch.ones(1, 1, dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64))
    expected = w.clone()
    expected[0, 0, 1, 1] = 4 * (1 - 0.5 * 36)  # = −68 (multiplicative, unlike CDC's 4 − 0.5·36)
    assert torch.equal(k, expected)
    # θ = 0 or m = 0 is a plain convolution
    assert torch.equal(ldc_kernel(w, torch.zeros(1, 1, dtype=torch.float64), torch.tensor([0.5])), w)
    with pytest.raises(ValueError, match="odd kernel"):
        LDConv2d(2, 3, kernel_size=2)


def test_ldc_gradients_match_direct_formulation() -> None:
    conv = _random_ldc(stride=2, seed=1)
    x = torch.randn(2, 3, 7, 7, dtype=torch.float64)
    g = torch.randn(2, 4, 4, 4, dtype=torch.float64)
    params = [conv.weight, conv.learnable_mask, conv.theta]
    ours = torch.autograd.grad((conv(x) * g).sum(), params)
    ref = torch.autograd.grad((ldc_direct(x, *params, stride=2) * g).sum(), params)
    for a, b in zip(ours, ref, strict=True):
        assert torch.allclose(a, b, **TOL)
    # θ by hand: ∂y/∂θ only through the centre taps, ∂w'_c/∂θ = −w_c·m·Σw  ⇒  dL/dθ = Σ g·conv(x, δ_c·(−w_c m Σw))
    dk = torch.zeros_like(conv.weight)
    dk[:, :, 1, 1] = -conv.weight[:, :, 1, 1] * conv.learnable_mask * conv.weight.sum(dim=(2, 3))
    d_theta = (F.conv2d(x, dk, stride=2, padding=1) * g).sum()
    assert ours[2].item() == pytest.approx(d_theta.item(), rel=1e-10)


def test_ldc_fuse_gives_plain_conv_and_fuse_model_folds_ldc_and_bn() -> None:
    conv = _random_ldc(seed=2)
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    fused = conv.fuse()
    assert type(fused) is nn.Conv2d
    assert torch.allclose(fused(x), conv(x), **TOL)
    net = nn.Sequential(_random_ldc(seed=3), nn.BatchNorm2d(4).double(), nn.ReLU()).eval()
    net[1].running_mean.uniform_(-1, 1)
    net[1].running_var.uniform_(0.5, 2)
    folded = fuse_model(net)
    assert not any(isinstance(m, (LDConv2d, nn.BatchNorm2d)) for m in folded.modules())
    assert torch.allclose(folded(x), net(x), atol=1e-10)


# ------------------------------------------------------------------ networks
def test_ldcnet_shapes_feature_scaling_and_classifier_norm() -> None:
    torch.manual_seed(0)
    model = create_model("ldcnet").eval()
    resnet_convs = sum(p.numel() for n, p in model.backbone.named_parameters()
                       if n.endswith("weight") and p.dim() == 4)
    assert resnet_convs == 11_166_912  # torchvision ResNet-18 conv weights (11 689 512 − fc 513 000 − BN 9 600)
    n_ldc = sum(isinstance(m, LDConv2d) for m in model.modules())
    assert n_ldc == 16 + 2 * 3  # 16 ResNet-18 3×3 convs + 3 per estimator
    x = torch.randn(2, 3, 64, 64)
    raw: dict[str, torch.Tensor] = {}
    model.backbone.bottleneck.register_forward_hook(lambda _m, _i, o: raw.__setitem__("f", o))
    out = model(x)
    assert out["logits"].shape == (2, 2) and out["feature"].shape == (2, 512)
    assert out["live_map"].shape == (2, 32, 32) and out["spoof_map"].shape == (2, 32, 32)
    assert (out["live_map"] >= 0).all()
    # f / (√‖f‖ · √2)  ⇒  ‖out‖ = √‖f‖ / √2
    assert torch.allclose(out["feature"].norm(dim=1), raw["f"].norm(dim=1).sqrt() / math.sqrt(2), rtol=1e-5)
    # official l2_norm(weight, axis=0): every column of the 2×512 weight has unit norm
    w = model.classifier.normalized_weight()
    assert torch.allclose(w.norm(dim=0), torch.ones(512), atol=1e-6)
    assert torch.allclose(out["logits"], out["feature"] @ w.T + model.classifier.fc.bias, atol=1e-6)
    rows = create_model("ldcnet", classifier_norm_axis=1).classifier.normalized_weight()
    assert torch.allclose(rows.norm(dim=1), torch.ones(2), atol=1e-6)
    assert abs(model.backbone.bottleneck.fc.bias.mean().item() - 0.1) < 1e-7


@pytest.mark.parametrize("size_in", [64, 32, 16, 8, 4, 2, 1, 12, 48, 7])
def test_pool_to_equals_adaptive_average_pooling(size_in: int) -> None:
    from openfas.models.ldcnet import pool_to

    x = torch.randn(2, 3, size_in, size_in, dtype=torch.float64)
    assert torch.allclose(pool_to(x, 32), F.adaptive_avg_pool2d(x, 32), **TOL)


def _torchvision_layout(model: nn.Module) -> dict[str, torch.Tensor]:
    """A state dict as torchvision's resnet18() writes it (our FE keys minus LDC masks/θ/bottleneck, plus fc)."""
    torch.manual_seed(7)
    sd = {k: torch.randn_like(v.float()) if v.is_floating_point() else v.clone()
          for k, v in model.backbone.state_dict().items()
          if not k.startswith("bottleneck.") and not k.endswith((".learnable_mask", ".theta"))}
    sd["fc.weight"], sd["fc.bias"] = torch.randn(1000, 512), torch.randn(1000)
    return sd


def test_pretrained_weights_load_from_safetensors_and_torch_files_and_errors_name_the_file(tmp_path: Path) -> None:
    sd = _torchvision_layout(create_model("ldcnet"))
    st, pth = tmp_path / "r18.safetensors", tmp_path / "r18.pth"
    save_file(sd, str(st))
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, pth)
    for path in (st, pth):
        model = create_model("ldcnet", pretrained=str(path))
        assert torch.equal(model.backbone.layer3[1].conv2.weight, sd["layer3.1.conv2.weight"])
        assert torch.equal(model.backbone.bn1.running_var, sd["bn1.running_var"])
        assert model.backbone.layer1[0].conv1.theta.item() == 0.5  # LDC parameters keep their init
    with pytest.raises(PretrainedWeightsError, match="nope.safetensors: pretrained weights file not found"):
        create_model("ldcnet", pretrained=str(tmp_path / "nope.safetensors"))
    bad = dict(sd)
    bad["layer2.0.conv1.weight"] = torch.zeros(128, 64, 5, 5)
    save_file(bad, str(tmp_path / "bad.safetensors"))
    with pytest.raises(PretrainedWeightsError, match=r"bad.safetensors: layer2.0.conv1.weight has shape"):
        create_model("ldcnet", pretrained=str(tmp_path / "bad.safetensors"))
    partial = {k: v for k, v in sd.items() if not k.startswith("layer4.")}
    save_file(partial, str(tmp_path / "r34ish.safetensors"))
    with pytest.raises(PretrainedWeightsError, match=r"r34ish.safetensors: not a torchvision ResNet-18.*missing"):
        create_model("ldcnet", pretrained=str(tmp_path / "r34ish.safetensors"))
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    with pytest.raises(PretrainedWeightsError, match="junk.pth: cannot read"):
        create_model("ldcnet", pretrained=str(tmp_path / "junk.pth"))


# ------------------------------------------------------------------ triplet loss
def brute_force_batch_hard(emb: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Hand-written batch-hard triplet: loop over anchors, Euclidean distances by explicit difference norms."""
    losses = []
    for a in range(len(emb)):
        pos = [torch.sqrt(((emb[a] - emb[p]) ** 2).sum()) for p in range(len(emb))
               if p != a and labels[p] == labels[a]]
        neg = [torch.sqrt(((emb[a] - emb[n]) ** 2).sum()) for n in range(len(emb)) if labels[n] != labels[a]]
        if pos and neg:
            losses.append(torch.clamp(max(pos) - min(neg) + margin, min=0))
    return torch.stack(losses).mean()


def test_triplet_loss_matches_brute_force_batch_hard() -> None:
    g = torch.Generator().manual_seed(0)
    for trial in range(4):
        emb = torch.randn(12, 5, generator=g, dtype=torch.float64) * (0.2 if trial % 2 else 1.0)
        labels = torch.tensor([0, 1, 2] * 4)
        labels[0] = 3 if trial == 3 else 0  # trial 3: an anchor without positives is skipped
        ours = batch_hard_triplet_loss(emb, labels, 0.1)
        ref = brute_force_batch_hard(emb.float(), labels, 0.1)
        assert ours.item() == pytest.approx(ref.item(), rel=1e-5, abs=1e-7)
    # gradient flows and the distance is Euclidean, not squared: a scaled copy scales the violation
    e = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, 0.0]], requires_grad=True)
    lab = torch.tensor([0, 0, 1])
    loss = batch_hard_triplet_loss(e, lab, 0.1)  # anchors 0,1: d_ap = 1, d_an = 0.5 → 0.6; anchor 2: none
    assert loss.item() == pytest.approx(0.6, abs=1e-6)
    loss.backward()
    assert e.grad is not None and e.grad.abs().sum() > 0


# ------------------------------------------------------------------ Grad-CAM
class TinyCamNet(nn.Module):
    """x → A = conv(x) (the target layer) → logits = W·GAP(A) + b: ∂y_c/∂A_k(i,j) = W[c,k]/(h·w)."""

    def __init__(self) -> None:
        super().__init__()
        self.feat = nn.Conv2d(3, 4, 3, stride=4, padding=1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.fc(self.feat(x).mean(dim=(2, 3)))}


def _bilinear_half_pixel(img: np.ndarray, out: int) -> np.ndarray:
    """Bilinear resampling with half-pixel centres and edge clamping, no antialiasing (torchvision 0.13 tensors)."""
    h, w = img.shape
    res = np.zeros((out, out))
    for r in range(out):
        for c in range(out):
            y = min(max((r + 0.5) * h / out - 0.5, 0), h - 1)
            x = min(max((c + 0.5) * w / out - 0.5, 0), w - 1)
            y0, x0 = int(np.floor(y)), int(np.floor(x))
            y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
            dy, dx = y - y0, x - x0
            res[r, c] = ((1 - dy) * (1 - dx) * img[y0, x0] + (1 - dy) * dx * img[y0, x1]
                         + dy * (1 - dx) * img[y1, x0] + dy * dx * img[y1, x1])
    return res


def test_grad_cam_and_target_geometry_match_hand_computation() -> None:
    torch.manual_seed(0)
    net = TinyCamNet().double().eval()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    classes = torch.tensor([1, 0])
    cam = grad_cam(net, net.feat, x, classes, lambda o: o["logits"])
    with torch.no_grad():
        a = net.feat(x).float().numpy()  # 2×4×16×16
    w = net.fc.weight.detach().float().numpy()
    targets = cam_to_target(cam, (64, 64), out_size=32, scale=255.0).numpy()
    for b in range(2):
        alpha = w[classes[b]] / (16 * 16)  # mean over positions of ∂y_c/∂A = W[c,k]/(h·w)
        hand = np.maximum(np.einsum("k,khw->hw", alpha, a[b]), 0)
        np.testing.assert_allclose(cam[b].numpy(), hand, rtol=1e-5, atol=1e-7)
        # pytorch-grad-cam 1.3.5: min-max, cv2 resize to the input, ReLU + min-max again; then Resize(32), × 255
        s = hand - hand.min()
        s = cv2.resize((s / (s.max() + 1e-7)).astype(np.float32), (64, 64), interpolation=cv2.INTER_LINEAR)
        s = np.maximum(s, 0) - np.maximum(s, 0).min()
        s = s / (s.max() + 1e-7)
        np.testing.assert_allclose(targets[b], _bilinear_half_pixel(s, 32) * 255, atol=2e-3)
    assert targets.max() <= 255.0 + 1e-3 and targets.min() >= 0


def test_cam_cache_round_trip_and_errors(tmp_path: Path) -> None:
    maps = torch.rand(3, 4, 4)
    path = save_cam_cache(tmp_path / "c.safetensors", ["a", "b", "c"], maps, {"layer": "x"})
    got, info = load_cam_cache(path, ["c", "a"])
    assert torch.equal(got, maps[[2, 0]]) and info == {"layer": "x"}
    with pytest.raises(CamCacheError, match="c.safetensors: no CAM for 1 training samples"):
        load_cam_cache(path, ["a", "zz"])
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(CamCacheError, match="bad.safetensors: cannot read"):
        load_cam_cache(tmp_path / "bad.safetensors", ["a"])


# ------------------------------------------------------------------ method
def _method(*overrides: str):  # noqa: ANN202
    cfg = load_config(None, ["data.image_size=64", "data.map_size=32", "model.name=ldcnet", "method.name=ldcnet",
                             *overrides])
    cls = get_method("ldcnet")
    return cls(cfg, cls.Params.model_validate(cfg.method.kwargs()))


def test_loss_is_ce_plus_beta_triplet_plus_gamma_attention() -> None:
    torch.manual_seed(0)
    method = _method()
    model = method.build_model().train()
    n = 8
    label = torch.tensor([1, 0] * 4)
    batch = {"image": torch.randn(n, 3, 48, 48), "label": label, "attack": torch.tensor([0, 1, 0, 2] * 2),
             "index": torch.arange(n).flip(0), "domain": torch.zeros(n, dtype=torch.long)}
    method.cam_targets = torch.rand(20, 32, 32) * 255
    ref_model = copy.deepcopy(model)
    torch.manual_seed(1)
    out = method.training_loss(model, batch, Stage("main", 1))
    torch.manual_seed(1)  # same dropout mask
    o = ref_model(batch["image"])
    cam = method.cam_targets[batch["index"]]
    live_t = torch.where(label[:, None, None] == 1, cam, torch.zeros_like(cam))
    spoof_t = torch.where(label[:, None, None] == 0, cam, torch.zeros_like(cam))
    ce = F.cross_entropy(o["logits"], label)
    trip = brute_force_batch_hard(o["feature"], batch["attack"], 0.1)
    att = ((o["live_map"] - live_t) ** 2).mean() + ((o["spoof_map"] - spoof_t) ** 2).mean()
    assert out["loss"].item() == pytest.approx((ce + 0.1 * trip + 0.004 * att).item(), rel=1e-5)
    # pre-training stage: cross-entropy of FE + CF only; score = softmax live probability, map = live attention
    pre = method.training_loss(model.eval(), batch, Stage("pretrain", 1))
    o = model(batch["image"])
    assert pre["loss"].item() == pytest.approx(F.cross_entropy(o["logits"], label).item(), rel=1e-5)
    s = method.score(model, batch)
    assert torch.allclose(s["score"], o["logits"].softmax(1)[:, 1]) and torch.equal(s["map"], o["live_map"])
    ablated = _method("method.triplet_weight=0", "method.attention_weight=0")
    out = ablated.training_loss(model, batch, Stage("main", 1))
    assert set(out) == {"loss", "cls"}
    stages = method.stages()
    assert [s.name for s in stages] == ["pretrain", "main"]
    assert stages[0].param_filter("backbone.layer1.0.conv1.theta") and stages[0].param_filter("classifier.fc.weight")
    assert not stages[0].param_filter("live_estimator.0.0.weight")


# ------------------------------------------------------------------ end to end
def _cfg(cache: Path, *extra: str):  # noqa: ANN202
    return load_config("ldcnet/ldcnet_synth.yaml", [
        f"data.cache={cache}", "data.train_domains=[da,db]", "data.test_domains=[db]", "data.test_split=test",
        "data.image_size=48", "data.batch_size=8", "data.dev_split=none",  # no per-epoch dev scoring
        "method.pretrain_epochs=1", "train.epochs=1", "train.max_steps_per_epoch=2", "eval.report=false",
        "train.log_every=1", *extra])


def test_trains_both_stages_caches_cams_resumes_inside_stage_2_and_exports(tiny_cache: Path, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from openfas.engine.trainer import Trainer
    from openfas.methods.ldcnet import CAM_CACHE_NAME, LDCNetMethod
    from openfas.methods.restore import build_model_from_checkpoint

    # dropout on (the default 0.5): a mid-epoch resume must also reproduce the dropout masks
    cfg = _cfg(tiny_cache, "train.save_every_steps=1")
    full = tmp_path / "full"
    result = Trainer(cfg, run_dir=full, progress=False).fit()
    assert 0.0 <= result["headline"]["auc"] <= 1.0
    cams = load_file(str(full / CAM_CACHE_NAME))["maps"]
    assert cams.shape == (48, 32, 32) and cams.max() > 100  # ×255 targets, one per training crop

    # a run killed inside stage 2 (epoch 1, step 2) resumes from its last checkpoint, reuses the CAM cache and
    # ends with exactly the weights of the uninterrupted run
    original = LDCNetMethod.training_loss
    calls = {"main": 0}

    def dying(self, model, batch, stage):  # noqa: ANN001, ANN202
        if stage.name == "main":
            calls["main"] += 1
            if calls["main"] == 2:
                raise KeyboardInterrupt
        return original(self, model, batch, stage)

    killed = tmp_path / "killed"
    monkeypatch.setattr(LDCNetMethod, "training_loss", dying)
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, run_dir=killed, progress=False).fit()
    monkeypatch.setattr(LDCNetMethod, "training_loss", original)
    cam_file = killed / CAM_CACHE_NAME
    stamp = cam_file.stat().st_mtime_ns
    monkeypatch.setattr("openfas.eval.cam.class_activation_maps",
                        lambda *a, **k: pytest.fail("CAMs recomputed on resume"))
    Trainer(cfg, resume=killed, progress=False).fit()
    assert cam_file.stat().st_mtime_ns == stamp
    a = load_file(str(full / "checkpoints" / "final.safetensors"))
    b = load_file(str(killed / "checkpoints" / "final.safetensors"))
    for k in a:
        if k.startswith("model."):
            assert torch.equal(a[k], b[k]), f"{k} differs after resume"


    # export: the folded model (LDC → plain conv, BN folded, normalised classifier) scores like the eager one
    model, info = build_model_from_checkpoint(full / "checkpoints" / "final.safetensors")
    folded = fuse_model(model)
    assert not any(isinstance(m, LDConv2d) for m in folded.modules())
    x = torch.randn(3, 3, 48, 48)
    ref, got = info["method"].score(model, {"image": x}), info["method"].score(folded, {"image": x})
    assert torch.allclose(ref["score"], got["score"], atol=1e-5) and torch.allclose(ref["map"], got["map"], atol=1e-5)
    if importlib.util.find_spec("onnxruntime") is not None:  # the ONNX graph of the same folded model
        from openfas.deploy.export import export_onnx

        report = export_onnx(full / "checkpoints" / "final.safetensors", tmp_path / "ldcnet.onnx")
        assert report.folded and report.outputs == ["score", "map"] and report.max_abs_diff["score"] < 1e-5


def test_dg_configs_load_and_name_their_source() -> None:
    from importlib.resources import files

    for name in ("oci_m", "omi_c", "ocm_i", "icm_o"):
        cfg = load_config(f"ldcnet/ldcnet_dg_{name}.yaml", [])
        assert cfg.model.name == "ldcnet" and cfg.method.name == "ldcnet"
        assert cfg.method.kwargs()["triplet_weight"] == 0.1 and cfg.method.kwargs()["attention_weight"] == 0.004
        assert cfg.optim.lr == 0.0001 and len(cfg.data.train_domains) == 3
        text = (files("openfas") / "configs" / "ldcnet" / f"ldcnet_dg_{name}.yaml").read_text()
        assert "huiyu8794/LDCNet" in text and "ASSUMED" in text


def test_cam_targets_recomputed_on_stage_entry_and_required_inside_stage(tiny_cache: Path, tmp_path: Path) -> None:
    """Entering stage 2 afresh overwrites a stale cache; resuming inside it needs the run's own file."""
    from types import SimpleNamespace

    from openfas.data.dataset import FaceCropDataset
    from openfas.methods.ldcnet import CAM_CACHE_NAME

    method = _method(f"data.cache={tiny_cache}")
    model = method.build_model()
    trainer = SimpleNamespace(
        run_dir=tmp_path, model=model, device=torch.device("cpu"), dist=SimpleNamespace(is_main=True),
        state=SimpleNamespace(epoch=0, step_in_epoch=0), barrier=lambda: None,
        dataset=lambda split, domains, train: FaceCropDataset(tiny_cache, split=split, domains=domains,
                                                              image_size=64, map_size=32, train=train))
    save_cam_cache(tmp_path / CAM_CACHE_NAME, ["stale"], torch.zeros(1, 32, 32), {})
    main = method.stages()[1]
    method.on_stage_start(trainer, main)
    n = len(trainer.dataset("train", None, False))
    assert method.cam_targets.shape == (n, 32, 32) and method.cam_targets.max() > 0
    trainer.state.epoch = 1  # resumed inside stage 2: loaded, not recomputed
    save_cam_cache(tmp_path / CAM_CACHE_NAME, ["stale"], torch.zeros(1, 32, 32), {})
    with pytest.raises(CamCacheError, match="no CAM for"):
        method.on_stage_start(trainer, main)
    (tmp_path / CAM_CACHE_NAME).unlink()
    with pytest.raises(FileNotFoundError, match="cam_targets.safetensors: the CAM targets of this run are missing"):
        method.on_stage_start(trainer, main)
