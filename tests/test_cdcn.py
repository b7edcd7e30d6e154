"""CDCN / CDCN++ / multi-modal CDCN: layer lists (parameter counts by hand), shapes, fusion, configs, loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from openfas.config import ConfigError, list_packaged_configs, load_config
from openfas.losses.depth import pixelwise_loss
from openfas.methods import get_method
from openfas.models import create_model, list_models
from openfas.models.cdcn import CDCN, MultiModalCDCN
from openfas.ops import CDConv2d, fuse_model

torch.set_num_threads(1)


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# ---- parameter counts from the published layer lists (3×3 convs without bias: 9·cin·cout; BN: 2·c) ----
# CDCN: stem 3→64 | B1 64→128→196→128 | B2, B3 128→128→196→128 | head 384→128→64→1 (no BN after the last)
CDCN_CONV = (3 * 64 + (64 * 128 + 128 * 196 + 196 * 128) + 2 * (128 * 128 + 128 * 196 + 196 * 128)
             + (384 * 128 + 128 * 64 + 64 * 1))
CDCN_BN = 64 + 3 * (128 + 196 + 128) + 128 + 64
CDCN_PARAMS = 9 * CDCN_CONV + 2 * CDCN_BN  # = 2 245 016
# CDCN++: B1 64→128→204→128 | B2 128→153→128→179→128 | B3 128→128→153→128 | head 384→128→1;
# spatial attention convs 2→1 with k = 7, 5, 3
CDCNPP_CONV = (3 * 64 + (64 * 128 + 128 * 204 + 204 * 128) + (128 * 153 + 153 * 128 + 128 * 179 + 179 * 128)
               + (128 * 128 + 128 * 153 + 153 * 128) + (384 * 128 + 128 * 1))
CDCNPP_BN = 64 + (128 + 204 + 128) + (153 + 128 + 179 + 128) + (128 + 153 + 128) + 128
CDCNPP_PARAMS = 9 * CDCNPP_CONV + 2 * CDCNPP_BN + 2 * (7 * 7 + 5 * 5 + 3 * 3)  # = 2 257 352
# One CDCN trunk (stem + 3 blocks, no head):
TRUNK_PARAMS = 9 * (CDCN_CONV - (384 * 128 + 128 * 64 + 64)) + 2 * (CDCN_BN - 128 - 64)


def test_registered() -> None:
    assert {"cdcn", "cdcn++", "cdcn-mm"} <= set(list_models())


def test_parameter_counts_match_layer_lists() -> None:
    assert CDCN_PARAMS == 2_245_016 and CDCNPP_PARAMS == 2_257_352
    assert n_params(create_model("cdcn")) == CDCN_PARAMS
    assert n_params(create_model("cdcn++")) == CDCNPP_PARAMS
    # input fusion: only the stem grows, 3·M input channels → +9·64·3·(M−1)
    assert n_params(create_model("cdcn-mm", fusion="input")) == CDCN_PARAMS + 9 * 64 * 6
    # feature fusion (official CDCN_3modality2): M trunks, M × (CDC 384→128 + BN), CDC 128·M→128 + BN, CDC 128→1
    reduce = 9 * 384 * 128 + 2 * 128
    head = 9 * 384 * 128 + 2 * 128 + 9 * 128
    assert n_params(create_model("cdcn-mm", fusion="feature")) == 3 * TRUNK_PARAMS + 3 * reduce + head
    # score fusion: M full single-modality networks
    assert n_params(create_model("cdcn-mm", modalities=("rgb", "ir"), fusion="score")) == 2 * CDCN_PARAMS
    assert n_params(create_model("cdcn-mm", fusion="score", backbone="cdcn++")) == 3 * CDCNPP_PARAMS


def _block_sizes(model: CDCN, x: torch.Tensor) -> list[tuple[int, ...]]:
    sizes: list[tuple[int, ...]] = []
    hooks = [b.register_forward_hook(lambda _m, _i, o: sizes.append(tuple(o.shape))) for b in model.trunk.blocks]
    with torch.no_grad():
        out = model(x)
    for h in hooks:
        h.remove()
    sizes.append(tuple(out.shape))
    return sizes


def test_paper_shapes_at_256() -> None:
    torch.manual_seed(0)
    model = create_model("cdcn").eval()
    sizes = _block_sizes(model, torch.randn(1, 3, 256, 256))
    assert sizes == [(1, 128, 128, 128), (1, 128, 64, 64), (1, 128, 32, 32), (1, 32, 32)]


def test_cdcnpp_shapes_and_relu_output() -> None:
    torch.manual_seed(0)
    model = create_model("cdcn++").eval()
    sizes = _block_sizes(model, torch.randn(2, 3, 64, 64))
    assert sizes == [(2, 128, 32, 32), (2, 128, 16, 16), (2, 128, 8, 8), (2, 32, 32)]
    with torch.no_grad():
        assert (model(torch.randn(2, 3, 16, 16)) >= 0).all()


def test_map_size_resizes_final_map() -> None:
    torch.manual_seed(0)
    a = create_model("cdcn", map_size=32).eval()
    b = create_model("cdcn", map_size=16).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        big, small = a(x), b(x)
    assert small.shape == (1, 16, 16)
    expected = F.interpolate(big.unsqueeze(1), size=(16, 16), mode="bilinear", align_corners=False).squeeze(1)
    torch.testing.assert_close(small, expected)


def test_bad_inputs_name_the_problem() -> None:
    model = create_model("cdcn")
    with pytest.raises(ValueError, match="divisible by 8"):
        model(torch.randn(1, 3, 20, 20))
    with pytest.raises(ValueError, match="input channels"):
        model(torch.randn(1, 4, 16, 16))


def test_theta_zero_equals_plain_convolution_network() -> None:
    torch.manual_seed(1)
    cdc = CDCN(variant="cdcn++", theta=0.0).double().eval()
    plain = CDCN(variant="cdcn++", conv=lambda i, o: nn.Conv2d(i, o, 3, padding=1, bias=False)).double().eval()
    plain.load_state_dict(cdc.state_dict())
    x = torch.randn(1, 3, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(cdc(x), plain(x), rtol=0, atol=1e-10)


def test_cdcnpp_attention_multiplies_block_outputs() -> None:
    # With the attention convs zeroed, sigmoid(0) = 1/2: the concatenated features are half those of the same
    # network without attention (the next block still takes the un-attended output).
    torch.manual_seed(2)
    pp = CDCN(variant="cdcn++").double().eval()
    for sa in pp.trunk.attention:
        nn.init.zeros_(sa.conv.weight)
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        feats = pp.trunk(x)
        pp.trunk.attention = None
        plain = pp.trunk(x)
    assert feats.shape == (2, 384, 32, 32)
    torch.testing.assert_close(feats, 0.5 * plain, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["cdcn", "cdcn++"])
def test_fuse_model_equals_eval_model(name: str) -> None:
    torch.manual_seed(3)
    model = create_model(name).double()
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 16, 16, dtype=torch.float64))  # non-trivial BN statistics
    model.eval()
    fused = fuse_model(model)
    assert not any(isinstance(m, (CDConv2d, nn.BatchNorm2d)) for m in fused.modules())
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), rtol=0, atol=1e-10)


# ---- multi-modal CDCN ----

def test_mm_score_fusion_is_weighted_sum_of_branch_maps() -> None:
    torch.manual_seed(4)
    model = create_model("cdcn-mm", modalities=("rgb", "ir"), fusion="score", score_weights=(1.0, 3.0)).eval()
    assert isinstance(model, MultiModalCDCN)
    x = torch.randn(2, 6, 16, 16)
    with torch.no_grad():
        maps = model.branch_maps(x)
        out = model(x)
        own = [model.nets[0](x[:, :3]), model.nets[1](x[:, 3:])]
    assert maps.shape == (2, 2, 32, 32)
    torch.testing.assert_close(maps[:, 0], own[0])
    torch.testing.assert_close(maps[:, 1], own[1])
    torch.testing.assert_close(out, 0.25 * own[0] + 0.75 * own[1])
    # score = mean of the map = weighted sum of per-modality scores (the mean is linear)
    torch.testing.assert_close(out.flatten(1).mean(1), 0.25 * own[0].flatten(1).mean(1)
                               + 0.75 * own[1].flatten(1).mean(1))


def test_mm_feature_fusion_uses_each_modality_in_its_own_branch() -> None:
    torch.manual_seed(5)
    model = create_model("cdcn-mm", modalities=("rgb", "depth", "ir"), fusion="feature").eval()
    x = torch.randn(1, 9, 16, 16)
    with torch.no_grad():
        out = model(x)
        # the depth branch (trunk 1) sees channels 3..5 only
        f_depth = model.trunks[1](x[:, 3:6])
        y = x.clone()
        y[:, 3:6] = torch.randn(1, 3, 16, 16)
        f_rgb_same = model.trunks[0](y[:, :3])
        changed = model(y)
    assert out.shape == (1, 32, 32) and f_depth.shape == (1, 384, 32, 32)
    torch.testing.assert_close(f_rgb_same, model.trunks[0](x[:, :3]))
    assert not torch.allclose(out, changed)
    assert model.trunks[0].stem[0].weight.data_ptr() != model.trunks[1].stem[0].weight.data_ptr()


def test_mm_input_fusion_and_errors() -> None:
    model = create_model("cdcn-mm", modalities=("rgb", "depth"), fusion="input", backbone="cdcn++").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 6, 16, 16)).shape == (1, 32, 32)
    with pytest.raises(ValueError, match="6 input channels"):
        create_model("cdcn-mm", modalities=("rgb", "depth"), fusion="feature")(torch.randn(1, 9, 16, 16))
    with pytest.raises(ValueError, match="modalities"):
        create_model("cdcn-mm", modalities=("rgb", "thermal"))
    with pytest.raises(ValueError, match="modalities"):
        create_model("cdcn-mm", modalities=())
    with pytest.raises(ValueError, match="score_weights"):
        create_model("cdcn-mm", fusion="feature", score_weights=(1, 1, 1))
    with pytest.raises(ValueError, match="score_weights"):
        create_model("cdcn-mm", fusion="score", score_weights=(1, 1))
    with pytest.raises(ValueError, match="fusion"):
        create_model("cdcn-mm", fusion="late")


# ---- pixelwise method: one loss per branch for score fusion ----

class _Wrapper(nn.Module):
    """Stands in for DDP: the user model under ``.module``, forward passes keyword arguments on."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, *args: object, **kwargs: object) -> torch.Tensor:
        return self.module(*args, **kwargs)


