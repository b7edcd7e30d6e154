"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1``) as a PyTorch module.

The network of dlib's ``dnn_face_recognition_ex.cpp`` (a ResNet-34-like metric-learning net, 29 conv layers),
read from the input side:

* input: a 150×150 RGB chip (``dlib.get_face_chip``, padding 0.25); each channel becomes
  ``(pixel − average) / 256`` with dlib's per-channel averages (stored in the file: ≈ 122.78, 117.00, 104.30);
* ``con 7×7/2, 32`` (no padding: dlib pads only stride-1 convs, by ``size // 2``) → affine → relu →
  ``max_pool 3×3/2`` (no padding): 150 → 72 → 35 px;
* residual stages: 3 × ``ares 32``; ``ares_down 64`` + 3 × ``ares 64``; ``ares_down 128`` + 2 × ``ares 128``;
  ``ares_down 256`` + 2 × ``ares 256``; ``ares_down 256``. ``ares`` = relu(x + B(x)), with
  B = affine(con3×3(relu(affine(con3×3(x))))); ``ares_down`` = relu(avg_pool2×2/2(x) ⊕ B_stride2(x)), where
  the first conv has stride 2 and no padding;
* ``avg_pool_everything`` (global average) → ``fc_no_bias 128``: the 128-d embedding (not normalised).

``affine`` is dlib's inference form of batch norm: ``γ·x + β`` per channel (learnable here, like a frozen BN).

``⊕`` is dlib's ``add_prev`` of two tensors of different shapes (dlib ≥ 19.5): the output takes the larger size
in every dimension and each input is zero-padded at the end (channels and the bottom/right border). It matters:
with 150 px the skip path of the 256-filter ``ares_down`` stages is 4×4 (and then 2×2) while the strided branch is
3×3 (1×1), and the skip channels (128) are fewer than the branch's (256).

:func:`load_dlib_resnet` fills the module from dlib's ``.dat`` file through the non-executing parser of
:mod:`openfas.io.dlib_dat`; the module's output matches dlib's ``compute_face_descriptor`` (see
``tests/test_dlib_resnet.py``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import cast

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from openfas.io.checkpoint import save_checkpoint
from openfas.io.dlib_dat import DlibFormatError, DlibNetwork, read_dlib_network
from openfas.models._registry import register_model
from openfas.models.iresnet import RecognitionNet, RecognitionOutput
from openfas.ops.cosface import CosFaceHead

DLIB_INPUT_SIZE = 150
DLIB_EMBEDDING_DIM = 128
# dlib_face_recognition_resnet_model_v1's input averages (R, G, B), as stored in the file
DLIB_RGB_AVERAGES = (122.782, 117.001, 104.298)
# (filters, number of blocks, first block downsamples) per stage, input side first
DLIB_STAGES = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))


