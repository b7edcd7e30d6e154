"""ANRL training (Liu et al., ACM MM 2021; official TFace ``ANRL/train.py`` and ``configs/*.yaml``).

Per iteration (domain-balanced batch, live and spoof of every source domain):

* meta-train on ``meta_train_domains`` random source domains (2 of 3): for each, cross-entropy, depth MSE
  (weight 0.1) and the Dual Calibration Constraints on the globally pooled 384-d representation f;
* inner step on the adaptive-normalisation gates of the feature extractor only:
  φ' = φ − α ∇_φ L_mtrn (``meta_step_size`` α = 1e-4), keeping the graph;
* meta-test on the remaining domain(s) with φ', same losses; L = L_mtrn + L_mte, one backward (second order).

Dual Calibration Constraints: per source domain d a running centre of live features c⁺_d and of spoof features
c⁻_d (EMA, c ← 0.9 c + 0.1 mean(f), detached; reset to 1 at every epoch, as the official code does), and
D(f, c) = mean over samples and dimensions of (f − c)² (TFace's ``EuclideanLoss``); f⁺ / f⁻ are the live / spoof
features of domain d in the batch.

* Inter-Domain Compatible loss: L_IDC = mean_{k≠d} D(f⁺, c⁺_k) − D(f⁺, c⁺_d)  (weight 0.001; official
  ``AB_loss / 2 − AA_loss``, identical with 3 source domains);
* Inter-Class Separable loss (``ics_form``, weight 0.001):

  - ``"separating"`` (default): L_ICS = D(f⁺, c⁺_d) − D(f⁺, c⁻_d) − D(f⁻, c⁺_d). A gradient step moves every
    live feature along c⁺_d − c⁻_d (towards its own centre's side, away from the spoof centre) and pushes spoof
    features away from the live centre, which is what the paper says the loss is for (inter-class separability);
  - ``"official_code"``: L_ICS = D(f⁺, c⁻_d) + D(f⁻, c⁺_d) − D(f⁺, c⁺_d), the exact negative, as the TFace
    ``train.py`` ``compute_losses`` stored at commit 3d5203e5 combines its terms (``RF + FR − RR``). A step
    moves live features along c⁻_d − c⁺_d and spoof features towards the live centre; kept for bit-faithful
    reproduction of the released code. See docs/faithfulness.md.

``meta: false`` trains the same losses by plain aggregation of domains (baseline).
Score = softmax(logits)[live].
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from openfas.methods.base import Batch, Method, MethodParams, Stage, register_method, unwrap_as, unwrap_model
from openfas.methods.meta import (
    call_with,
    domain_batch,
    inner_update,
    named_params,
    split_meta_domains,
    tensor_sum,
)
from openfas.models.anrl import ANRLNet


class ANRLParams(MethodParams):
    meta: bool = True
    meta_train_domains: int = 2  # "metasize"
    meta_step_size: float = 1e-4
    depth_weight: float = 0.1  # loss_2.weight (MSE)
    domain_weight: float = 0.001  # loss_3.domain_weight (inter-domain compatible)
    discri_weight: float = 0.001  # loss_3.discri_weight (inter-class separable)
    # "separating": RR − RF − FR (minimising separates the classes, the paper's stated purpose);
    # "official_code": RF + FR − RR as TFace train.py combines them (see the module docstring)
    ics_form: Literal["separating", "official_code"] = "separating"
    center_momentum: float = 0.9


def center_distance(feat: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between every row of ``feat`` (N×D) and ``center`` (D) — TFace's EuclideanLoss."""
    return ((feat - center.unsqueeze(0)) ** 2).mean()


def inter_class_separable(rr: torch.Tensor, rf: torch.Tensor, fr: torch.Tensor,
                          form: str = "separating") -> torch.Tensor:
    """L_ICS from RR = D(f⁺, c⁺_d), RF = D(f⁺, c⁻_d), FR = D(f⁻, c⁺_d) (see the module docstring)."""
    if form == "separating":
        return rr - rf - fr
    if form == "official_code":
        return rf + fr - rr
    raise ValueError(f"method.ics_form={form!r}: use 'separating' or 'official_code'")