def _method(overrides: list[str]):  # noqa: ANN202 - test helper
    cfg = load_config("cdcn/cdcn_mm_synth.yaml", overrides)
    cls = get_method(cfg.method.name)
    return cls(cfg, cls.Params.model_validate(cfg.method.kwargs()))


def test_pixelwise_sums_branch_losses_for_score_fusion() -> None:
    torch.manual_seed(6)
    method = _method(["model.fusion=score", "data.modalities=[rgb,ir]", "data.synth.modalities=[rgb,ir]"])
    model = method.build_model()
    assert model.has_branches and len(model.nets) == 2
    batch = {"image": torch.randn(2, 6, 16, 16), "target": torch.rand(2, 32, 32)}
    for m in (model, _Wrapper(model)):
        out = method.training_loss(m, batch, method.stages()[0])
        with torch.no_grad():
            expected = sum(pixelwise_loss(model.nets[i](batch["image"][:, 3 * i:3 * i + 3]), batch["target"])["loss"]
                           for i in range(2))
        torch.testing.assert_close(out["loss"].detach(), expected)
        out["loss"].backward()
        assert all(p.grad is not None for p in model.nets[1].parameters())
        model.zero_grad()


def test_pixelwise_unchanged_for_single_map_models() -> None:
    torch.manual_seed(7)
    method = _method(["model.fusion=input", "data.modalities=[rgb,ir]", "data.synth.modalities=[rgb,ir]"])
    model = method.build_model()
    assert not model.has_branches
    batch = {"image": torch.randn(2, 6, 16, 16), "target": torch.rand(2, 32, 32)}
    out = method.training_loss(model, batch, method.stages()[0])
    torch.testing.assert_close(out["loss"], pixelwise_loss(model(batch["image"]), batch["target"])["loss"])


