"""CSDN / CosFace losses and the recognition nets, each checked against an independent computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Categorical, kl_divergence

from openfas.losses.recognition import (
    consistency_value,
    cosine_distillation_loss,
    weighted_bidirectional_kl,
)
from openfas.models import create_model
from openfas.ops.cosface import CosFaceHead


def test_cosface_logits_follow_the_formula() -> None:
    torch.manual_seed(0)
    head = CosFaceHead(8, 5, s=30.0, m=0.4)
    emb = torch.randn(6, 8)
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    logits = head(emb, labels)
    e, w = emb.numpy(), head.weight.detach().numpy()
    for n in range(6):
        for c in range(5):
            cos = float(e[n] @ w[c] / (np.linalg.norm(e[n]) * np.linalg.norm(w[c])))
            want = 30.0 * (cos - 0.4) if c == labels[n] else 30.0 * cos
            assert logits[n, c].item() == pytest.approx(want, abs=1e-4)


def test_weighted_bidirectional_kl_matches_torch_distributions() -> None:
    torch.manual_seed(1)
    n_branch, classes, batch = 3, 7, 4
    logits = torch.randn(batch, n_branch, classes) * 2
    weights = torch.softmax(torch.randn(batch, n_branch), 1)
    got = weighted_bidirectional_kl(logits, weights, temperature=2.0, reduce=False)
    for b in range(batch):
        dists = [Categorical(logits=logits[b, i] / 2.0) for i in range(n_branch)]
        num, den = 0.0, 0.0
        for i in range(n_branch):
            for j in range(i + 1, n_branch):
                wij = float(weights[b, i] * weights[b, j])
                sym = 0.5 * (kl_divergence(dists[i], dists[j]) + kl_divergence(dists[j], dists[i]))
                num += wij * float(sym)
                den += wij
        assert got[b].item() == pytest.approx(num / den, rel=1e-5)
    assert weighted_bidirectional_kl(logits, weights, 2.0).item() == pytest.approx(got.mean().item(), rel=1e-6)


def test_identical_sub_decisions_have_zero_divergence_and_full_consistency() -> None:
    logits = torch.randn(3, 1, 6).repeat(1, 3, 1)
    d = weighted_bidirectional_kl(logits, torch.full((3, 3), 1 / 3), reduce=False)
    assert torch.allclose(d, torch.zeros(3), atol=1e-6)
    assert torch.allclose(consistency_value(d), torch.ones(3))
    c = consistency_value(torch.tensor([0.0, 0.5, 3.0]), "exp")
    assert torch.allclose(c, torch.tensor([1.0, math.exp(-0.5), math.exp(-3.0)]))
    t = consistency_value(torch.tensor([0.0, 0.5]), "tanh")
    assert torch.allclose(t, torch.tensor([1.0, 1 - math.tanh(0.5)]))
    assert ((c > 0) & (c <= 1)).all()


def test_cosine_distillation_loss_and_shape_check() -> None:
    s = torch.tensor([[1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    t = torch.tensor([[2.0, 0.0], [1.0, 0.0]])
    loss = cosine_distillation_loss(s, t)
    assert loss.item() == pytest.approx((0.0 + 1.0) / 2)
    loss.backward()
    assert s.grad is not None
    with pytest.raises(ValueError, match="differ in shape"):
        cosine_distillation_loss(torch.zeros(2, 3), torch.zeros(2, 4))


@pytest.mark.parametrize("name", ["iresnet", "csdn"])
def test_recognition_nets_shapes_and_weights(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, image_size=32, num_classes=5, embedding_dim=16, depth=None, layers=(1, 1),
                         widths=(8, 16)).eval()
    out = model(torch.randn(3, 3, 32, 32))
    n = 1 if name == "iresnet" else 3
    assert out.embedding.shape == (3, 16) and out.branch_embeddings.shape == (3, n, 16)
    assert out.cosine.shape == (3, 5) and out.branch_cosine.shape == (3, n, 5)
    assert torch.allclose(out.weights.sum(1), torch.ones(3), atol=1e-6)
    assert torch.allclose(out.embedding, (out.weights.unsqueeze(-1) * out.branch_embeddings).sum(1), atol=1e-5)
    cos = F.normalize(out.embedding, dim=1) @ F.normalize(model.head.weight, dim=1).t()
    assert torch.allclose(out.cosine, cos, atol=1e-5)


def test_csdn_needs_several_dropout_blocks() -> None:
    with pytest.raises(ValueError, match=">= 2 dropout_rates"):
        create_model("csdn", image_size=32, num_classes=3, dropout_rates=(0.5,), depth=None, layers=(1,), widths=(8,))


def test_band_regions_restrict_each_sub_decision_to_its_rows() -> None:
    torch.manual_seed(0)
    model = create_model("csdn", image_size=64, num_classes=4, embedding_dim=8, depth=None, layers=(1, 1, 1, 1),
                         widths=(4, 4, 4, 4), concept_hidden=8, regions="bands").eval()
    c, h, w = model.feature_shape
    f = torch.randn(2, c * h * w)
    g = f.view(2, c, h, w).clone()
    g[:, :, -1] += 5.0  # change only the bottom row of the feature map (chin / mouth)
    model.features = lambda x: f if x.sum() > 0 else g.flatten(1)  # type: ignore[method-assign]
    a, b = model(torch.ones(2, 3, 64, 64)), model(-torch.ones(2, 3, 64, 64))
    assert torch.allclose(a.branch_embeddings[:, 0], b.branch_embeddings[:, 0])  # top band: eyes
    assert not torch.allclose(a.branch_embeddings[:, 2], b.branch_embeddings[:, 2])  # bottom band
    with pytest.raises(ValueError, match="regions="):
        create_model("csdn", image_size=32, num_classes=3, depth=None, layers=(1,), widths=(8,), regions="grid")
