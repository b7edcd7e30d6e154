"""LBP op and texture-baseline model: codes and histograms against hand-computed values and a plain loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from openfas.models import create_model
from openfas.ops.lbp import lbp_codes, transitions, uniform_histograms, uniform_lut


def test_code_of_a_hand_made_patch() -> None:
    # centre 6; neighbours clockwise from the top-left: 5 9 1 7 3 6 2 4 → [≥ 6] = 0 1 0 1 0 1 0 0 → 2 + 8 + 32
    g = torch.tensor([[[5.0, 9, 1], [4, 6, 7], [2, 6, 3]]])
    assert lbp_codes(g, 1).tolist() == [[[42]]]
    assert transitions(42) == 6  # 0→1→0→1→0→1→0→0: not uniform


def test_uniform_mapping_has_58_patterns_in_code_order() -> None:
    lut = uniform_lut()
    uniform = [c for c in range(256) if transitions(c) <= 2]
    assert len(uniform) == 58  # P(P − 1) + 2 for P = 8 neighbours
    assert lut[0] == 0 and lut[255] == 57 and lut[42] == 58
    assert [int(lut[c]) for c in uniform] == list(range(58))


def _loop_histograms(gray: np.ndarray, radius: int, grid: int) -> np.ndarray:
    """Independent reference: per-pixel loops, uniform test by counting bit changes directly."""
    h, w = gray.shape
    offsets = [(-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1)]
    uniform = [c for c in range(256) if sum(((c >> k) & 1) != ((c >> ((k + 1) % 8)) & 1) for k in range(8)) <= 2]
    index = {c: i for i, c in enumerate(uniform)}
    bins = np.zeros((h - 2 * radius, w - 2 * radius), np.int64)
    for i in range(radius, h - radius):
        for j in range(radius, w - radius):
            code = sum(1 << k for k, (dy, dx) in enumerate(offsets)
                       if gray[i + dy * radius, j + dx * radius] >= gray[i, j])
            bins[i - radius, j - radius] = index.get(code, 58)
    hists = [np.bincount(bins.ravel(), minlength=59) / bins.size]
    bh, bw = bins.shape
    for r in range(grid):
        for c in range(grid):
            # adaptive average pooling's cell bounds: floor(start), ceil(end)
            y0, y1 = (r * bh) // grid, -((-(r + 1) * bh) // grid)
            x0, x1 = (c * bw) // grid, -((-(c + 1) * bw) // grid)
            cell = bins[y0:y1, x0:x1]
            hists.append(np.bincount(cell.ravel(), minlength=59) / cell.size)
    return np.concatenate(hists)


@pytest.mark.parametrize("radius", [1, 2])
def test_histograms_match_a_plain_loop(radius: int) -> None:
    rng = np.random.default_rng(radius)
    gray = rng.integers(0, 6, size=(2, 17, 20)).astype(np.float32)  # few levels: many ties (≥ must count)
    got = uniform_histograms(lbp_codes(torch.from_numpy(gray), radius), uniform_lut(), grid=3).numpy()
    for b in range(2):
        np.testing.assert_allclose(got[b], _loop_histograms(gray[b], radius, 3), atol=1e-6)
    assert np.allclose(got[:, :59].sum(1), 1.0)


def _normalise(pixels: np.ndarray) -> torch.Tensor:
    """8-bit pixels (B×3×H×W) → the data pipeline's input, (p/255 − 0.5)/0.5."""
    return torch.from_numpy((pixels.astype(np.float32) / 255.0 - 0.5) / 0.5)


