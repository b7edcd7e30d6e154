"""Meta-learning engine, RFMetaFAS and ANRL: meta-gradients against hand-derived values and finite
differences, layer equations evaluated directly, losses recomputed by an independent route."""

from __future__ import annotations

import colorsys
import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import build_tiny_cache

from openfas.config import load_config
from openfas.io.checkpoint import load_checkpoint, save_checkpoint
from openfas.methods import get_method
from openfas.methods.anrl import center_distance
from openfas.methods.base import Stage
from openfas.methods.meta import call_with, domain_batch, inner_update, named_params, split_meta_domains
from openfas.ops.adaptive_norm import AdaptiveNorm2d
from openfas.ops.color import rgb_to_hsv

torch.set_num_threads(1)


# ------------------------------------------------------------------ meta-gradient
def test_meta_gradient_matches_hand_derivation_and_finite_differences() -> None:
    """Linear model y = A θ. Inner: L_in = ½‖A θ − b‖², θ' = θ − α Aᵀ(Aθ − b).
    Outer: L_out = ½‖C θ' − d‖²  ⇒  ∇_θ L_out = (I − α AᵀA) Cᵀ (C θ' − d)  (second-order term included)."""
    torch.manual_seed(0)
    n, k = 5, 4
    A, C = torch.randn(n, k, dtype=torch.float64), torch.randn(n, k, dtype=torch.float64)
    b, d = torch.randn(n, dtype=torch.float64), torch.randn(n, dtype=torch.float64)
    lin = nn.Linear(k, n, bias=False).double()  # the "real module": y = W x, with x = the columns of A / C
    alpha = 0.05

    def outer(weight: torch.Tensor) -> torch.Tensor:
        params = {"weight": weight}
        # the model output for "input" e_j is W e_j; we encode θ as W's single row via inputs A/C: y = A θ
        inner_loss = 0.5 * ((call_with(lin, params, A).sum(1) - b) ** 2).sum()
        adapted = inner_update(params, inner_loss, alpha)
        return 0.5 * ((call_with(lin, adapted, C).sum(1) - d) ** 2).sum()

    # W has n rows; y_i = Σ_j (A W^T)_{ij} summed over outputs = A (Σ_rows W) — so θ = Σ_rows W.
    w0 = torch.randn(n, k, dtype=torch.float64, requires_grad=True)
    loss = outer(w0)
    (grad_w,) = torch.autograd.grad(loss, w0)
    theta = w0.detach().sum(0)
    theta_p = theta - alpha * A.T @ (A @ theta - b) * n  # each of the n rows receives the same gradient
    g_theta = (torch.eye(k, dtype=torch.float64) - alpha * n * A.T @ A) @ C.T @ (C @ theta_p - d)
    # ∂L/∂W_r = ∂L/∂θ for every row r
    assert torch.allclose(grad_w, g_theta.expand(n, k), atol=1e-10)

    # finite differences on a few coordinates
    eps = 1e-6
    for r, c in [(0, 0), (2, 3), (4, 1)]:
        wp, wm = w0.detach().clone(), w0.detach().clone()
        wp[r, c] += eps
        wm[r, c] -= eps
        fd = (outer(wp.requires_grad_()) - outer(wm.requires_grad_())).item() / (2 * eps)
        assert abs(fd - grad_w[r, c].item()) < 1e-6


def test_first_order_would_differ() -> None:
    """Dropping create_graph changes the meta-gradient (so the test above does check the second-order term)."""
    torch.manual_seed(1)
    lin = nn.Linear(3, 1, bias=False).double()
    x, y = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 1, dtype=torch.float64)
    grads = []
    for second in (True, False):
        params = named_params(lin)
        inner = F.mse_loss(call_with(lin, params, x), y)
        adapted = inner_update(params, inner, 0.5, create_graph=second)
        out = F.mse_loss(call_with(lin, adapted, x * 2), y)
        grads.append(torch.autograd.grad(out, lin.weight)[0])
    assert not torch.allclose(grads[0], grads[1])


def test_split_meta_domains_and_domain_batch() -> None:
    batch = {"domain": torch.tensor([0, 0, 1, 1, 2, 2]), "label": torch.tensor([1, 0, 1, 0, 1, 0]),
             "image": torch.arange(6.0)}
    torch.manual_seed(0)
    seen = set()
    for _ in range(30):
        tr, te = split_meta_domains(batch, 2)
        assert sorted(tr + te) == [0, 1, 2] and len(tr) == 2
        seen.add(tuple(te))
    assert seen == {(0,), (1,), (2,)}
    assert domain_batch(batch, 1)["image"].tolist() == [2.0, 3.0]
    with pytest.raises(ValueError, match="more than 2 source domains"):
        split_meta_domains({"domain": torch.tensor([0, 1])}, 2)


