"""RFMetaFAS training (Shao et al., AAAI 2020, Algorithm 1; official code ``core/train.py``).

Per iteration, with one live+spoof batch from each of the N source domains (domain-balanced sampler):

1. shuffle the domains; ``meta_train_domains`` (2 of 3) are meta-train, the rest meta-test;
2. meta-train, for each meta-train domain i: L_cls(i) (BCE on the classifier logit) and L_dep(i) (MSE between
   the depth estimate and the depth / mask target — the domain-knowledge regulariser); an inner SGD step on the
   classifier's parameters only, θ_i' = θ − α ∇_θ L_cls(i) (``meta_step_size`` α = 1e-3), keeping the graph;
3. meta-test on the remaining domain(s): L_dep, and the classifier loss of EVERY adapted classifier θ_i';
4. L = Σ_i [L_cls(i) + W_d L_dep(i)] + W_mt · (Σ_i L_cls(θ_i', test) + W_d L_dep(test)), W_d = 10, W_mt = 1,
   back-propagated through the inner steps (second order) into the extractor, depth estimator and classifier.

``meta: false`` trains the same networks and losses by plain aggregation of the source domains (the baseline
of the evidence table): L = Σ_domains [L_cls + W_d L_dep].
Score = sigmoid(logit), higher = more live; the depth estimate is returned as the map.
"""

from __future__ import annotations

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
from openfas.models.rfmeta import RFMetaNet


class RFMetaParams(MethodParams):
    meta: bool = True  # False = plain aggregation of the source domains (baseline)
    meta_train_domains: int = 2  # official: 2 meta-train, 1 meta-test
    meta_step_size: float = 1e-3  # α of the inner step
    depth_weight: float = 10.0  # W_depth
    meta_test_weight: float = 1.0  # W_metatest


@register_method("rfmeta")
class RFMetaMethod(Method):
    Params = RFMetaParams
    params: RFMetaParams
    sampler = "domain_balanced"
    ddp_wrap = False  # the classifier is called with substituted weights; the engine averages gradients

    def _domain_terms(self, net: RFMetaNet, b: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        multi, feat = net.features(b["image"])
        depth = net.depth(multi).squeeze(1)
        dep = F.mse_loss(depth.float(), b["target"].float())
        return feat, dep, b["label"].float()

    def training_loss(self, model: nn.Module, batch: Batch, stage: Stage) -> dict[str, torch.Tensor]:
        net = unwrap_as(model, RFMetaNet, "rfmeta")
        p = self.params
        if not p.meta:
            cls_terms, dep_terms = [], []
            for d in sorted(torch.unique(batch["domain"]).tolist()):
                feat, dep, y = self._domain_terms(net, domain_batch(batch, d))
                cls_terms.append(F.binary_cross_entropy_with_logits(net.classifier(feat).float(), y))
                dep_terms.append(dep)
            cls_sum, dep_sum = tensor_sum(cls_terms), tensor_sum(dep_terms)
            loss = cls_sum + p.depth_weight * dep_sum
            return {"loss": loss, "cls": cls_sum.detach(), "depth": dep_sum.detach()}

        train_doms, test_doms = split_meta_domains(batch, p.meta_train_domains)
        theta = named_params(net.classifier)
        cls_trs, dep_trs, adapted = [], [], []
        for d in train_doms:
            feat, dep, y = self._domain_terms(net, domain_batch(batch, d))
            cls = F.binary_cross_entropy_with_logits(net.classifier(feat).float(), y)
            cls_trs.append(cls)
            dep_trs.append(dep)
            adapted.append(inner_update(theta, cls, p.meta_step_size, create_graph=torch.is_grad_enabled()))
        cls_tes, dep_tes = [], []
        for d in test_doms:
            feat, dep, y = self._domain_terms(net, domain_batch(batch, d))
            dep_tes.append(dep)
            for weights in adapted:
                logit = call_with(net.classifier, weights, feat, fresh_buffers=True)
                cls_tes.append(F.binary_cross_entropy_with_logits(logit.float(), y))
        cls_tr, dep_tr, cls_te, dep_te = map(tensor_sum, (cls_trs, dep_trs, cls_tes, dep_tes))
        meta_train = cls_tr + p.depth_weight * dep_tr
        meta_test = cls_te + p.depth_weight * dep_te
        loss = meta_train + p.meta_test_weight * meta_test
        return {"loss": loss, "cls_train": cls_tr.detach(), "depth_train": dep_tr.detach(),
                "cls_test": cls_te.detach(), "depth_test": dep_te.detach()}

    @torch.no_grad()
    def score(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        out = unwrap_model(model)(batch["image"])
        return {"score": torch.sigmoid(out["logit"].float()), "map": out["depth"].float()}
