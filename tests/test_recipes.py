"""Training recipes against the official code: input colour spaces, initialisation, augmentation, configs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from openfas.config import ConfigError, load_config
from openfas.data.transforms import RandomRelight, build_color_transform, build_transform, relight
from openfas.models import create_model
from openfas.ops.color import AppendHSV

torch.set_num_threads(1)


def _rgb_image(seed: int = 0, size: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_rfmeta_input_is_rgb_and_pil_hsv_in_unit_range() -> None:
    """RFMetaFAS official: PIL RGB and PIL HSV through ToTensor (uint8 / 255), no normalisation."""
    rgb = _rgb_image()
    pil_hsv = np.asarray(Image.fromarray(rgb).convert("HSV")).astype(np.float64) / 255.0
    x = (torch.from_numpy(rgb).permute(2, 0, 1)[None].double() / 255.0 - 0.5) / 0.5
    model = create_model("rfmeta", map_size=8).double()
    out = model.to_input(x)[0].permute(1, 2, 0).numpy()
    assert out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_allclose(out[..., :3], rgb / 255.0, atol=1e-12)
    # PIL rounds to 8 bits: within one level (hue wraps around at 0/1)
    diff = np.abs(out[..., 3:] - pil_hsv)
    diff[..., 0] = np.minimum(diff[..., 0], 1.0 - diff[..., 0])
    assert diff.max() <= 1.0 / 255 + 1e-9


def test_anrl_hsv_uses_opencv_hue_range_and_half_normalisation() -> None:
    """ANRL official: cv2.COLOR_BGR2HSV (H = angle/2 in [0, 180)), then (v/255 − 0.5)/0.5 like the RGB."""
    rgb = _rgb_image(1)
    cv_hsv = cv2.cvtColor(rgb[:, :, ::-1].copy(), cv2.COLOR_BGR2HSV).astype(np.float64)
    expected = (cv_hsv / 255.0 - 0.5) / 0.5
    x = (torch.from_numpy(rgb).permute(2, 0, 1)[None].double() / 255.0 - 0.5) / 0.5
    out = AppendHSV(0.5, 0.5, hue="opencv")(x)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(out[..., :3], x[0].permute(1, 2, 0).numpy(), atol=1e-12)
    diff = np.abs(out[..., 3:] - expected)
    diff[..., 0] = np.minimum(diff[..., 0], 2 * 180 / 255 - diff[..., 0])  # hue wraps at 180/255 (×2 after norm)
    assert diff.max() <= 2.0 / 255 + 1e-9  # OpenCV rounds H to 1 of 180 and S, V to 8 bits
    assert create_model("anrl", map_size=8).to_input.hue_factor == pytest.approx(180 / 255)


def test_anrl_official_init_leaves_gates_and_conv_biases_at_pytorch_defaults() -> None:
    torch.manual_seed(0)
    model = create_model("anrl", map_size=8)
    gate = model.extractor.block1[0].norm.gate[0]
    # PyTorch's default Linear init is U(−1/√fan_in, 1/√fan_in): non-zero bias, weights inside that bound
    bound = 1 / gate.in_features ** 0.5
    assert gate.bias.abs().max() > 0 and gate.weight.abs().max() <= bound
    conv = model.extractor.block1[0].conv
    assert conv.bias.abs().max() > 0  # default conv bias, not zeroed
    fan_in = conv.weight[0].numel()
    assert conv.weight.std().item() == pytest.approx((2 / fan_in) ** 0.5, rel=0.1)  # Kaiming normal, gain √2
    fc = model.classifier.fc
    assert torch.equal(fc.bias, torch.zeros_like(fc.bias))
    assert fc.weight.std().item() == pytest.approx((2 / fc.in_features) ** 0.5, rel=0.15)
    old = create_model("anrl", map_size=8, init="kaiming_all")
    assert torch.equal(old.extractor.block1[0].norm.gate[0].bias, torch.zeros(gate.out_features))


def test_augmentation_recipes() -> None:
    img = _rgb_image(2, 64)
    mask = np.full((64, 64), 255, np.uint8)
    # rfmeta / none: resize only
    for recipe in ("rfmeta", "none"):
        t = build_transform(32, True, recipe=recipe)
        assert np.array_equal(t(image=img, mask=mask)["image"], cv2.resize(img, (32, 32)))
        assert build_color_transform(True, recipe) is None
    # anrl: the image is either unchanged or mirrored (no affine); HSV jitter with p 0.1
    t = build_transform(64, True, recipe="anrl")
    seen = set()
    for seed in range(12):
        t.set_random_seed(seed)
        out = t(image=img, mask=mask)["image"]
        seen.add("same" if np.array_equal(out, img) else "flip" if np.array_equal(out, img[:, ::-1]) else "other")
    assert seen == {"same", "flip"}
    hsv = build_color_transform(True, "anrl").transforms[0]
    assert type(hsv).__name__ == "HueSaturationValue" and hsv.p == pytest.approx(0.1)
    # cdcn: cutout always, erasing sometimes; both leave the target map untouched
    t = build_transform(64, True, recipe="cdcn")
    for seed in range(5):
        t.set_random_seed(seed)
        out = t(image=np.full((64, 64, 3), 200, np.uint8), mask=mask)
        assert (out["image"] == 0).all(-1).any()
        assert (out["mask"] == 255).all()
    # geometric: "real"'s crop/flip/rotation moves image and target together, and no pixel value is invented
    assert build_color_transform(True, "geometric") is None
    flat = np.full((64, 64, 3), 77, np.uint8)
    t = build_transform(32, True, recipe="geometric")
    for seed in range(5):
        t.set_random_seed(seed)
        out = t(image=flat, mask=mask)
        assert out["image"].shape == (32, 32, 3) and (out["image"] == 77).all() and (out["mask"] == 255).all()
    t.set_random_seed(0)
    moved = [t(image=img, mask=mask)["image"] for _ in range(3)]
    assert not all(np.array_equal(moved[0], m) for m in moved[1:])


def _face_like(seed: int, gains: tuple[float, float, float], size: int = 48) -> np.ndarray:
    """A textured crop under a light given by per-channel gains (values stay inside 0–255, no clipping)."""
    tex = np.random.default_rng(seed).uniform(0.3, 0.9, (size, size, 1)) * np.array([0.8, 0.9, 1.0])
    return np.rint(tex * np.array(gains) * 255).astype(np.uint8)


def test_relight_sets_the_face_light_and_forgets_the_input_light() -> None:
    img = _face_like(0, (0.3, 0.5, 0.9))  # a dark, blue-cast crop
    out = relight(img, 128.0)
    centre = out[12:36, 12:36].reshape(-1, 3).astype(np.float64).mean(0)
    assert np.abs(centre - 128.0).max() < 0.6  # grey-balanced at the asked brightness (rounding only)
    # a chroma of (u_B, u_G, u_R): channel means in the ratio exp(u - mean(u)), geometric mean = brightness
    out = relight(img, 100.0, chroma=(0.2, 0.0, -0.2))
    centre = out[12:36, 12:36].reshape(-1, 3).astype(np.float64).mean(0)
    np.testing.assert_allclose(centre, 100.0 * np.exp(np.array([0.2, 0.0, -0.2])), atol=0.6)
    # the same scene under another exposure and white balance relights to the same crop (up to 8-bit rounding)
    other = _face_like(0, (0.9, 0.6, 0.35))
    assert np.abs(relight(img, 128.0).astype(int) - relight(other, 128.0).astype(int)).max() <= 2
    # gamma acts before the gains: a crop relit with gamma 2 has the contrast of x², not of x
    x = _face_like(1, (1.0, 1.0, 1.0)).astype(np.float64) / 255
    want = x[..., 0] ** 2 / (x[12:36, 12:36, 0] ** 2).mean() * 128
    got = relight(_face_like(1, (1.0, 1.0, 1.0)), 128.0, gamma=2.0)[..., 0]
    assert np.abs(got - np.clip(np.rint(want), 0, 255)).max() <= 1.5
    # noise: its sd is the asked one (on a flat grey crop, away from the clipping bounds)
    flat = np.full((200, 200, 3), 100, np.uint8)
    noisy = relight(flat, 128.0, noise_std=5.0, rng=np.random.default_rng(0)).astype(np.float64)
    assert abs(noisy.std() - 5.0) < 0.1 and abs(noisy.mean() - 128.0) < 0.1
    with pytest.raises(ValueError, match="H×W×3"):
        relight(np.zeros((8, 8), np.uint8), 128.0)


def test_relight_recipe_draws_a_light_independent_of_the_crop() -> None:
    t = build_color_transform(True, "relight")
    assert isinstance(t.transforms[0], RandomRelight) and t.transforms[0].centre == pytest.approx(0.5)
    # the face window follows the crop's scale: 0.75 / 2.7 of a Silent-Face-style wide crop
    assert build_color_transform(True, "relight", crop_scale=2.7).transforms[0].centre == pytest.approx(0.75 / 2.7)
    wide = np.full((90, 90, 3), 200, np.uint8)
    wide[32:58, 32:58] = 50  # a dark face in the middle of a bright background
    out = relight(wide, 128.0, centre=0.25)
    assert abs(out[34:56, 34:56].astype(float).mean() - 128.0) < 1.0  # the face, not the background, is set
    dark, bright = _face_like(2, (0.25, 0.3, 0.4)), _face_like(2, (0.9, 0.8, 0.7))
    lights = {"dark": [], "bright": []}
    for seed in range(40):
        for name, im in (("dark", dark), ("bright", bright)):
            t.set_random_seed(seed)
            lights[name].append(t(image=im)["image"][12:36, 12:36].astype(np.float64).mean())
    # the same seed gives the same light whatever the input's own light; over seeds it spans the range
    np.testing.assert_allclose(lights["dark"], lights["bright"], atol=3.0)
    assert min(lights["dark"]) < 70 and max(lights["dark"]) > 160
    t.set_random_seed(5)
    a = t(image=dark)["image"]
    t.set_random_seed(5)
    assert np.array_equal(a, t(image=dark)["image"])
    # the geometric part is "real"'s (the target map moves with the image)
    flat = np.full((64, 64, 3), 77, np.uint8)
    g = build_transform(32, True, recipe="relight")
    out = g(image=flat, mask=np.full((64, 64), 255, np.uint8))
    assert out["image"].shape == (32, 32, 3) and (out["mask"] == 255).all()


def test_light_recipe_relights_without_moving_the_crop() -> None:
    img = _face_like(2, (0.3, 0.5, 0.8))
    g = build_transform(48, True, recipe="light")
    assert np.array_equal(g(image=img)["image"], build_transform(48, False)(image=img)["image"])  # resize only
    t = build_color_transform(True, "light", crop_scale=1.5)
    assert isinstance(t.transforms[0], RandomRelight) and t.transforms[0].centre == pytest.approx(0.5)
    t.set_random_seed(3)
    a = t(image=img)["image"]
    r = build_color_transform(True, "relight", crop_scale=1.5)
    r.set_random_seed(3)
    assert np.array_equal(a, r(image=img)["image"])  # the same light draw as relight's


def test_config_names_an_augmentation_recipe() -> None:
    from openfas.data.transforms import RECIPES

    for recipe in RECIPES:  # every recipe the data layer builds is accepted by the config schema
        assert load_config(None, [f"data.augment={recipe}"]).data.augment == recipe
    assert load_config(None, ["data.augment=anrl"]).data.augment == "anrl"
    with pytest.raises(ConfigError, match="augment"):
        load_config(None, ["data.augment=fancy"])


def test_best_epoch_selection_by_named_metric_and_split(tmp_path) -> None:  # noqa: ANN001
    import json

    from conftest import build_tiny_cache

    from openfas.engine.trainer import Trainer
    from openfas.io.checkpoint import load_checkpoint

    cache = build_tiny_cache(tmp_path / "cache", per_group=1)
    cfg = load_config(None, [f"data.cache={cache}", "data.image_size=32", "data.map_size=8", "model.width=8",
                             "data.batch_size=4", "optim.lr=0.003", "train.epochs=3", "eval.report=false",
                             "train.select=hter", "train.select_split=test"])
    trainer = Trainer(cfg, run_dir=tmp_path / "run", progress=False)
    trainer.fit()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    sel = metrics["checkpoint_selection"]
    values = [h["select_test_hter"] for h in trainer.state.history]
    assert len(values) == 3
    assert sel["epoch"] == 1 + values.index(min(values))  # first epoch reaching the minimum
    assert sel["value"] == pytest.approx(min(values)) and sel["optimistic"] is True and sel["split"] == "test"
    best = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.safetensors")["model"]
    final = load_checkpoint(tmp_path / "run" / "checkpoints" / "final.safetensors")["model"]
    assert all(torch.equal(best[k], final[k]) for k in best)
    with pytest.raises(ConfigError, match="select"):
        load_config(None, ["train.select=accuracy"])


def test_configs_name_their_papers_recipe() -> None:
    for name in ("oci_m", "icm_o", "ocm_i", "omi_c"):
        rf = load_config(f"rfmeta/rfmeta_dg_{name}.yaml")
        assert rf.optim.weight_decay == 0.0 and rf.data.augment == "rfmeta"
        assert rf.model.kwargs()["input_range"] == "unit"
        an = load_config(f"anrl/anrl_dg_{name}.yaml")
        assert an.data.augment == "anrl" and not an.eval.video_level
        assert (an.train.select, an.train.select_split) == ("auc", "test")
        assert an.method.kwargs()["ics_form"] == "separating"
    for p in ("p1", "p2", "p3", "p4"):
        cd = load_config(f"cdcn/cdcn_oulu_{p}.yaml")
        assert cd.data.augment == "cdcn" and cd.method.kwargs()["score_norm"] == "face_mask"
        assert cd.method.kwargs()["cdl_padding"] == 0


def test_colour_recipe_keeps_the_fine_texture_that_real_rewrites() -> None:
    """"colour" = "real" without blur, JPEG, noise and rescaling: over many draws, the fine texture (the grey
    image's Laplacian) stays correlated with the input's; "real" destroys it in some draws."""

    def laplacian(x: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).astype(np.float32)
        return cv2.Laplacian(grey, cv2.CV_32F).ravel()

    texture = np.random.default_rng(0).integers(60, 190, (64, 64, 3)).astype(np.uint8)
    kept = {}
    for recipe in ("colour", "real"):
        transform = build_color_transform(True, recipe)
        assert transform is not None
        transform.set_random_seed(0)
        kept[recipe] = min(np.corrcoef(laplacian(texture), laplacian(transform(image=texture)["image"]))[0, 1]
                           for _ in range(60))
    assert kept["colour"] > 0.8
    assert kept["real"] < 0.5
    # the light still changes (a mean shift in most draws)
    transform = build_color_transform(True, "colour")
    assert transform is not None
    transform.set_random_seed(1)
    shifts = [abs(float(transform(image=texture)["image"].mean()) - float(texture.mean())) for _ in range(40)]
    assert sum(s > 3 for s in shifts) >= 20
    assert load_config(None, ["data.augment=colour"]).data.augment == "colour"
