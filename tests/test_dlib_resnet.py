"""dlib's face-recognition ResNet in PyTorch: the non-executing ``.dat`` reader (hand-made byte strings, truncated
and corrupt files) and the port itself, checked against dlib's own ``compute_face_descriptor`` on real LFW chips
(skipped without ../shared or the dlib extra)."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import dlib_models_available

from openfas.io.dlib_dat import DlibFormatError, DlibReader, parse_dlib_network, read_dlib_network
from openfas.models import create_model
from openfas.models.dlib_resnet import (
    DlibResNet,
    add_zero_padded,
    dlib_wrappers,
    load_dlib_network_into,
    load_dlib_resnet,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
LFW = SHARED / "data" / "lfw" / "lfw-deepfunneled"
needs_dlib = pytest.mark.skipif(not dlib_models_available(), reason="needs the dlib extra (dlib + its model files)")


def _dat_path() -> Path:
    from openfas.recognition.landmarks import dlib_model_dir

    return dlib_model_dir() / "dlib_face_recognition_resnet_model_v1.dat"


# --- an encoder written from dlib/serialize.h's description, independent of the reader under test ---------------
def enc_int(v: int) -> bytes:
    mag = abs(v)
    body = mag.to_bytes(max(1, (mag.bit_length() + 7) // 8), "little")
    return bytes([len(body) | (0x80 if v < 0 else 0)]) + body


def enc_str(s: str) -> bytes:
    return enc_int(len(s)) + s.encode()


def enc_float(mantissa: int, exponent: int) -> bytes:
    return enc_int(mantissa) + enc_int(exponent)


def enc_tensor(values: list[float], dims: tuple[int, int, int, int]) -> bytes:
    return enc_int(2) + b"".join(enc_int(d) for d in dims) + struct.pack(f"<{len(values)}f", *values)


def enc_alias(dims: tuple[int, int, int, int]) -> bytes:
    return enc_int(1) + b"".join(enc_int(d) for d in dims)


EMPTY = enc_tensor([], (0, 0, 0, 0))


def test_reader_decodes_hand_made_integers_floats_strings_and_bools() -> None:
    r = DlibReader(b"\x01\x00" + b"\x01\x05" + b"\x02\x34\x12" + b"\x81\x07" + b"\x08" + bytes(7) + b"\x80")
    assert [r.integer() for _ in range(5)] == [0, 5, 0x1234, -7, 1 << 63]
    # dlib's float = mantissa · 2^exponent: 3·2^-1, −5·2^3, and the loss margin bytes of dlib's own model file
    r = DlibReader(enc_float(3, -1) + enc_float(-5, 3) + b"\x03\x0a\xd7\xa3\x81\x1c")
    assert [r.real(), r.real(), r.real()] == [1.5, -40.0, 0xA3D70A * 2.0**-28]
    r = DlibReader(enc_float(0, 32000) + enc_float(0, 32001) + enc_float(0, 32002))
    a, b, c = r.real(), r.real(), r.real()
    assert a == float("inf") and b == float("-inf") and c != c
    r = DlibReader(enc_str("con_4") + b"10" + enc_int(2) + enc_int(1) + enc_int(2) + enc_int(1) + enc_int(1)
                   + struct.pack("<2f", 0.25, -3.0))
    assert r.string() == "con_4" and r.boolean() is True and r.boolean() is False
    t = r.tensor()
    assert t.shape == (1, 2, 1, 1) and t.dtype == np.float32 and t.ravel().tolist() == [0.25, -3.0]
    assert r.remaining() == 0
    # a version-1 tensor stores each value as a dlib float
    r = DlibReader(enc_int(1) + b"".join(enc_int(d) for d in (1, 1, 1, 2)) + enc_float(1, 0) + enc_float(-3, -2))
    assert r.tensor().ravel().tolist() == [1.0, -0.75]


@pytest.mark.parametrize(("blob", "call", "message"), [
    (b"", "integer", "truncated"),
    (b"\x03\x01\x02", "integer", "truncated"),  # promises 3 bytes, has 2
    (b"\x00", "integer", "control byte"),  # size 0 is never written
    (b"\x19\x01", "integer", "control byte"),  # reserved bits set
    (b"\x81\x01", "unsigned", "negative"),
    (b"2", "boolean", "expected '0' or '1'"),
    (b"1.5 ", "real", "ASCII"),
    (enc_int(10_000) + b"x", "string", "claims"),
    (enc_int(5) + b"abc", "string", "truncated"),
    # a tensor claiming 2^80 elements: refused before any allocation
    (enc_int(2) + b"".join(enc_int(1 << 20) for _ in range(4)), "tensor", "does not fit"),
    (enc_int(2) + b"".join(enc_int(d) for d in (1, 1, 1, 3)) + bytes(8), "tensor", "does not fit"),
    (enc_int(7), "tensor", "tensor version"),
])
def test_reader_refuses_truncated_and_malformed_input(blob: bytes, call: str, message: str) -> None:
    r = DlibReader(blob, "model.dat")
    with pytest.raises(DlibFormatError, match=rf"^model\.dat: .*{message}"):
        getattr(r, call)()


def _tiny_network() -> bytes:
    """A serialised add_loss_layer<loss_metric, add_layer<con<1 filter 1×1>, input_rgb_image_sized<150>>>."""
    con = (enc_str("con_4") + enc_tensor([0.5, -1.0, 2.0, 0.125], (1, 4, 1, 1))
           + b"".join(enc_int(v) for v in (1, 1, 1, 1, 1, 0, 0))  # filters, nr, nc, strides, paddings
           + enc_alias((1, 3, 1, 1)) + enc_alias((1, 1, 1, 1))
           + enc_float(1, 0) + enc_float(1, 0) + enc_float(1, 0) + enc_float(0, 0))
    return (enc_int(1) + enc_str("loss_metric_2") + enc_float(1, -2) + enc_float(3, -2)
            + enc_int(3)  # the add_layer on the input layer, version 3
            + enc_str("input_rgb_image_sized") + enc_float(245, -1) + enc_float(117, 0) + enc_float(26, 2)
            + enc_int(150) + enc_int(150)
            + con + b"001" + EMPTY + EMPTY + EMPTY + enc_int(1))


def test_network_parser_reads_a_hand_made_network() -> None:
    net = parse_dlib_network(_tiny_network(), ["layer"], "tiny.dat")
    assert net.loss.options == {"margin": 0.25, "distance_threshold": 0.75}
    assert net.input.options == {"avg_rgb": [122.5, 117.0, 104.0], "nr": 150, "nc": 150}
    (con,) = net.layers
    assert con.kind == "con" and con.options["num_filters"] == 1 and con.options["padding_y"] == 0
    assert con.tensors["weight"].ravel().tolist() == [0.5, -1.0, 2.0]
    assert con.tensors["bias"].ravel().tolist() == [0.125]


def test_network_parser_refuses_every_truncation_and_trailing_bytes() -> None:
    blob = _tiny_network()
    for n in range(len(blob)):
        with pytest.raises(DlibFormatError, match=r"^tiny\.dat: "):
            parse_dlib_network(blob[:n], ["layer"], "tiny.dat")
    with pytest.raises(DlibFormatError, match="unexpected bytes after the network"):
        parse_dlib_network(blob + b"\x00", ["layer"], "tiny.dat")
    with pytest.raises(DlibFormatError, match="expected network|version"):  # a tag where the file has a layer
        parse_dlib_network(blob, ["tag", "layer"], "tiny.dat")


def test_add_zero_padded_pads_channels_and_the_bottom_right_border() -> None:
    a = torch.arange(1.0, 5.0).view(1, 1, 2, 2)  # [[1, 2], [3, 4]]
    b = torch.full((1, 2, 3, 3), 10.0)
    out = add_zero_padded(a, b)
    want = torch.full((1, 2, 3, 3), 10.0)
    want[0, 0, :2, :2] += torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert torch.equal(out, want) and torch.equal(add_zero_padded(b, a), want)


def test_geometry_follows_dlibs_unpadded_strided_layers() -> None:
    model = create_model("dlib-resnet").eval()
    sizes = []
    hooks = [blk.register_forward_hook(lambda _m, _i, o: sizes.append(tuple(o.shape[1:]))) for blk in model.blocks]
    x = torch.randn(2, 3, 150, 150)
    with torch.no_grad():
        emb = model(x)
    for h in hooks:
        h.remove()
    # dlib: out = (n + 2·pad − k) // stride + 1 with pad = 0 for strided layers; an ares_down block adds its
    # strided branch and the 2×2/2 average-pooled input, taking the larger size
    def out(n: int, k: int, s: int) -> int:
        return (n - k) // s + 1
    side = out(out(150, 7, 2), 3, 2)  # stem: 72, then 35
    want = []
    for width, n, down in ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True)):
        if down:
            side = max(out(side, 3, 2), out(side, 2, 2))
        want += [(width, side, side)] * n
    assert sizes == want and want[-1] == (256, 2, 2) and want[-2] == (256, 4, 4)
    assert emb.shape == (2, 128)
    # forward() takes (pixel/255 − mean)/std; forward_pixels() the 0–255 pixels themselves
    pixels = torch.rand(1, 3, 150, 150) * 255
    with torch.no_grad():
        assert torch.allclose(model(((pixels / 255) - 0.5) / 0.5), model.forward_pixels(pixels), atol=1e-5)


@needs_dlib
def test_dat_file_parses_completely_and_loader_checks_the_layers() -> None:
    net = read_dlib_network(_dat_path(), dlib_wrappers())
    assert net.input.options["nr"] == net.input.options["nc"] == 150
    assert abs(net.loss.options["distance_threshold"] - 0.6) < 1e-6  # dlib's documented same-person threshold
    n_params = sum(t.size for layer in net.layers for t in layer.tensors.values())
    model = DlibResNet()
    assert n_params == sum(p.numel() for p in model.parameters())
    net.layers = net.layers[1:]  # a network that is not this architecture
    with pytest.raises(DlibFormatError, match="not dlib's face-recognition ResNet"):
        load_dlib_network_into(model, net, "x.dat")


@needs_dlib
def test_truncated_or_corrupted_dat_file_gives_a_clear_error(tmp_path: Path) -> None:
    data = _dat_path().read_bytes()
    for name, blob in (("half.dat", data[: len(data) // 2]), ("minus1.dat", data[:-1]), ("head.dat", data[:40])):
        p = tmp_path / name
        p.write_bytes(blob)
        t = time.perf_counter()
        with pytest.raises(DlibFormatError, match=rf"{name}: "):
            load_dlib_resnet(p)
        assert time.perf_counter() - t < 30
    bad = bytearray(data)
    bad[4:17] = b"loss_multicla"  # another loss layer's name
    (tmp_path / "other.dat").write_bytes(bytes(bad))
    with pytest.raises(DlibFormatError, match="other.dat: .*not supported"):
        load_dlib_resnet(tmp_path / "other.dat")
    with pytest.raises(DlibFormatError, match="missing.dat: cannot read"):
        load_dlib_resnet(tmp_path / "missing.dat")


@needs_dlib
@pytest.mark.skipif(not LFW.is_dir(), reason="needs ../shared LFW")
def test_port_reproduces_dlib_descriptors_on_real_lfw_chips() -> None:
    import cv2

    from openfas.recognition.dlib_teacher import DlibRecognizer

    rec = DlibRecognizer()
    files = ["Colin_Powell/Colin_Powell_0001.jpg", "Colin_Powell/Colin_Powell_0005.jpg",
             "Serena_Williams/Serena_Williams_0002.jpg", "Aaron_Peirsol/Aaron_Peirsol_0001.jpg"]
    chips = []
    for f in files:
        img = cv2.imread(str(LFW / f))
        chips.append(rec.chip(img, rec.landmarker(img)))
    want = rec.embed_chips(chips)  # dlib's compute_face_descriptor
    model = load_dlib_resnet(rec.path)
    pixels = torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).float()  # RGB chips, 0–255
    with torch.no_grad():
        got = model.forward_pixels(pixels).numpy()
        normalised = model(((pixels / 255) - 0.5) / 0.5).numpy()
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert np.abs(got - want).max() < 1e-3 and cos.min() > 0.9999
    assert np.abs(normalised - want).max() < 1e-3


def test_dlib_csdn_embedding_is_any_convex_mix_of_identical_blocks() -> None:
    torch.manual_seed(0)
    model = create_model("dlib-csdn", num_classes=3, dropout_rates=(0.2, 0.5)).eval()
    with torch.no_grad():
        model.blocks[1][1].weight.copy_(model.blocks[0][1].weight)
    x = torch.randn(2, 3, 150, 150)
    out = model(x)
    assert out.embedding.shape == (2, 128) and out.branch_embeddings.shape == (2, 2, 128)
    assert out.cosine.shape == (2, 3) and torch.allclose(out.weights.sum(1), torch.ones(2))
    # the concept weights sum to 1, so equal blocks give their common output: W · mean-pooled trunk map
    with torch.no_grad():
        pooled = model.trunk.feature_map((x * 0.5 + 0.5) * 255).mean((2, 3))
    assert torch.allclose(out.embedding, pooled @ model.blocks[0][1].weight.T, atol=1e-5)


@needs_dlib
@pytest.mark.skipif(not LFW.is_dir(), reason="needs ../shared LFW")
def test_chip_transform_maps_the_photo_onto_dlibs_chip() -> None:
    import cv2

    from openfas.recognition.dlib_teacher import DlibRecognizer

    rec = DlibRecognizer()
    img = cv2.imread(str(LFW / "Colin_Powell/Colin_Powell_0001.jpg"))
    face = rec.landmarker(img)
    chip = rec.chip(img, face).astype(float)
    m = rec.chip_transform(face)
    rgb = np.ascontiguousarray(img[:, :, ::-1])
    err = np.abs(cv2.warpAffine(rgb, m, (150, 150), flags=cv2.INTER_LINEAR).astype(float) - chip).mean()
    shifted = m.copy()
    shifted[:, 2] += 1.0
    err_shifted = np.abs(cv2.warpAffine(rgb, shifted, (150, 150), flags=cv2.INTER_LINEAR).astype(float) - chip).mean()
    assert err < 1.0 and err_shifted > 3 * err  # interpolation noise only; one pixel off is far worse


@needs_dlib
@pytest.mark.skipif(not LFW.is_dir(), reason="needs ../shared LFW")
def test_dlib_chip_route_prepares_initialises_and_trains(tmp_path: Path) -> None:
    import json

    import cv2
    from typer.testing import CliRunner

    from openfas.cli import app
    from openfas.config import load_config
    from openfas.engine.trainer import Trainer
    from openfas.methods.recognition import init_from_checkpoint
    from openfas.recognition.data import read_landmarks
    from openfas.recognition.dlib_teacher import DlibRecognizer
    from openfas.recognition.embedding_table import EmbeddingTable

    prep = tmp_path / "prep"
    res = CliRunner().invoke(app, ["data", "lfw", str(LFW.parent), str(prep), "--min-images", "2", "--max-images",
                                   "2", "--max-identities", "2", "--test-pairs", "4", "--geometry", "dlib",
                                   "--teacher", "dlib-torch"])
    assert res.exit_code == 0, res.output
    table = EmbeddingTable.load(prep / "teacher" / "dlib_train.safetensors")
    rel = sorted(table.files)[0]
    chip_bgr = cv2.imread(str(prep / "train" / rel))
    assert chip_bgr.shape == (150, 150, 3)
    # the table row (PyTorch port on the chip cut from the photo) equals dlib's descriptor of the written chip
    want = DlibRecognizer().embed_chips([np.ascontiguousarray(chip_bgr[:, :, ::-1])])[0]
    assert np.abs(table.for_files([rel])[0].numpy() - want).max() < 1e-3
    # landmarks in chip coordinates: eyes above the nose above the mouth, all inside the chip
    lm = read_landmarks(prep / "train" / "landmarks.csv")[rel]
    assert (lm >= 0).all() and (lm < 150).all() and lm[0, 1] < lm[2, 1] < lm[3, 1] and lm[0, 0] < lm[1, 0]

    ckpt = tmp_path / "dlib.safetensors"
    res = CliRunner().invoke(app, ["data", "dlib-weights", str(ckpt)])
    assert res.exit_code == 0, res.output
    student = create_model("dlib-csdn", num_classes=2).eval()
    init_from_checkpoint(student, ckpt)
    x = (torch.from_numpy(chip_bgr[:, :, ::-1].copy()).permute(2, 0, 1)[None].float() / 255 - 0.5) / 0.5
    assert np.abs(student.embed(x)[0].numpy() - want).max() < 1e-3  # before training: dlib's embedding

    def one_step(config: str, run: str) -> dict:
        """One training step of a packaged LFW config on the prepared chips; the run's metrics."""
        cfg = load_config(config, [
            f"data.identities.root={prep / 'train'}", f"data.identities.pairs={prep / 'test' / 'pairs_one_masked.txt'}",
            f"data.identities.pairs_root={prep / 'test'}", f"method.init_from={ckpt}",
            f"method.teacher_table={prep / 'teacher' / 'dlib_train.safetensors'}", "model.num_classes=2",
            "data.batch_size=4", "train.epochs=1", "train.max_steps_per_epoch=1", "train.device=cpu",
            f"experiment.output_dir={tmp_path}"])
        Trainer(cfg, run_dir=tmp_path / run, progress=False).fit()
        return json.loads((tmp_path / run / "metrics.json").read_text())

    first = one_step("recognition/csdn_lfw_dlibinit.yaml", "run")
    assert first["pairs"] == 4 and first["flip"] is True  # the packaged route scores with mirror averaging

    # the CosFace baseline: one decision on the same start (dlib's embedding), centres from the table, one step
    single = create_model("dlib-face", num_classes=2).eval()
    init_from_checkpoint(single, ckpt)
    assert single.num_branches == 1 and single.concept is None
    assert np.abs(single.embed(x)[0].numpy() - want).max() < 1e-3
    assert one_step("recognition/cosface_lfw_dlibinit.yaml", "run-cos")["pairs"] == 4