# ---- configs ----

CDCN_CONFIGS = [n for n in list_packaged_configs() if n.startswith("cdcn/")]


def test_expected_configs_exist() -> None:
    names = set(CDCN_CONFIGS)
    for tag in ("cdcn", "cdcnpp"):
        assert {f"cdcn/{tag}_oulu_p{p}.yaml" for p in (1, 2, 3, 4)} <= names
    assert {"cdcn/cdcn_dg_oci_m.yaml", "cdcn/cdcn_dg_omi_c.yaml", "cdcn/cdcn_dg_ocm_i.yaml",
            "cdcn/cdcn_dg_icm_o.yaml", "cdcn/cdcn_mm_casia_surf.yaml", "cdcn/cdcn_mm_cefa.yaml",
            "cdcn/cdcn_synth.yaml", "cdcn/cdcn_mm_synth.yaml"} <= names


@pytest.mark.parametrize("name", CDCN_CONFIGS)
def test_config_loads_and_model_kwargs_accepted(name: str) -> None:
    cfg = load_config(name)
    assert cfg.model.name in ("cdcn", "cdcn++", "cdcn-mm")
    cls = get_method(cfg.method.name)
    kwargs = cls(cfg, cls.Params.model_validate(cfg.method.kwargs())).model_kwargs()
    assert kwargs["map_size"] == cfg.data.map_size
    if cfg.model.name == "cdcn-mm":
        assert kwargs["modalities"] == ("rgb", "depth", "ir")
    if "_dg_" in name:
        src, tgt = name.split("_dg_")[1].removesuffix(".yaml").split("_")
        assert cfg.data.train_domains == list(src.upper()) and cfg.data.test_domains == [tgt.upper()]
    if "oulu" in name:
        assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.name) == (1e-4, 5e-5, "adam")


def test_config_rejects_unknown_model_option() -> None:
    from openfas.methods.build import check_config

    with pytest.raises(ConfigError, match="fusion"):
        check_config(load_config("cdcn/cdcn_synth.yaml", ["model.fusion=score"]))