def test_features_ignore_brightness_contrast_and_gamma() -> None:
    model = create_model("lbp").eval()
    rng = np.random.default_rng(0)
    levels = np.array([10, 60, 90, 130, 200, 250])
    grey = levels[rng.integers(0, 6, size=(2, 1, 32, 32))]
    changed = np.round(20 + 200 * (grey / 255.0) ** 1.7)  # strictly increasing on these levels: 20…213, all distinct
    assert len(np.unique(changed)) == 6
    x, x_changed = _normalise(np.repeat(grey, 3, 1)), _normalise(np.repeat(changed, 3, 1))
    assert torch.equal(model.features(x), model.features(x_changed))
    assert not torch.equal(model.features(x), model.features(x.flip(-1)))  # yet it sees the texture


def test_model_rejects_wrong_channels_and_learns_a_texture_difference() -> None:
    torch.manual_seed(0)
    model = create_model("lbp")
    with pytest.raises(ValueError, match="3-channel"):
        model(torch.rand(1, 1, 32, 32))
    # one fixed batch: a cumulative average makes the eval statistics exactly that batch's, so eval mode scores
    # what training fitted. With momentum 0.1 the eval statistics still carried 4 % of the initial variance 1, and
    # the test failed (every sample called "print") when it ran after tests/test_fast_inference.py
    model.norm.momentum = None
    smooth = torch.nn.functional.avg_pool2d(torch.rand(32, 1, 36, 36), 5, 1).repeat(1, 3, 1, 1)  # blurred "print"
    sharp = torch.rand(32, 1, 32, 32).repeat(1, 3, 1, 1)  # fine grain "live"
    x, y = torch.cat([smooth, sharp]), torch.cat([torch.zeros(32), torch.ones(32)]).long()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    assert (model(x).argmax(1) == y).float().mean() == 1.0


def test_ycbcr_histograms_are_per_channel_loops_of_bt601() -> None:
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 4, size=(1, 3, 15, 18)) * 60  # few levels, many grey pixels: ties in every channel
    r, g, b = pixels[0].astype(np.int64)
    planes = [77 * r + 150 * g + 29 * b,  # BT.601 × 256 in integers: Y, Cb, Cr (offsets cannot change a code)
              -43 * r - 85 * g + 128 * b,
              128 * r - 107 * g - 21 * b]
    assert (planes[1][(r == g) & (g == b)] == 0).all()  # a grey pixel has no colour difference, exactly
    want = np.concatenate([_loop_histograms(p, radius, 2) for p in planes for radius in (1, 2)])
    model = create_model("lbp", colour="ycbcr", grid=2).eval()
    x = _normalise(pixels)
    got = model.features(x).numpy()[0]
    assert got.shape == want.shape == (3 * 2 * 5 * 59,)
    np.testing.assert_allclose(got, want, atol=1e-6)
    # a faint blue pattern (+3 levels of B here and there) changes the chroma codes
    tinted = pixels.copy()
    tinted[0, 2] = np.clip(tinted[0, 2] + rng.integers(0, 2, size=(15, 18)) * 3, 0, 255)
    assert not np.allclose(model.features(_normalise(tinted)).numpy()[0, 59 * 10:], got[59 * 10:])