# ------------------------------------------------------------------ layers
def test_rgb_to_hsv_matches_colorsys() -> None:
    rng = np.random.default_rng(0)
    px = rng.random((200, 3))
    px[:5] = [[0.5, 0.5, 0.5], [0, 0, 0], [1, 0, 0], [0, 1, 0], [0.2, 0.2, 0.9]]
    ours = rgb_to_hsv(torch.tensor(px, dtype=torch.float64).T.reshape(1, 3, 200, 1))[0, :, :, 0].T.numpy()
    ref = np.array([colorsys.rgb_to_hsv(*p) for p in px])
    assert np.allclose(ours, ref, atol=1e-9)


def test_adaptive_norm_is_gated_mix_of_batch_and_instance_norm() -> None:
    torch.manual_seed(0)
    layer = AdaptiveNorm2d(4).double().train()
    nn.init.normal_(layer.bn.weight)
    nn.init.normal_(layer.inorm.weight)
    x = torch.randn(3, 4, 5, 5, dtype=torch.float64)
    eps = 1e-5
    bn = (x - x.mean((0, 2, 3), keepdim=True)) / torch.sqrt(x.var((0, 2, 3), unbiased=False, keepdim=True) + eps)
    bn = bn * layer.bn.weight[None, :, None, None] + layer.bn.bias[None, :, None, None]
    inn = (x - x.mean((2, 3), keepdim=True)) / torch.sqrt(x.var((2, 3), unbiased=False, keepdim=True) + eps)
    inn = inn * layer.inorm.weight[None, :, None, None] + layer.inorm.bias[None, :, None, None]
    w, b = layer.gate[0].weight, layer.gate[0].bias
    lam = torch.sigmoid(x.mean((2, 3)) @ w.T + b)[:, :, None, None]
    assert torch.allclose(layer(x), lam * bn + (1 - lam) * inn, atol=1e-10)


def _separate_norms(layer: AdaptiveNorm2d, x: torch.Tensor) -> torch.Tensor:
    """The plain two-module form the fused forward replaced: λ·BatchNorm2d(x) + (1−λ)·InstanceNorm2d(x)."""
    lam = torch.sigmoid(layer.gate(x.mean(dim=(2, 3))))[:, :, None, None]
    return lam * layer.bn(x) + (1.0 - lam) * layer.inorm(x)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_adaptive_norm_fused_equals_separate_norms(momentum: float | None) -> None:
    """Values, BatchNorm running statistics (train, then eval), first- and second-order gradients of the fused
    affine form against nn.BatchNorm2d and nn.InstanceNorm2d run separately, in float64."""
    torch.manual_seed(0)
    fused = AdaptiveNorm2d(5, gate_layers=2).double().train()
    fused.bn.momentum = momentum
    for prm in (fused.bn.weight, fused.bn.bias, fused.inorm.weight, fused.inorm.bias):
        nn.init.normal_(prm)
    plain = copy.deepcopy(fused)
    for step in range(3):
        x = (torch.randn(4, 5, 6, 7, dtype=torch.float64) * 3 + 2).requires_grad_()
        y_f, y_p = fused(x), _separate_norms(plain, x)
        assert torch.allclose(y_f, y_p, atol=1e-10)
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            assert torch.allclose(getattr(fused.bn, name).double(), getattr(plain.bn, name).double(), atol=1e-12)
        # second order, as in ANRL's inner step: gradient w.r.t. the gate kept in the graph, then an outer loss
        v = torch.randn_like(y_f)
        grads = []
        for layer, y in ((fused, y_f), (plain, y_p)):
            gate = list(layer.gate.parameters())
            inner = torch.autograd.grad((y * v).sum() + (y ** 2).mean(), gate, create_graph=True)
            outer = sum((g ** 2).sum() for g in inner) + (y ** 3).mean()
            wrt = [x, *layer.parameters()]
            grads.append(torch.autograd.grad(outer, wrt) + tuple(inner))
        for g_f, g_p in zip(*grads, strict=True):
            assert torch.allclose(g_f, g_p, rtol=1e-8, atol=1e-10), step
    fused.eval()
    plain.eval()
    x = torch.randn(2, 5, 3, 4, dtype=torch.float64)
    assert torch.allclose(fused(x), _separate_norms(plain, x), atol=1e-10)