def test_class_centres_start_at_each_identitys_mean_teacher_direction(tmp_path: Path) -> None:
    from openfas.config import ConfigError
    from openfas.methods.recognition import init_centres_from_table
    from openfas.recognition.embedding_table import EmbeddingTable

    files = ["ann/1.png", "ann/2.png", "bob/1.png"]
    for f in files:
        (tmp_path / "train" / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "train" / f).write_bytes(b"")
    rows = np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 2.0], [0.0, -1.0, 0.0]], np.float32)
    table = EmbeddingTable(files, rows).save(tmp_path / "t.safetensors")
    model = create_model("dlib-csdn", num_classes=2, embedding_dim=3)
    init_centres_from_table(model, table, tmp_path / "train")
    # ann: mean of (0.6, 0.8, 0) and (0, 0, 1) = (0.3, 0.4, 0.5), normalised; bob: (0, −1, 0)
    want = torch.tensor([[0.3, 0.4, 0.5], [0.0, -1.0, 0.0]])
    want[0] /= (0.3**2 + 0.4**2 + 0.5**2) ** 0.5
    assert torch.allclose(model.head.weight, want, atol=1e-6)
    with pytest.raises(ConfigError, match="centres"):
        init_centres_from_table(create_model("dlib-csdn", num_classes=3, embedding_dim=3), table, tmp_path / "train")