class Affine(nn.Module):
    """Per-channel ``γ·x + β`` (dlib's ``affine`` layer, its inference-time batch norm)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def add_zero_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev`` of N×C×H×W tensors of different C, H, W: both zero-padded at the end to the larger."""
    if a.shape == b.shape:
        return a + b
    c, h, w = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

    def pad(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return pad(a) + pad(b)


class DlibResidualBlock(nn.Module):
    """dlib's ``ares`` (``down=False``) or ``ares_down`` (``down=True``) block."""

    def __init__(self, cin: int, cout: int, down: bool) -> None:
        super().__init__()
        if not down and cin != cout:
            raise ValueError(f"an ares block keeps its width; got {cin} → {cout}")
        self.down = down
        self.conv1 = nn.Conv2d(cin, cout, 3, 2 if down else 1, 0 if down else 1)
        self.aff1 = Affine(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.aff2 = Affine(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.aff2(self.conv2(F.relu(self.aff1(self.conv1(x)))))
        skip = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(add_zero_padded(y, skip))


class DlibResNet(nn.Module):
    """dlib's 128-d face-recognition ResNet; see the module docstring.

    ``forward`` takes the project's normalised RGB batches, ``(pixel/255 − mean)/std`` (``data.mean`` /
    ``data.std``), and returns N×128 embeddings; :meth:`forward_pixels` takes RGB pixel values (0–255) as dlib
    does. Input size: 150×150 reproduces dlib; other sizes run too (the global pooling adapts)."""

    rgb_averages: torch.Tensor

    def __init__(self, mean: float = 0.5, std: float = 0.5, embedding_dim: int | None = DLIB_EMBEDDING_DIM) -> None:
        super().__init__()
        if std <= 0:
            raise ValueError(f"std must be positive, got {std}")
        self.mean, self.std = float(mean), float(std)
        self.register_buffer("rgb_averages", torch.tensor(DLIB_RGB_AVERAGES).view(1, 3, 1, 1))
        self.stem_conv = nn.Conv2d(3, 32, 7, 2, 0)
        self.stem_aff = Affine(32)
        blocks, cin = [], 32
        for width, n, down in DLIB_STAGES:
            for k in range(n):
                blocks.append(DlibResidualBlock(cin, width, down and k == 0))
                cin = width
        self.blocks = nn.Sequential(*blocks)
        self.out_channels = cin
        # embedding_dim=None: no fc layer, the output is the 256-d pooled feature (a trunk for DlibFaceNet)
        self.fc: nn.Module = nn.Linear(cin, embedding_dim, bias=False) if embedding_dim else nn.Identity()
        self.embedding_dim = embedding_dim or cin

    def feature_map(self, pixels: torch.Tensor) -> torch.Tensor:
        """RGB pixel values (N×3×H×W, 0–255) → the last residual stage's map (N×256×h×w)."""
        x = (pixels - self.rgb_averages) / 256.0
        x = F.max_pool2d(F.relu(self.stem_aff(self.stem_conv(x))), 3, 2)
        return self.blocks(x)

    def forward_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """RGB pixel values (0–255) → embeddings (or pooled features without the fc layer)."""
        return self.fc(self.feature_map(pixels).mean((2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_pixels((x * self.std + self.mean) * 255.0)

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)


def dlib_wrappers() -> list[str]:
    """The network's dlib layers outermost first (``layer`` = an ``add_layer``), as the ``.dat`` file nests them.

    ``ares`` = relu, add_prev, affine, con, relu, affine, con, tag1; ``ares_down`` = relu, add_prev, avg_pool,
    skip1, tag2, affine, con, relu, affine, con, tag1."""
    body = ["layer"] * 5
    ares = ["layer", "layer"] + body + ["tag"]
    ares_down = ["layer", "layer", "layer", "skip", "tag"] + body + ["tag"]
    out = ["layer", "layer"]  # fc_no_bias, avg_pool_everything
    for _, n, down in reversed(DLIB_STAGES):
        out += ares * (n - 1) + (ares_down if down else ares)
    return out + ["layer"] * 4  # max_pool, relu, affine, con (on the input layer)


def _expected_kinds() -> list[str]:
    """Computational layer kinds input side first, matching :func:`dlib_wrappers`."""
    kinds = ["con", "affine", "relu", "max_pool"]
    for _, n, down in DLIB_STAGES:
        for k in range(n):
            kinds += ["con", "affine", "relu", "con", "affine"] + (["avg_pool"] if down and k == 0 else [])
            kinds += ["add_prev", "relu"]
    return kinds + ["avg_pool", "fc"]


def _copy(dst: torch.Tensor, src: np.ndarray, what: str, source: str) -> None:
    if tuple(src.shape) != tuple(dst.shape):
        raise DlibFormatError(f"{source}: {what} has shape {tuple(src.shape)}, the model expects {tuple(dst.shape)}")
    with torch.no_grad():
        dst.copy_(torch.from_numpy(np.ascontiguousarray(src)))


def load_dlib_network_into(model: DlibResNet, net: DlibNetwork, source: str) -> DlibResNet:
    """Copy a parsed dlib network's weights into ``model`` after checking every layer's type and geometry."""
    kinds = [layer.kind for layer in net.layers]
    if kinds != _expected_kinds():
        raise DlibFormatError(f"{source}: the layer sequence is not dlib's face-recognition ResNet")
    if (net.input.options["nr"], net.input.options["nc"]) != (DLIB_INPUT_SIZE, DLIB_INPUT_SIZE):
        raise DlibFormatError(f"{source}: input size {net.input.options['nr']}×{net.input.options['nc']}, "
                              f"expected {DLIB_INPUT_SIZE}×{DLIB_INPUT_SIZE}")
    layers = iter(net.layers)

    def con(module: nn.Conv2d, what: str) -> None:
        layer = next(layers)
        o = layer.options
        geometry = (o["nr"], o["nc"], o["stride_y"], o["stride_x"], o["padding_y"], o["padding_x"])
        want = (*module.kernel_size, *module.stride, *module.padding)
        if geometry != want:
            raise DlibFormatError(f"{source}: {what} has kernel/stride/padding {geometry}, expected {want}")
        _copy(module.weight, layer.tensors["weight"], f"{what} filters", source)
        assert module.bias is not None
        _copy(module.bias, layer.tensors["bias"].reshape(-1), f"{what} biases", source)

    def affine(module: Affine, what: str) -> None:
        layer = next(layers)
        _copy(module.weight, layer.tensors["gamma"].reshape(-1), f"{what} gamma", source)
        _copy(module.bias, layer.tensors["beta"].reshape(-1), f"{what} beta", source)

    def pool(size: int, stride: int, what: str) -> None:
        o = next(layers).options
        geometry = (o["nr"], o["nc"], o["stride_y"], o["stride_x"], o["padding_y"], o["padding_x"])
        if geometry != (size, size, stride, stride, 0, 0):
            raise DlibFormatError(f"{source}: {what} has window/stride/padding {geometry}")

    if not isinstance(model.fc, nn.Linear):
        raise ValueError("load_dlib_network_into needs a DlibResNet with its fc layer (embedding_dim=128)")
    con(model.stem_conv, "stem conv")
    affine(model.stem_aff, "stem affine")
    next(layers)  # relu
    pool(3, 2, "stem max_pool")
    for i, block in enumerate(cast(list[DlibResidualBlock], list(model.blocks))):
        con(block.conv1, f"block {i} conv1")
        affine(block.aff1, f"block {i} affine1")
        next(layers)  # relu
        con(block.conv2, f"block {i} conv2")
        affine(block.aff2, f"block {i} affine2")
        if block.down:
            pool(2, 2, f"block {i} avg_pool")
        next(layers)  # add_prev
        next(layers)  # relu
    pool(0, 1, "avg_pool_everything")
    fc = next(layers)
    if fc.options["bias_mode"] != 1:
        raise DlibFormatError(f"{source}: the final fc layer has a bias; dlib's model uses fc_no_bias")
    _copy(model.fc.weight, fc.tensors["weight"].reshape(fc.options["num_inputs"], fc.options["num_outputs"]).T,
          "fc weights", source)
    _copy(model.rgb_averages, np.array(net.input.options["avg_rgb"], np.float32).reshape(1, 3, 1, 1),
          "input averages", source)
    return model


def load_dlib_resnet(path: str | Path, mean: float = 0.5, std: float = 0.5) -> DlibResNet:
    """A :class:`DlibResNet` with the weights of a dlib ``.dat`` file (parsed, never executed)."""
    net = read_dlib_network(path, dlib_wrappers())
    return load_dlib_network_into(DlibResNet(mean, std), net, str(path)).eval()


class DlibFaceNet(RecognitionNet):
    """CSDN on dlib's backbone: :class:`DlibResNet` (without its fc) → 256-d pooled feature f → n dropout blocks
    (Dropout → ``fc_no_bias`` 256 → D, sub-embeddings e_i) weighted by a concept branch (MLP on f, softmax over n)
    → e = Σ w_i e_i, with CosFace class centres; the same :class:`~openfas.models.iresnet.RecognitionOutput` as
    ``csdn``. Initialised from dlib's weights (``method.init_from`` = :func:`export_dlib_resnet`'s checkpoint:
    every block's fc = dlib's fc), e equals dlib's embedding before any training, whatever the weights w_i."""

    def __init__(self, image_size: int = DLIB_INPUT_SIZE, embedding_dim: int = DLIB_EMBEDDING_DIM,
                 num_classes: int = 2, dropout_rates: tuple[float, ...] = (0.2, 0.4, 0.6), concept: bool = True,
                 concept_hidden: int = 64, mean: float = 0.5, std: float = 0.5) -> None:
        super().__init__()
        if not dropout_rates:
            raise ValueError("dropout_rates must name at least one dropout block")
        if concept and len(dropout_rates) < 2:
            raise ValueError("the concept branch weighs several sub-decisions: give >= 2 dropout_rates")
        self.image_size = image_size
        self.trunk = DlibResNet(mean, std, embedding_dim=None)
        flat = self.trunk.out_channels
        self.blocks = nn.ModuleList(nn.Sequential(nn.Dropout(p), nn.Linear(flat, embedding_dim, bias=False))
                                    for p in dropout_rates)
        self.concept = None
        if concept:
            self.concept = nn.Sequential(nn.Linear(flat, concept_hidden), nn.PReLU(concept_hidden),
                                         nn.Linear(concept_hidden, len(dropout_rates)))
        self.head = CosFaceHead(embedding_dim, num_classes)
        self.embedding_dim = embedding_dim
        self.num_branches = len(dropout_rates)

    def forward(self, x: torch.Tensor) -> RecognitionOutput:
        f = self.trunk(x)
        branch = torch.stack([blk(f) for blk in self.blocks], 1)  # N×n×D
        return self.combine_sub_decisions(f, branch)

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x).embedding


def export_dlib_resnet(dat_path: str | Path, out: str | Path) -> Path:
    """Convert dlib's ``.dat`` model into an openfas checkpoint (safetensors) laid out as :class:`DlibFaceNet`
    (``trunk.*`` and the fc as ``blocks.0.1.weight``, which ``method.init_from`` copies into every block)."""
    model = load_dlib_resnet(dat_path)
    state = {f"trunk.{k}": v for k, v in model.state_dict().items() if not k.startswith("fc.")}
    assert isinstance(model.fc, nn.Linear)
    state["blocks.0.1.weight"] = model.fc.weight.detach().clone()
    meta = {"model": "dlib-csdn (weights of dlib's face-recognition ResNet)", "source": Path(dat_path).name,
            "source_sha256": hashlib.sha256(Path(dat_path).read_bytes()).hexdigest()}
    return save_checkpoint(out, model_state=state, meta=meta)


@register_model("dlib-csdn")
def dlib_csdn(image_size: int = DLIB_INPUT_SIZE, num_classes: int = 2, embedding_dim: int = DLIB_EMBEDDING_DIM,
              dropout_rates: tuple[float, ...] = (0.2, 0.4, 0.6), concept_hidden: int = 64,
              mean: float = 0.5, std: float = 0.5) -> DlibFaceNet:
    """CSDN with dlib's ResNet as the backbone (start it from :func:`export_dlib_resnet`'s checkpoint)."""
    return DlibFaceNet(image_size, embedding_dim, num_classes, tuple(dropout_rates), True, concept_hidden, mean, std)


@register_model("dlib-face")
def dlib_face(image_size: int = DLIB_INPUT_SIZE, num_classes: int = 2, embedding_dim: int = DLIB_EMBEDDING_DIM,
              dropout: float = 0.0, mean: float = 0.5, std: float = 0.5) -> DlibFaceNet:
    """Single decision on dlib's ResNet (the CosFace baseline of ``dlib-csdn``): one block Dropout → fc, no
    concept branch, so the embedding is the block's output (dlib's own embedding when started from
    :func:`export_dlib_resnet`'s checkpoint). dlib's network has no dropout: the default is 0."""
    return DlibFaceNet(image_size, embedding_dim, num_classes, (dropout,), False, 64, mean, std)


@register_model("dlib-resnet")
def dlib_resnet(mean: float = 0.5, std: float = 0.5, embedding_dim: int = DLIB_EMBEDDING_DIM) -> DlibResNet:
    """dlib's face-recognition ResNet, randomly initialised (fill it with :func:`load_dlib_resnet`)."""
    return DlibResNet(mean, std, embedding_dim)


__all__ = ["DLIB_INPUT_SIZE", "Affine", "DlibFaceNet", "DlibResNet", "DlibResidualBlock", "add_zero_padded",
           "dlib_face", "dlib_wrappers", "export_dlib_resnet", "load_dlib_network_into", "load_dlib_resnet"]
