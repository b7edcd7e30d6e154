"""Every loss term of every method against the official formula written out independently, plus a direction test.

Each value test transcribes the paper / official-code formula in plain tensor arithmetic (no openfas helpers) on
fixed inputs and compares it with what the method computes. Each direction test takes one gradient step on that
term alone and checks that the features (or predictions) move the way the paper says. See docs/faithfulness.md.
"""

from __future__ import annotations

import copy

import pytest
import torch

from openfas.config import load_config
from openfas.methods import get_method
from openfas.methods.base import Stage

torch.set_num_threads(1)


def _method(name: str, *overrides: str, **params: object):  # noqa: ANN202
    cfg = load_config(None, ["data.image_size=32", "data.map_size=32", f"model.name={name}", f"method.name={name}",
                             *overrides, *[f"method.{k}={v}" for k, v in params.items()]])
    cls = get_method(name)
    return cls(cfg, cls.Params.model_validate(cfg.method.kwargs()))


def _sqdist(f: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """TFace EuclideanLoss(reduction='mean'): Σ_{i,j} (f_ij − c_j)² / (N·D), written with loops-free sums."""
    n, d = f.shape
    total = torch.zeros(())
    for i in range(n):
        total = total + ((f[i] - c) * (f[i] - c)).sum()
    return total / (n * d)


# ====================================================================== ANRL
def _anrl_inputs(seed: int = 0, n_live: int = 3, n_spoof: int = 3, dim: int = 5) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    label = torch.tensor([1] * n_live + [0] * n_spoof)
    n = n_live + n_spoof
    target = torch.rand(n, 4, 4, generator=g) * label[:, None, None]
    return {"feat": torch.randn(n, dim, 2, 2, generator=g), "logits": torch.randn(n, 2, generator=g),
            "depth": torch.rand(n, 4, 4, generator=g), "target": target, "label": label}


def _anrl_centres(dim: int = 5, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(3, dim, generator=g), torch.randn(3, dim, generator=g) + 2.0


def _anrl_terms(form: str, x: dict[str, torch.Tensor], d: int, centres: tuple[torch.Tensor, torch.Tensor],
                feat: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    # the default (no option given) must be the separating form
    method = _method("anrl") if form == "separating" else _method("anrl", ics_form=form)
    method.center_live, method.center_spoof = centres[0].clone(), centres[1].clone()
    out = {"feat": x["feat"] if feat is None else feat, "logits": x["logits"], "depth": x["depth"]}
    terms = method._domain_losses(out, {"label": x["label"], "target": x["target"]}, d, 3)
    terms["center_live"], terms["center_spoof"] = method.center_live, method.center_spoof
    return terms


def _anrl_official_reference(x: dict[str, torch.Tensor], d: int, c_live: torch.Tensor, c_spoof: torch.Tensor):  # noqa: ANN202
    """TFace ANRL train.py ``compute_losses`` transcribed: centres updated first (EMA 0.9, detached), then
    AA / AB / RR / RF / FR with EuclideanLoss(mean) on the globally average-pooled features."""
    f = x["feat"].sum(dim=(2, 3)) / 4.0
    live, spoof = f[:3], f[3:]
    c_live, c_spoof = c_live.clone(), c_spoof.clone()
    c_live[d] = c_live[d] * 0.9 + live.sum(0) / 3 * 0.1
    c_spoof[d] = c_spoof[d] * 0.9 + spoof.sum(0) / 3 * 0.1
    aa = _sqdist(live, c_live[d])
    ab = sum(_sqdist(live, c_live[k]) for k in range(3) if k != d)
    rr, rf, fr = _sqdist(live, c_live[d]), _sqdist(live, c_spoof[d]), _sqdist(spoof, c_live[d])
    logits, y = x["logits"], x["label"]
    ce = -(logits[torch.arange(6), y] - torch.log(torch.exp(logits).sum(1))).sum() / 6
    dep = ((x["depth"] - x["target"]) ** 2).sum() / x["depth"].numel()
    return {"ce": ce, "depth": dep, "domain": ab / 2 - aa, "rr": rr, "rf": rf, "fr": fr,
            "c_live": c_live, "c_spoof": c_spoof}


@pytest.mark.parametrize("d", [0, 2])
def test_anrl_losses_match_transcribed_formulas(d: int) -> None:
    x = _anrl_inputs()
    c_live, c_spoof = _anrl_centres()
    ref = _anrl_official_reference(x, d, c_live, c_spoof)
    got = _anrl_terms("separating", x, d, (c_live, c_spoof))
    assert got["ce"].item() == pytest.approx(ref["ce"].item(), rel=1e-5)
    assert got["depth"].item() == pytest.approx(ref["depth"].item(), rel=1e-5)
    assert got["idc"].item() == pytest.approx(ref["domain"].item(), rel=1e-5, abs=1e-6)
    # inter-class separable, the paper's purpose: loss_discri = RR − RF − FR
    assert got["ics"].item() == pytest.approx((ref["rr"] - ref["rf"] - ref["fr"]).item(), rel=1e-5)
    assert torch.allclose(got["center_live"], ref["c_live"], atol=1e-6)
    assert torch.allclose(got["center_spoof"], ref["c_spoof"], atol=1e-6)
    # the released TFace code's combination (RF + FR − RR), kept as an option, is the exact negative
    off = _anrl_terms("official_code", x, d, (c_live, c_spoof))
    assert off["ics"].item() == pytest.approx((ref["rf"] + ref["fr"] - ref["rr"]).item(), rel=1e-5)


def _anrl_step(form: str, term: str, lr: float = 0.5, between: bool = False):  # noqa: ANN202
    """One gradient step on one term alone w.r.t. the features of domain 0; returns (pooled features before,
    after, centres as updated by this batch). ``between``: live features placed between the two centres."""
    x = _anrl_inputs()
    c_live, c_spoof = _anrl_centres()
    if between:  # live features near the midpoint of the segment spoof centre → live centre
        mid = 0.5 * (c_live[0] + c_spoof[0])
        x["feat"][:3] = mid[None, :, None, None] + 0.1 * x["feat"][:3]
    feat = x["feat"].clone().requires_grad_(True)
    terms = _anrl_terms(form, x, 0, (c_live, c_spoof), feat=feat)
    (grad,) = torch.autograd.grad(terms[term], feat)
    after = feat.detach() - lr * grad
    return x["feat"].mean((2, 3)), after.mean((2, 3)), torch.stack([terms["center_live"], terms["center_spoof"]])


def _mean_dist(f: torch.Tensor, c: torch.Tensor) -> float:
    return float(((f - c) ** 2).sum(1).mean())


def test_anrl_ics_step_separates_live_from_spoof() -> None:
    """ICS step (domain 0, centres detached): D(f⁺, c⁺) − D(f⁺, c⁻) is linear in f⁺, so every live feature moves by
    the same vector, a positive multiple of c⁺ − c⁻ (towards the live centre's side, away from the spoof centre);
    live features get closer to the live centre relative to the spoof centre, and spoof features are pushed
    away from the live centre. With live features between the two centres, they get closer to the live centre
    and farther from the spoof centre in absolute terms."""
    before, after, centres = _anrl_step("separating", "ics")
    c_live, c_spoof = centres[0, 0], centres[1, 0]
    move = after[:3] - before[:3]
    direction = (c_live - c_spoof) / (c_live - c_spoof).norm()
    for row in move:
        assert float(row @ direction) > 0
        assert torch.allclose(row, (row @ direction) * direction, atol=1e-6)  # parallel to c⁺ − c⁻
    rel = lambda f: _mean_dist(f, c_live) - _mean_dist(f, c_spoof)  # noqa: E731
    assert rel(after[:3]) < rel(before[:3])
    assert _mean_dist(after[3:], c_live) > _mean_dist(before[3:], c_live)
    before, after, centres = _anrl_step("separating", "ics", lr=0.2, between=True)
    c_live, c_spoof = centres[0, 0], centres[1, 0]
    assert _mean_dist(after[:3], c_live) < _mean_dist(before[:3], c_live)
    assert _mean_dist(after[:3], c_spoof) > _mean_dist(before[:3], c_spoof)
    # the released code's sign does the opposite (why it is not the default)
    before, after, centres = _anrl_step("official_code", "ics", lr=0.2, between=True)
    assert _mean_dist(after[:3], centres[0, 0]) > _mean_dist(before[:3], centres[0, 0])
    assert _mean_dist(after[:3], centres[1, 0]) < _mean_dist(before[:3], centres[1, 0])
    assert _mean_dist(after[3:], centres[0, 0]) < _mean_dist(before[3:], centres[0, 0])


def test_anrl_idc_step_moves_live_features_towards_other_domains_live_centres() -> None:
    """IDC step (domain 0): mean_{k≠0} D(f⁺, c⁺_k) − D(f⁺, c⁺_0) is linear in f⁺, so every live feature moves by the
    same positive multiple of mean_{k≠0} c⁺_k − c⁺_0: towards the other domains' live centres, away from its own
    domain's; spoof features do not move."""
    before, after, centres = _anrl_step("separating", "idc")
    own, others = centres[0, 0], centres[0, 1:].mean(0)
    direction = (others - own) / (others - own).norm()
    for row in after[:3] - before[:3]:
        assert float(row @ direction) > 0
        assert torch.allclose(row, (row @ direction) * direction, atol=1e-6)
    assert torch.equal(after[3:], before[3:])


def test_anrl_ce_and_depth_steps_improve_their_own_targets() -> None:
    x = _anrl_inputs()
    method = _method("anrl")
    logits = x["logits"].clone().requires_grad_(True)
    depth = x["depth"].clone().requires_grad_(True)
    out = {"feat": x["feat"], "logits": logits, "depth": depth}
    terms = method._domain_losses(out, {"label": x["label"], "target": x["target"]}, 0, 3)
    (g_logit,) = torch.autograd.grad(terms["ce"], logits)
    (g_depth,) = torch.autograd.grad(terms["depth"], depth)
    y = x["label"]
    margin = lambda z: z[torch.arange(6), y] - z[torch.arange(6), 1 - y]  # noqa: E731
    assert bool((margin(logits.detach() - g_logit) > margin(logits.detach())).all())
    new_depth = depth.detach() - 0.1 * g_depth
    assert bool(((new_depth - x["target"]).abs() <= (x["depth"] - x["target"]).abs()).all())


def test_anrl_training_loss_uses_the_configured_ics_form() -> None:
    method = _method("anrl", meta=False)
    model = method.build_model().train()
    g = torch.Generator().manual_seed(0)
    label = torch.tensor([1, 0] * 6)
    batch = {"image": torch.randn(12, 3, 32, 32, generator=g), "target": torch.rand(12, 32, 32, generator=g),
             "label": label, "domain": torch.arange(3).repeat_interleave(4)}
    method.on_epoch_start(Stage("main", 1), 0, resumed_mid_epoch=False)
    sep = method.training_loss(model, batch, Stage("main", 1))
    other = _method("anrl", meta=False, ics_form="official_code")
    other.on_epoch_start(Stage("main", 1), 0, resumed_mid_epoch=False)
    off = other.training_loss(model, batch, Stage("main", 1))
    assert sep["ics"].item() == pytest.approx(-off["ics"].item(), rel=1e-4)
    with pytest.raises(Exception, match="ics_form"):
        _method("anrl", ics_form="bogus")


# ====================================================================== CDCN (pixel-wise: MSE + contrastive depth)
class _FixedMap(torch.nn.Module):
    """A 'model' whose output is a learnable B×H×W map, so a loss gradient step moves the prediction itself."""

    def __init__(self, pred: torch.Tensor) -> None:
        super().__init__()
        self.pred = torch.nn.Parameter(pred.clone())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.pred


def _official_cdl(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CDCN ``Contrast_depth_loss`` transcribed: the 8 kernels (+1 at a neighbour, −1 at the centre) applied as a
    VALID convolution (no padding: (H−2)×(W−2) positions), then MSE over B×8×(H−2)×(W−2)."""
    b, h, w = pred.shape
    offsets = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]
    total, count = torch.zeros((), dtype=pred.dtype), 0
    for n in range(b):
        for dr, dc in offsets:
            for i in range(1, h - 1):
                for j in range(1, w - 1):
                    dp = pred[n, i + dr, j + dc] - pred[n, i, j]
                    dt = target[n, i + dr, j + dc] - target[n, i, j]
                    total, count = total + (dp - dt) ** 2, count + 1
    return total / count


def _cdcn_pred_target(seed: int = 0, size: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, size, size, generator=g, dtype=torch.float64), torch.rand(2, size, size, generator=g,
                                                                                    dtype=torch.float64)


def _cdcn_terms(pred: torch.Tensor, target: torch.Tensor, **params: object) -> tuple[dict, _FixedMap]:
    method = _method("pixelwise", "model.name=cdcn", **params)
    model = _FixedMap(pred)
    return method.training_loss(model, {"image": torch.zeros(2, 3, 4, 4), "target": target}, Stage("main", 1)), model


def test_cdcn_mse_and_contrastive_depth_match_transcribed_formulas() -> None:
    pred, target = _cdcn_pred_target()
    out, _ = _cdcn_terms(pred, target)
    mse = ((pred - target) ** 2).sum() / pred.numel()
    cdl = _official_cdl(pred, target)
    assert out["mse"].item() == pytest.approx(mse.item(), rel=1e-6)
    assert out["cdl"].item() == pytest.approx(cdl.item(), rel=1e-6)
    assert out["loss"].item() == pytest.approx((mse + cdl).item(), rel=1e-6)
    # the zero-padded variant (option cdl_padding=1) equals the same formula on maps framed by zeros
    padded, _ = _cdcn_terms(pred, target, cdl_padding=1)
    framed = [torch.nn.functional.pad(t, (1, 1, 1, 1)) for t in (pred, target)]
    assert padded["cdl"].item() == pytest.approx(_official_cdl(*framed).item(), rel=1e-6)


def test_cdcn_contrastive_depth_ignores_a_constant_offset_valid_convolution() -> None:
    """Every kernel sums to zero, so with the official valid convolution a prediction that equals the target plus
    a constant has zero contrastive loss; zero padding would add border terms against 0."""
    _, target = _cdcn_pred_target(1)
    out, _ = _cdcn_terms(target + 0.3, target)
    assert out["cdl"].item() == pytest.approx(0.0, abs=1e-12)
    padded, _ = _cdcn_terms(target + 0.3, target, cdl_padding=1)
    assert padded["cdl"].item() > 1e-3


def test_cdcn_steps_move_the_prediction_towards_the_target() -> None:
    pred, target = _cdcn_pred_target(2)
    # MSE alone: every pixel moves towards its target value
    out, model = _cdcn_terms(pred, target, cdl_weight=0.0)
    (g,) = torch.autograd.grad(out["mse"], model.pred)
    after = pred - 10.0 * g
    assert bool(((after - target).abs() < (pred - target).abs()).all())
    # contrastive depth alone: the local contrasts (neighbour differences) get closer to the target's, and the
    # mean level of each map is untouched (the term only sees differences)
    out, model = _cdcn_terms(pred, target)
    (g,) = torch.autograd.grad(out["cdl"], model.pred)
    after = pred - 1.0 * g
    assert _official_cdl(after, target) < _official_cdl(pred, target)
    assert torch.allclose(g.sum(dim=(1, 2)), torch.zeros(2, dtype=g.dtype), atol=1e-6)


def _ellipse_mask_by_hand(h: int, w: int, scale: float) -> torch.Tensor:
    """Centred square face box of side min(h, w)/scale, its inscribed ellipse, pixel centres tested one by one."""
    r = min(h, w) / scale / 2
    m = torch.zeros(h, w)
    for i in range(h):
        for j in range(w):
            if ((j + 0.5 - w / 2) / r) ** 2 + ((i + 0.5 - h / 2) / r) ** 2 <= 1.0:
                m[i, j] = 1.0
    return m


def test_cdcn_official_score_is_map_sum_over_face_mask_sum() -> None:
    pred, _ = _cdcn_pred_target(3, size=8)
    pred = pred.float()
    method = _method("pixelwise", "model.name=cdcn", score_norm="face_mask", mask_face_scale=1.4)
    model = _FixedMap(pred)
    out = method.score(model, {"image": torch.zeros(2, 3, 4, 4)})
    mask = _ellipse_mask_by_hand(8, 8, 1.4)
    assert 0 < mask.sum() < 64
    expected = torch.stack([pred[n].sum() / mask.sum() for n in range(2)])
    assert torch.allclose(out["score"], expected, rtol=1e-6)
    # a per-image face mask from the data takes precedence
    own = torch.zeros(2, 8, 8)
    own[0, 2:6, 2:6] = 1
    own[1, :, :4] = 1
    out = method.score(model, {"image": torch.zeros(2, 3, 4, 4), "face_mask": own})
    assert torch.allclose(out["score"], torch.stack([pred[0].sum() / 16, pred[1].sum() / 32]), rtol=1e-6)
    # the mean rule is still available
    mean = _method("pixelwise", "model.name=cdcn").score(model, {"image": torch.zeros(2, 3, 4, 4)})
    assert torch.allclose(mean["score"], pred.mean(dim=(1, 2)), rtol=1e-6)


def test_cdcn_run_records_its_score_rule_in_metrics_json(tmp_path) -> None:  # noqa: ANN001
    import json

    from conftest import build_tiny_cache

    from openfas.engine.trainer import Trainer

    cache = build_tiny_cache(tmp_path / "cache", per_group=1)
    cfg = load_config(None, [f"data.cache={cache}", "data.image_size=32", "data.map_size=8", "model.width=8",
                             "data.batch_size=4", "train.epochs=1", "eval.report=false", "method.name=pixelwise",
                             "method.score_norm=face_mask"])
    Trainer(cfg, run_dir=tmp_path / "run", progress=False).fit()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "face mask" in metrics["score_rule"]["score"]


# ====================================================================== LDCNet (CE + batch-hard triplet + attention)
class _FixedLDCNetOutputs(torch.nn.Module):
    """Stands in for LDCNet: learnable logits, feature and attention maps, so a step moves them directly."""

    def __init__(self, n: int, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.logits = torch.nn.Parameter(torch.randn(n, 2, generator=g))
        self.feature = torch.nn.Parameter(torch.randn(n, 4, generator=g))
        self.live_map = torch.nn.Parameter(torch.rand(n, 4, 4, generator=g))
        self.spoof_map = torch.nn.Parameter(torch.rand(n, 4, 4, generator=g))

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.logits, "feature": self.feature, "live_map": self.live_map, "spoof_map": self.spoof_map}


def _ldcnet_setup(seed: int = 0):  # noqa: ANN202
    n = 8
    g = torch.Generator().manual_seed(100 + seed)
    label = torch.tensor([1, 1, 1, 0, 0, 0, 0, 1])
    attack = torch.tensor([0, 0, 0, 1, 1, 2, 2, 0])  # live / print / replay
    method = _method("ldcnet", "model.name=ldcnet")
    method.cam_targets = torch.rand(10, 4, 4, generator=g) * 255
    batch = {"image": torch.zeros(n, 3, 4, 4), "label": label, "attack": attack, "index": torch.arange(n) + 1}
    return method, _FixedLDCNetOutputs(n, seed), batch


def _batch_hard_by_hand(f: torch.Tensor, y: torch.Tensor, margin: float) -> torch.Tensor:
    """SSDG/LDCNet hard triplet loss transcribed (hardest=True, squared=False): per anchor the farthest positive and
    the nearest negative by Euclidean distance, hinge with the margin, mean over anchors."""
    losses = []
    for a in range(len(y)):
        dist = [float(((f[a] - f[b]) ** 2).sum()) ** 0.5 for b in range(len(y))]
        pos = [dist[b] for b in range(len(y)) if b != a and y[b] == y[a]]
        neg = [dist[b] for b in range(len(y)) if y[b] != y[a]]
        losses.append(max(0.0, max(pos) - min(neg) + margin))
    return torch.tensor(sum(losses) / len(losses))


def test_ldcnet_losses_match_transcribed_formulas() -> None:
    method, model, batch = _ldcnet_setup()
    out = method.training_loss(model, batch, Stage("main", 1))
    z, y = model.logits.detach(), batch["label"]
    ce = -(z[torch.arange(8), y] - torch.log(torch.exp(z).sum(1))).mean()
    trip = _batch_hard_by_hand(model.feature.detach(), batch["attack"], 0.1)
    cam = method.cam_targets[batch["index"]]
    live_t = torch.stack([cam[i] if y[i] == 1 else torch.zeros(4, 4) for i in range(8)])
    spoof_t = torch.stack([cam[i] if y[i] == 0 else torch.zeros(4, 4) for i in range(8)])
    att = ((model.live_map.detach() - live_t) ** 2).mean() + ((model.spoof_map.detach() - spoof_t) ** 2).mean()
    assert out["cls"].item() == pytest.approx(ce.item(), rel=1e-5)
    assert out["trip"].item() == pytest.approx(trip.item(), rel=1e-5)
    assert out["att"].item() == pytest.approx(att.item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx((ce + 0.1 * trip + 0.004 * att).item(), rel=1e-5)


def test_ldcnet_steps_move_outputs_the_way_the_paper_says() -> None:
    method, model, batch = _ldcnet_setup(1)
    y, attack = batch["label"], batch["attack"]
    # CE alone (the only term of the total loss that reaches the logits): the true class's margin grows
    out = method.training_loss(model, batch, Stage("main", 1))
    grads = torch.autograd.grad([out["loss"]], [model.logits])
    z0 = model.logits.detach()
    z1 = z0 - 0.5 * grads[0]
    margin = lambda z: z[torch.arange(8), y] - z[torch.arange(8), 1 - y]  # noqa: E731
    assert bool((margin(z1) > margin(z0)).all())
    # triplet alone: hardest-positive minus hardest-negative distance shrinks on average
    trip = method.triplet(model.feature, attack)
    (g,) = torch.autograd.grad(trip, model.feature)
    f0 = model.feature.detach()
    f1 = f0 - 0.2 * g

    def gap(f: torch.Tensor) -> float:
        d = torch.cdist(f, f)
        same = attack[:, None] == attack[None, :]
        pos = torch.where(same & ~torch.eye(8, dtype=torch.bool), d, torch.full_like(d, -1)).max(1).values
        neg = torch.where(~same, d, torch.full_like(d, 1e9)).min(1).values
        return float((pos - neg).mean())

    assert gap(f1) < gap(f0)
    # attention alone: live map → its CAM on live faces and → 0 on spoof faces (spoof map the reverse)
    live_t, spoof_t = method.attention_targets(batch)
    att = torch.nn.functional.mse_loss(model.live_map, live_t) + torch.nn.functional.mse_loss(model.spoof_map,
                                                                                                 spoof_t)
    g_live, g_spoof = torch.autograd.grad(att, [model.live_map, model.spoof_map])
    lm1, sm1 = model.live_map.detach() - 10 * g_live, model.spoof_map.detach() - 10 * g_spoof
    assert bool(((lm1 - live_t).abs() <= (model.live_map.detach() - live_t).abs()).all())
    assert bool(((sm1 - spoof_t).abs() <= (model.spoof_map.detach() - spoof_t).abs()).all())


# ====================================================================== RFMetaFAS (BCE + depth regulariser, meta)
def _rfmeta_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    label = torch.tensor([1, 0] * 6)
    return {"image": torch.randn(12, 3, 32, 32, generator=g),
            "target": torch.rand(12, 32, 32, generator=g) * label[:, None, None],
            "label": label, "domain": torch.arange(3).repeat_interleave(4)}


def _bce_by_hand(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    p = 1 / (1 + torch.exp(-z))
    return -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).sum() / len(y)


def test_rfmeta_aggregation_loss_matches_transcribed_formula() -> None:
    """Baseline (meta: false): L = Σ_domains [BCE(logit, y) + 10 · MSE(depth, target)], official loss weights."""
    torch.manual_seed(0)
    method = _method("rfmeta", meta=False)
    model = method.build_model().train()
    batch = _rfmeta_batch()
    ref_model = copy.deepcopy(model)
    out = method.training_loss(model, batch, Stage("main", 1))
    cls = dep = torch.zeros(())
    for d in range(3):
        keep = batch["domain"] == d
        multi, feat = ref_model.features(batch["image"][keep])
        cls = cls + _bce_by_hand(ref_model.classifier(feat), batch["label"][keep].float())
        depth = ref_model.depth(multi).squeeze(1)
        dep = dep + ((depth - batch["target"][keep]) ** 2).sum() / depth.numel()
    assert out["cls"].item() == pytest.approx(cls.item(), rel=1e-5)
    assert out["depth"].item() == pytest.approx(dep.item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx((cls + 10 * dep).item(), rel=1e-5)


def test_rfmeta_inner_step_lowers_the_meta_train_classification_loss() -> None:
    """θ' = θ − α ∇_θ L_cls: the adapted classifier fits the meta-train domain better (the direction of Alg. 1)."""
    from openfas.methods.meta import call_with, inner_update, named_params

    torch.manual_seed(1)
    method = _method("rfmeta")
    net = method.build_model().eval()  # eval: BN statistics fixed, so the two losses differ only by θ
    batch = _rfmeta_batch(1)
    keep = batch["domain"] == 0
    with torch.no_grad():
        _, feat = net.features(batch["image"][keep])
    y = batch["label"][keep].float()
    theta = named_params(net.classifier)
    loss = _bce_by_hand(net.classifier(feat), y)
    adapted = inner_update(theta, loss, 0.05, create_graph=False)
    after = _bce_by_hand(call_with(net.classifier, adapted, feat), y)
    assert after.item() < loss.item()
    # and the BCE step itself raises live logits and lowers spoof logits
    z = net.classifier(feat).detach().requires_grad_(True)
    (g,) = torch.autograd.grad(_bce_by_hand(z, y), z)
    assert bool(((-g) * (2 * y - 1) > 0).all())


# ====================================================================== CSDN (reconstruction; no official code)
def test_csdn_terms_match_written_out_formulas_and_move_the_right_way() -> None:
    from openfas.losses.recognition import cosine_distillation_loss, weighted_bidirectional_kl
    from openfas.ops.cosface import CosFaceHead

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 4, generator=g, requires_grad=True)
    w = torch.softmax(torch.randn(2, 3, generator=g), 1)
    # D(x) = Σ_{i<j} w_i w_j / Σ w_k w_l · ½ [KL(p_i‖p_j) + KL(p_j‖p_i)], averaged over the batch
    p = torch.softmax(logits.detach(), -1)
    expected = torch.zeros(())
    for n in range(2):
        pairs = [(0, 1), (0, 2), (1, 2)]
        norm = sum(float(w[n, i] * w[n, j]) for i, j in pairs)
        for i, j in pairs:
            kl_ij = (p[n, i] * (p[n, i] / p[n, j]).log()).sum()
            kl_ji = (p[n, j] * (p[n, j] / p[n, i]).log()).sum()
            expected = expected + float(w[n, i] * w[n, j]) / norm * 0.5 * (kl_ij + kl_ji)
    d = weighted_bidirectional_kl(logits, w)
    assert d.item() == pytest.approx(expected.item() / 2, rel=1e-5)
    # direction: one step makes the sub-decisions agree more (largest pairwise probability gap shrinks)
    (grad,) = torch.autograd.grad(d, logits)
    p1 = torch.softmax(logits.detach() - 1.0 * grad, -1)
    gap = lambda q: max(float((q[:, i] - q[:, j]).abs().max()) for i, j in [(0, 1), (0, 2), (1, 2)])  # noqa: E731
    assert gap(p1) < gap(p)
    # distillation: 1 − cos(student, teacher); a step raises the cosine, the teacher gets no gradient
    s = torch.randn(4, 8, generator=g, requires_grad=True)
    t = torch.randn(4, 8, generator=g, requires_grad=True)
    loss = cosine_distillation_loss(s, t)
    cos = (s * t).sum(1) / (s.norm(dim=1) * t.norm(dim=1))
    assert loss.item() == pytest.approx((1 - cos).mean().item(), rel=1e-5)
    gs, gt = torch.autograd.grad(loss, [s, t], allow_unused=True)
    assert gt is None or torch.count_nonzero(gt) == 0
    s1 = s.detach() - 1.0 * gs
    cos1 = (s1 * t.detach()).sum(1) / (s1.norm(dim=1) * t.detach().norm(dim=1))
    assert bool((cos1 > cos.detach()).all())
    # CosFace: s·(cos θ_j − m·[j = y]); a cross-entropy step raises cos θ_y relative to the other classes
    head = CosFaceHead(8, 3, s=16.0, m=0.3)
    e = torch.randn(5, 8, generator=g, requires_grad=True)
    y = torch.tensor([0, 1, 2, 0, 1])
    wn = head.weight.detach() / head.weight.detach().norm(dim=1, keepdim=True)
    cos_e = (e.detach() / e.detach().norm(dim=1, keepdim=True)) @ wn.t()
    onehot = torch.nn.functional.one_hot(y, 3).float()
    assert torch.allclose(head(e, y), 16.0 * (cos_e - 0.3 * onehot), atol=1e-5)
    (ge,) = torch.autograd.grad(torch.nn.functional.cross_entropy(head(e, y), y), e)
    e1 = e.detach() - 0.5 * ge
    cos_1 = (e1 / e1.norm(dim=1, keepdim=True)) @ wn.t()
    margin = lambda c: c[torch.arange(5), y] - (c - 9 * onehot).max(1).values  # noqa: E731
    assert bool((margin(cos_1) > margin(cos_e)).all())