def test_ycbcr_features_ignore_a_uniform_gain_of_the_light() -> None:
    model = create_model("lbp", colour="ycbcr").eval()
    pixels = np.random.default_rng(1).integers(0, 128, size=(2, 3, 24, 24)) * 2  # even: halving stays exact
    assert torch.equal(model.features(_normalise(pixels)), model.features(_normalise(pixels // 2)))
    tinted = pixels * np.array([1.0, 0.8, 0.6]).reshape(1, 3, 1, 1)  # a colour cast is NOT ignored
    assert not torch.equal(model.features(_normalise(pixels)), model.features(_normalise(np.round(tinted))))


def test_colour_lbp_exports_to_onnx_with_the_same_codes(tmp_path) -> None:  # noqa: ANN001
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(3)
    pixels = np.repeat(rng.integers(0, 256, size=(4, 1, 40, 40)), 3, 1)  # grey pixels: Cb = Cr = 0 exactly
    pixels[:2, :, ::3] = rng.integers(0, 256, size=(2, 3, 14, 40))  # and some coloured rows
    x = _normalise(pixels)
    torch.manual_seed(0)
    model = create_model("lbp", colour="ycbcr").eval()
    torch.nn.init.normal_(model.classifier.weight, std=5.0)  # large weights: one flipped bit would show
    path = tmp_path / "lbp.onnx"
    torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17, input_names=["input"],
                      dynamic_axes={"input": {0: "batch"}})
    got = ort.InferenceSession(str(path)).run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(got, model(x).detach().numpy(), rtol=1e-5, atol=1e-4)


def test_colour_option_is_checked() -> None:
    with pytest.raises(ValueError, match="colour must be one of"):
        create_model("lbp", colour="hsv")
    with pytest.raises(ValueError, match="needs RGB"):
        create_model("lbp", colour="ycbcr", in_channels=1)


@pytest.mark.parametrize("radius", [1, 2])
def test_binary_pattern_planes_are_the_bits_of_the_lbp_code(radius: int) -> None:
    from openfas.ops.lbp import binary_pattern_planes

    torch.manual_seed(radius)
    planes = torch.randint(0, 5, (2, 3, 12, 13)).float()  # ties on purpose: "≥" must give +1
    bits = binary_pattern_planes(planes, radius)
    assert bits.shape == (2, 24, 12, 13) and set(bits.unique().tolist()) <= {-1.0, 1.0}
    r = radius
    for c in range(3):
        code = sum(((bits[:, 8 * c + k] + 1) / 2).long() << k for k in range(8))[:, r:-r, r:-r]
        assert torch.equal(code, lbp_codes(planes[:, c], radius))
    # at the border a missing neighbour is the edge pixel repeated: top-left corner, neighbour (-1, -1) → itself
    assert torch.all(bits[:, 0::8, 0, 0] == 1)


def test_binary_pattern_planes_ignore_an_increasing_change_of_each_channel() -> None:
    from openfas.ops.lbp import binary_pattern_planes

    torch.manual_seed(0)
    planes = torch.rand(2, 3, 16, 16) + 0.1
    relit = torch.stack([planes[:, 0] ** 2.2, 0.6 * planes[:, 1] - 3, torch.exp(planes[:, 2])], 1)
    assert torch.equal(binary_pattern_planes(planes), binary_pattern_planes(relit))


def test_lbp_input_code_makes_cnns_blind_to_the_level_of_the_light() -> None:
    pixels = np.random.default_rng(0).integers(0, 128, size=(2, 3, 32, 32)) * 2
    x, darker = _normalise(pixels), _normalise(pixels // 2)  # half the light: Y, Cb, Cr all halve, exactly
    for name in ("pixelnet", "cdcn"):
        model = create_model(name, input_code="lbp", map_size=8).eval()
        plain = create_model(name, map_size=8).eval()
        with torch.no_grad():
            assert torch.equal(model.encode(x), model.encode(darker))  # the network's only view of the pixels
            assert torch.equal(model(x), model(darker))
            assert not torch.equal(model.encode(x), model.encode(x.flip(-1)))  # yet it sees the texture
            assert not torch.allclose(plain.encode(x), plain.encode(darker))  # the pixel model sees the change
    with pytest.raises(ValueError, match="input_code must be one of"):
        create_model("pixelnet", input_code="hsv")
    with pytest.raises(ValueError, match="needs RGB"):
        create_model("cdcn", input_code="lbp", in_channels=1)


def test_lbp_input_code_exports_to_onnx(tmp_path) -> None:  # noqa: ANN001
    ort = pytest.importorskip("onnxruntime")
    model = create_model("pixelnet", input_code="lbp", map_size=8, width=8).eval()
    x = torch.rand(1, 3, 32, 32)
    path = tmp_path / "m.onnx"
    torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17, input_names=["input"])
    got = ort.InferenceSession(str(path)).run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(got, model(x).detach().numpy(), atol=1e-4)