@register_method("anrl")
class ANRLMethod(Method):
    Params = ANRLParams
    params: ANRLParams
    sampler = "domain_balanced"
    ddp_wrap = False

    def __init__(self, cfg: Any, params: MethodParams) -> None:
        super().__init__(cfg, params)
        self.center_live: torch.Tensor | None = None
        self.center_spoof: torch.Tensor | None = None

    # --------------------------------------------------------------- centres
    def on_epoch_start(self, stage: Stage, epoch: int, resumed_mid_epoch: bool) -> None:
        if not resumed_mid_epoch:
            self.center_live = self.center_spoof = None  # re-initialised to ones on first use

    def state_dict(self) -> dict[str, Any]:
        if self.center_live is None or self.center_spoof is None:
            return {}
        return {"center_live": self.center_live.detach().cpu(), "center_spoof": self.center_spoof.detach().cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.center_live = state.get("center_live")
        self.center_spoof = state.get("center_spoof")

    def _centers(self, n_domains: int, dim: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        live, spoof = self.center_live, self.center_spoof
        if live is None or spoof is None or live.shape[0] < n_domains:
            live, spoof = torch.ones(n_domains, dim), torch.ones(n_domains, dim)
        live, spoof = live.to(device), spoof.to(device)
        self.center_live, self.center_spoof = live, spoof
        return live, spoof

    # --------------------------------------------------------------- losses
    def _domain_losses(self, out: dict[str, torch.Tensor], b: Batch, d: int, n_domains: int) -> dict[str, torch.Tensor]:
        p = self.params
        ce = F.cross_entropy(out["logits"].float(), b["label"])
        dep = F.mse_loss(out["depth"].float(), b["target"].float())
        pooled = out["feat"].float().mean(dim=(2, 3))
        live, spoof = pooled[b["label"] == 1], pooled[b["label"] == 0]
        c_live, c_spoof = self._centers(n_domains, pooled.shape[1], pooled.device)
        m = p.center_momentum
        with torch.no_grad():
            c_live[d] = c_live[d] * m + live.mean(0) * (1 - m)
            c_spoof[d] = c_spoof[d] * m + spoof.mean(0) * (1 - m)
        own = center_distance(live, c_live[d])
        others = [center_distance(live, c_live[k]) for k in range(n_domains) if k != d]
        idc = (torch.stack(others).mean() if others else own.new_zeros(())) - own
        ics = inter_class_separable(own, center_distance(live, c_spoof[d]), center_distance(spoof, c_live[d]),
                                    p.ics_form)
        return {"ce": ce, "depth": dep, "idc": idc, "ics": ics}

    def _total(self, terms: list[dict[str, torch.Tensor]]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        p = self.params
        s = {k: tensor_sum(t[k] for t in terms) for k in ("ce", "depth", "idc", "ics")}
        total = s["ce"] + p.depth_weight * s["depth"] + p.domain_weight * s["idc"] + p.discri_weight * s["ics"]
        return total, s

    def training_loss(self, model: nn.Module, batch: Batch, stage: Stage) -> dict[str, torch.Tensor]:
        net = unwrap_as(model, ANRLNet, "anrl")
        p = self.params
        n_domains = int(batch["domain"].max().item()) + 1
        doms = sorted(int(d) for d in torch.unique(batch["domain"]).tolist())
        if not p.meta:
            terms = []
            for d in doms:
                b = domain_batch(batch, d)
                terms.append(self._domain_losses(net(b["image"]), b, d, n_domains))
            loss, s = self._total(terms)
            return {"loss": loss, **{k: v.detach() for k, v in s.items()}}
        train_doms, test_doms = split_meta_domains(batch, p.meta_train_domains)
        tr_terms = []
        for d in train_doms:
            b = domain_batch(batch, d)
            tr_terms.append(self._domain_losses(net(b["image"]), b, d, n_domains))
        loss_tr, s_tr = self._total(tr_terms)
        gates = named_params(net.extractor, lambda n: ".gate." in n)
        adapted = inner_update(gates, loss_tr, p.meta_step_size, create_graph=torch.is_grad_enabled()) if gates else {}
        te_terms = []
        for d in test_doms:
            b = domain_batch(batch, d)
            feat = call_with(net.extractor, adapted, net.to_input(b["image"]))
            te_terms.append(self._domain_losses(net.heads(feat), b, d, n_domains))
        loss_te, s_te = self._total(te_terms)
        out = {"loss": loss_tr + loss_te}
        out.update({f"{k}_train": v.detach() for k, v in s_tr.items()})
        out.update({f"{k}_test": v.detach() for k, v in s_te.items()})
        return out

    @torch.no_grad()
    def score(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        out = unwrap_model(model)(batch["image"])
        return {"score": torch.softmax(out["logits"].float(), 1)[:, 1], "map": out["depth"].float()}