def test_anrl_step_with_fused_norm_equals_separate_norms(monkeypatch: pytest.MonkeyPatch) -> None:
    """One seeded ANRL meta step (second order through the gates) and one aggregation step in float64: same loss
    terms, gradients of every parameter and BatchNorm statistics whether the adaptive norm runs fused or as two
    separate norm modules. (In float32 the two differ by rounding, amplified to ~1e-3 relative through the
    normalisations of 4-image domain batches; float64 shows they compute the same function.) The conv biases in
    front of a plain BatchNorm have an exactly zero gradient, hence the absolute floor."""
    for meta in (True, False):
        results = []
        for separate in (False, True):
            with monkeypatch.context() as mp:
                if separate:
                    mp.setattr(AdaptiveNorm2d, "forward", _separate_norms)
                torch.manual_seed(0)
                method = _method("anrl", meta=meta)
                model = method.build_model().train().double()
                batch = _batch(4)
                batch["image"], batch["target"] = batch["image"].double(), batch["target"].double()
                torch.manual_seed(3)
                out = method.training_loss(model, batch, Stage("main", 1))
                out["loss"].backward()
                results.append((out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None},
                                {n: b.clone() for n, b in model.named_buffers()}))
        (o_f, g_f, b_f), (o_p, g_p, b_p) = results
        assert o_f.keys() == o_p.keys() and g_f.keys() == g_p.keys() and len(g_f) == len(list(model.parameters()))
        for k in o_f:
            assert o_f[k].item() == pytest.approx(o_p[k].item(), rel=1e-6, abs=1e-9), (meta, k)
        for n in g_f:
            assert (g_f[n] - g_p[n]).abs().max().item() <= 1e-9 * g_p[n].abs().max().item() + 1e-14, (meta, n)
        for n in b_f:
            assert torch.allclose(b_f[n].double(), b_p[n].double(), rtol=1e-9, atol=1e-12), (meta, n)


def test_center_distance_is_mean_squared_difference() -> None:
    f = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    c = torch.tensor([1.0, 4.0])
    # (0² + 2² + 2² + 2²) / 4 = 3
    assert center_distance(f, c).item() == pytest.approx(3.0)


# ------------------------------------------------------------------ methods
def _method(name: str, **params: object):  # noqa: ANN202
    cfg = load_config(None, ["data.image_size=32", "data.map_size=32", f"model.name={name}", f"method.name={name}",
                             *[f"method.{k}={v}" for k, v in params.items()]])
    cls = get_method(name)
    return cls(cfg, cls.Params.model_validate(cfg.method.kwargs()))


