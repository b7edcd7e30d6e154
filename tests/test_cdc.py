"""Central difference convolution (Yu et al. CVPR 2020, Eq. (3)) and deployment folding."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from openfas.ops import CDConv2d, SpatialAttention, TwoConvCDC, cdc_kernel, fuse_model

TOL = dict(rtol=0, atol=1e-10)


def two_conv(x: torch.Tensor, w: torch.Tensor, theta: float, stride: int = 1, padding: int = 1) -> torch.Tensor:
    """The official two-convolution form: conv(x, w) − θ·conv(x, Σ_spatial w as a 1×1 kernel)."""
    w_sum = w.sum(dim=(2, 3), keepdim=True)
    return F.conv2d(x, w, stride=stride, padding=padding) - theta * F.conv2d(x, w_sum, stride=stride)


def eq3_loop(x: torch.Tensor, w: torch.Tensor, theta: float) -> torch.Tensor:
    """Eq. (3) written out: θ·Σ w(p_n)(x(p0+p_n) − x(p0)) + (1−θ)·Σ w(p_n)x(p0+p_n), 3×3, zero padding 1."""
    xp = F.pad(x, (1, 1, 1, 1))
    h, wd = x.shape[-2:]
    out = torch.zeros(x.shape[0], w.shape[0], h, wd, dtype=x.dtype)
    centre = x
    for i in range(3):
        for j in range(3):
            nb = xp[:, :, i:i + h, j:j + wd]
            term = theta * (nb - centre) + (1 - theta) * nb
            out += torch.einsum("oc,bchw->bohw", w[:, :, i, j], term)
    return out


@pytest.mark.parametrize("theta", [0.0, 0.3, 0.7, 1.0])
@pytest.mark.parametrize("stride,size", [(1, (9, 7)), (2, (11, 8)), (2, (6, 6))])
def test_matches_two_conv_form(theta: float, stride: int, size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    conv = CDConv2d(4, 5, stride=stride, theta=theta).double()
    x = torch.randn(2, 4, *size, dtype=torch.float64)
    torch.testing.assert_close(conv(x), two_conv(x, conv.weight, theta, stride=stride), **TOL)


def test_matches_equation_3_directly() -> None:
    torch.manual_seed(1)
    conv = CDConv2d(3, 4, theta=0.7).double()
    x = torch.randn(2, 3, 6, 5, dtype=torch.float64)
    torch.testing.assert_close(conv(x), eq3_loop(x, conv.weight, 0.7), **TOL)


def test_theta_zero_is_plain_conv() -> None:
    torch.manual_seed(2)
    conv = CDConv2d(3, 4, theta=0.0).double()
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight, padding=1), **TOL)


def test_hand_computed_value() -> None:
    # 1 channel, all-ones kernel (Σw = 9), θ = 0.5, input 3×3 with 1..9: centre output = 45 − 0.5·9·5 = 22.5;
    # top-left (zero padded) = (1+2+4+5) − 0.5·9·1 = 7.5.
    conv = CDConv2d(1, 1, theta=0.5).double()
    with torch.no_grad():
        conv.weight.fill_(1.0)
    x = torch.arange(1, 10, dtype=torch.float64).view(1, 1, 3, 3)
    y = conv(x)
    assert y[0, 0, 1, 1].item() == pytest.approx(22.5, abs=1e-12)
    assert y[0, 0, 0, 0].item() == pytest.approx(7.5, abs=1e-12)


def test_gradients_match_two_conv_form() -> None:
    torch.manual_seed(3)
    conv = CDConv2d(3, 4, stride=2, theta=0.7).double()
    w2 = conv.weight.detach().clone().requires_grad_(True)
    x1 = torch.randn(2, 3, 9, 9, dtype=torch.float64, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    g = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    (conv(x1) * g).sum().backward()
    (two_conv(x2, w2, 0.7, stride=2) * g).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, **TOL)
    torch.testing.assert_close(conv.weight.grad, w2.grad, **TOL)


def test_one_by_one_is_scaled_conv_and_even_kernel_rejected() -> None:
    torch.manual_seed(4)
    conv = CDConv2d(3, 2, kernel_size=1, padding=0, theta=0.7).double()
    x = torch.randn(1, 3, 5, 5, dtype=torch.float64)
    torch.testing.assert_close(conv(x), 0.3 * F.conv2d(x, conv.weight), **TOL)
    with pytest.raises(ValueError, match="odd kernel"):
        CDConv2d(3, 2, kernel_size=2)
    with pytest.raises(ValueError, match="theta"):
        CDConv2d(3, 2, theta=1.5)


def test_five_by_five_same_padding_matches_two_conv() -> None:
    torch.manual_seed(5)
    conv = CDConv2d(2, 3, kernel_size=5, padding=2, stride=2, theta=0.6).double()
    x = torch.randn(1, 2, 9, 10, dtype=torch.float64)
    torch.testing.assert_close(conv(x), two_conv(x, conv.weight, 0.6, stride=2, padding=2), **TOL)


def test_kernel_fold_by_hand() -> None:
    w = torch.arange(9, dtype=torch.float64).view(1, 1, 3, 3)  # Σw = 36
    k = cdc_kernel(w, 0.5)
    expected = w.clone()
    expected[0, 0, 1, 1] = 4 - 0.5 * 36
    torch.testing.assert_close(k, expected, **TOL)


def test_two_conv_reference_module() -> None:
    torch.manual_seed(6)
    ref = TwoConvCDC(3, 4, stride=2, theta=0.7).double()
    one = CDConv2d(3, 4, stride=2, theta=0.7).double()
    with torch.no_grad():
        one.weight.copy_(ref.conv.weight)
    x = torch.randn(2, 3, 7, 9, dtype=torch.float64)
    torch.testing.assert_close(one(x), ref(x), **TOL)


def test_fuse_gives_plain_conv_with_same_output() -> None:
    torch.manual_seed(7)
    conv = CDConv2d(3, 4, stride=2, theta=0.7, bias=True).double()
    fused = conv.fuse()
    assert type(fused) is nn.Conv2d
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64)
    torch.testing.assert_close(fused(x), conv(x), **TOL)
    torch.testing.assert_close(fused(x), two_conv(x, conv.weight, 0.7, stride=2) + conv.bias.view(1, -1, 1, 1),
                               **TOL)


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(CDConv2d(3, 8), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Sequential(CDConv2d(8, 8, stride=2), nn.BatchNorm2d(8), nn.ReLU()),
                                  nn.Conv2d(8, 6, 3, padding=1), nn.BatchNorm2d(6))
        self.att = SpatialAttention(3)
        self.last = CDConv2d(6, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.body(x)
        return self.last(self.att(f) * f)


def test_fuse_model_equal_output_and_structure() -> None:
    torch.manual_seed(8)
    net = _Net().double()
    net.train()
    for _ in range(3):  # give the BNs non-trivial running statistics
        net(torch.randn(4, 3, 12, 12, dtype=torch.float64))
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    net.eval()
    fused = fuse_model(net)
    assert not any(isinstance(m, (CDConv2d, nn.BatchNorm2d)) for m in fused.modules())
    assert any(isinstance(m, CDConv2d) for m in net.modules()), "fuse_model must not change its input"
    assert not fused.training
    x = torch.randn(2, 3, 12, 12, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), net(x), **TOL)


def test_spatial_attention_formula() -> None:
    torch.manual_seed(9)
    sa = SpatialAttention(5).double()
    x = torch.randn(2, 6, 7, 7, dtype=torch.float64)
    pooled = torch.stack([x.mean(1), x.max(1).values], dim=1)
    expected = 1 / (1 + torch.exp(-F.conv2d(pooled, sa.conv.weight, padding=2)))
    torch.testing.assert_close(sa(x), expected, **TOL)
    with pytest.raises(ValueError):
        SpatialAttention(4)