def _batch(seed: int = 0, domains: int = 3, per: int = 2, size: int = 32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    n = domains * 2 * per
    label = torch.tensor([1, 0] * (n // 2))
    return {"image": torch.randn(n, 3, size, size, generator=g),
            "target": torch.rand(n, 32, 32, generator=g) * label[:, None, None],
            "label": label, "domain": torch.arange(domains).repeat_interleave(2 * per)}


def test_rfmeta_loss_equals_hand_built_adapted_classifiers() -> None:
    """The functional_call route against an explicit copy of the classifier with θ' written into it."""
    torch.manual_seed(0)
    method = _method("rfmeta")
    model = method.build_model().train()
    batch = _batch()
    ref_model = copy.deepcopy(model)
    torch.manual_seed(5)
    out = method.training_loss(model, batch, Stage("main", 1))
    torch.manual_seed(5)
    train_doms, test_doms = split_meta_domains(batch, 2)
    p = method.params
    cls_tr = dep_tr = cls_te = dep_te = 0.0
    adapted_nets = []
    for d in train_doms:
        b = domain_batch(batch, d)
        multi, feat = ref_model.features(b["image"])
        dep_tr = dep_tr + F.mse_loss(ref_model.depth(multi).squeeze(1), b["target"])
        cls = F.binary_cross_entropy_with_logits(ref_model.classifier(feat), b["label"].float())
        cls_tr = cls_tr + cls
        names = [n for n, _ in ref_model.classifier.named_parameters()]
        grads = torch.autograd.grad(cls, list(ref_model.classifier.parameters()), retain_graph=True)
        net = copy.deepcopy(ref_model.classifier)
        with torch.no_grad():
            for (n, prm), g in zip(net.named_parameters(), grads, strict=True):
                prm.copy_(dict(ref_model.classifier.named_parameters())[n] - p.meta_step_size * g)
        adapted_nets.append(net)
        assert names
    for d in test_doms:
        b = domain_batch(batch, d)
        multi, feat = ref_model.features(b["image"])
        dep_te = dep_te + F.mse_loss(ref_model.depth(multi).squeeze(1), b["target"])
        for net in adapted_nets:
            cls_te = cls_te + F.binary_cross_entropy_with_logits(net(feat), b["label"].float())
    expected = cls_tr + 10 * dep_tr + 1 * (cls_te + 10 * dep_te)
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    # the meta-test loss reaches the classifier's original weights through θ' (second-order path)
    out["loss"].backward()
    assert model.classifier.fc.weight.grad is not None and model.classifier.fc.weight.grad.abs().sum() > 0


def test_anrl_meta_test_with_zero_step_equals_plain_forward_and_gates_get_meta_gradient() -> None:
    torch.manual_seed(0)
    method = _method("anrl", meta_step_size=0.0)
    model = method.build_model().train()
    batch = _batch(1)
    torch.manual_seed(3)
    out = method.training_loss(model, batch, Stage("main", 1))
    # with α = 0 the adapted gates equal the originals: meta-test CE equals a plain forward's CE
    torch.manual_seed(3)
    _, test_doms = split_meta_domains(batch, 2)
    b = domain_batch(batch, test_doms[0])
    ce = F.cross_entropy(model(b["image"])["logits"], b["label"])
    assert out["ce_test"].item() == pytest.approx(ce.item(), rel=1e-5)

    method = _method("anrl")  # α = 1e-4: gates receive gradient from meta-test through the inner step
    model = method.build_model().train()
    torch.manual_seed(3)
    method.training_loss(model, batch, Stage("main", 1))["loss"].backward()
    gate = model.extractor.block1[0].norm.gate[0].weight
    assert gate.grad is not None and gate.grad.abs().sum() > 0


def test_anrl_centers_follow_ema_and_survive_checkpoint(tmp_path: Path) -> None:
    method = _method("anrl", meta=False)
    model = method.build_model().train()
    batch = _batch(2)
    method.on_epoch_start(Stage("main", 1), 0, resumed_mid_epoch=False)
    with torch.no_grad():
        feats = {d: model(domain_batch(batch, d)["image"])["feat"].mean((2, 3)) for d in range(3)}
    method.training_loss(model, batch, Stage("main", 1))
    # BN in train mode: the same batch gives the same features, so the centre is 0.9·1 + 0.1·mean(live feats)
    b0 = domain_batch(batch, 0)
    live0 = feats[0][b0["label"] == 1].mean(0)
    assert torch.allclose(method.center_live[0], 0.9 + 0.1 * live0, atol=1e-5)
    path = save_checkpoint(tmp_path / "c.safetensors", model_state=model.state_dict(), meta={"x": 1},
                           extra_state={"method": method.state_dict()})
    other = _method("anrl", meta=False)
    other.load_state_dict(load_checkpoint(path)["extra"]["method"])
    assert torch.equal(other.center_live, method.center_live.cpu())
    other.on_epoch_start(Stage("main", 1), 1, resumed_mid_epoch=True)
    assert other.center_live is not None
    other.on_epoch_start(Stage("main", 1), 1, resumed_mid_epoch=False)
    assert other.center_live is None


@pytest.mark.parametrize("name", ["rfmeta", "anrl"])
def test_meta_methods_train_end_to_end_on_three_domains(name: str, tmp_path: Path) -> None:
    from openfas.engine.trainer import Trainer

    cache = build_tiny_cache(tmp_path / "cache", domains=("da", "db", "dc"), per_group=2)
    cfg = load_config(None, [f"data.cache={cache}", "data.image_size=32", "data.map_size=32", "data.batch_size=6",
                             f"model.name={name}", f"method.name={name}", "train.epochs=1", "optim.lr=0.0003",
                             "data.train_domains=[da,db,dc]", "data.test_domains=[da]"])
    result = Trainer(cfg, run_dir=tmp_path / "run", progress=False).fit()
    assert 0.0 <= result["headline"]["auc"] <= 1.0
    assert (tmp_path / "run" / "scores_test.csv").exists()
