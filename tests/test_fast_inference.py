"""Fast inference path of the light model: ONNX export, static int8 quantisation (`openfas export --int8`),
all faces of an image in one model call, single-threaded kernels for the service's worker pool."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import scipy.stats
import torch
from deploy_fixtures import faces_scene
from typer.testing import CliRunner

from openfas.cli import app
from openfas.config import load_config
from openfas.deploy.predictor import Predictor, load_onnx_session, machine_threads, single_threaded_kernels
from openfas.deploy.quantize import (
    DEFAULT_TOLERANCE,
    calibration_from_cache,
    measure_fidelity,
    quantize_onnx,
    score_head_nodes,
    spearman,
)
from openfas.engine.trainer import Trainer


@pytest.fixture(scope="module")
def light_ckpt(tiny_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    run = tmp_path_factory.mktemp("light") / "run"
    cfg = load_config(None, [f"data.cache={tiny_cache}", "data.image_size=32", "data.map_size=8",
                             "data.batch_size=8", "model.name=minifasnet-s", "model.image_size=32",
                             "method.name=binary", "optim.lr=0.003", "train.epochs=3", "train.log_every=1000",
                             "eval.report=false"])
    Trainer(cfg, run_dir=run, progress=False).fit()
    return run / "checkpoints" / "final.safetensors"


def test_export_int8_and_predict(light_ckpt: Path, tiny_cache: Path, tmp_path: Path) -> None:
    fp32, int8 = tmp_path / "light.onnx", tmp_path / "light-int8.onnx"
    res = CliRunner().invoke(app, ["export", str(light_ckpt), "--onnx", str(fp32), "--int8", str(int8),
                                   "--calibrate", str(tiny_cache), "--calibration-samples", "32"])
    assert res.exit_code == 0, res.output
    assert "int8 QDQ, 32 calibration crops" in res.output
    assert "int8 fidelity on 32 calibration crops: mean |Δscore|" in res.output and "warning" not in res.output
    ops = {n.op_type for n in onnx.load(str(int8)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    torch.set_num_threads(1)
    ref = Predictor.from_checkpoint(light_ckpt, detector="whole")
    pf = Predictor.from_checkpoint(fp32, detector="whole", intra_op_threads=1)
    pq = Predictor.from_checkpoint(int8, detector="whole", intra_op_threads=1)
    assert pq.meta["quantized"] == "int8" and pq.threshold == pytest.approx(ref.threshold)
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(6)]
    s_ref = ref.score_crops(crops)[0]
    s_f = pf.score_crops(crops)[0]
    s_q = pq.score_crops(crops)[0]
    np.testing.assert_allclose(s_f, s_ref, atol=1e-4)
    assert np.all((s_q >= 0) & (s_q <= 1)) and np.abs(s_q - s_f).max() < 0.25  # int8: close, not equal
    res = CliRunner().invoke(app, ["export", str(light_ckpt), "--onnx", str(fp32), "--int8", str(int8)])
    assert res.exit_code == 2 and "--calibrate" in res.output


def _small_scorer(path: Path, meta: dict, crops: np.ndarray, seed: int = 0) -> Path:
    """A small random-weight liveness net in openfas's ONNX form (input ``image``, output ``score``): two 3×3
    convs + ReLU, global average pool, a 2-logit Gemm and the export's Gather/Sub/Sigmoid head; sealed with
    ``meta`` so Predictor and quantize_onnx accept it. The live logit's bias and scale are set so that the
    logit difference on ``crops`` has median 0 and spread ~2 (scores across the whole 0…1 range)."""
    import onnxruntime as ort

    from openfas.deploy.export import write_sealed_onnx

    first = _small_scorer_proto(meta, seed, 0.0, 1.0)
    sess = ort.InferenceSession(first.SerializeToString(), providers=["CPUExecutionProvider"])
    s = np.clip(sess.run(None, {"image": crops})[0].astype(np.float64), 1e-6, 1 - 1e-6)
    logit = np.log(s / (1 - s))  # live weights · pooled features, before bias and scale
    scale = 2.0 / max(float(logit.std()), 1e-6)
    bias = -scale * float(np.median(logit))

    write_sealed_onnx(_small_scorer_proto(meta, seed, bias, scale), meta, path)
    return path


def _small_scorer_proto(meta: dict, seed: int, bias: float, scale: float):  # noqa: ANN202
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array((rng.normal(0, 0.5, (8, 3, 3, 3))).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.normal(0, 0.1, 8).astype(np.float32), "b1"),
             numpy_helper.from_array((rng.normal(0, 0.2, (8, 8, 3, 3))).astype(np.float32), "w2"),
             numpy_helper.from_array(np.array([[0.0] * 8, scale * rng.normal(0, 0.3, 8)]).astype(np.float32), "fc"),
             numpy_helper.from_array(np.array([0.0, bias], np.float32), "fb"),
             numpy_helper.from_array(np.array(0, np.int64), "i0"), numpy_helper.from_array(np.array(1, np.int64), "i1")]
    nodes = [helper.make_node("Conv", ["image", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2], name="conv2"),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             helper.make_node("GlobalAveragePool", ["r2"], ["p"], name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "fc", "fb"], ["logits"], transB=1, name="gemm"),
             helper.make_node("Gather", ["logits", "i1"], ["l1"], axis=1, name="live"),
             helper.make_node("Gather", ["logits", "i0"], ["l0"], axis=1, name="spoof"),
             helper.make_node("Sub", ["l1", "l0"], ["d"], name="sub"),
             helper.make_node("Sigmoid", ["d"], ["score"], name="sigmoid")]
    size = int(meta["preprocess"]["image_size"])
    graph = helper.make_graph(nodes, "small", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                             ["n", 3, size, size])],
                              [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["n"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _synthetic_crops(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Preprocessed-range (−1…1) crops: smooth colour gradients with random brightness, contrast and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for _ in range(n):
        chans = [rng.uniform(-0.8, 0.8) + rng.uniform(-1, 1) * (xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1))
                 for _ in range(3)]
        out.append(np.clip(np.stack(chans) + rng.normal(0, 0.1, (3, size, size)), -1, 1))
    return np.stack(out).astype(np.float32)


def test_int8_scores_track_the_float_model(light_ckpt: Path, tiny_cache: Path, tmp_path: Path) -> None:
    fp32, int8 = tmp_path / "light.onnx", tmp_path / "light-int8.onnx"
    assert CliRunner().invoke(app, ["export", str(light_ckpt), "--onnx", str(fp32)]).exit_code == 0
    _, meta = load_onnx_session(fp32)
    crops = _synthetic_crops(96, int(meta["preprocess"]["image_size"]))
    small = _small_scorer(tmp_path / "small.onnx", meta, crops)
    cal, held_out = crops[:64], crops[64:]
    fid = quantize_onnx(small, int8, cal)
    # independent check of the report: both files' scores on the calibration crops, compared here
    s_f = Predictor.from_checkpoint(small, detector="whole", intra_op_threads=1).backend.run(cal)[0].astype(float)
    pq = Predictor.from_checkpoint(int8, detector="whole", intra_op_threads=1)
    s_q = pq.backend.run(cal)[0].astype(float)
    assert s_f.std() > 0.1  # the float scores spread over the range, so the rank correlation means something
    d = np.abs(s_q - s_f)
    assert fid.n == len(cal) and fid.max_abs_diff == pytest.approx(d.max())
    assert fid.mean_abs_diff == pytest.approx(d.mean())
    assert fid.spearman == pytest.approx(scipy.stats.spearmanr(s_q, s_f)[0])
    assert fid.spearman >= 0.95 and fid.mean_abs_diff <= DEFAULT_TOLERANCE and fid.ok
    assert pq.meta["int8_fidelity"]["mean_abs_diff"] == pytest.approx(fid.mean_abs_diff)
    held = measure_fidelity(small, int8, held_out)  # crops the calibration never saw
    assert held.spearman >= 0.95 and held.ok
    # the score head (after the last weighted layer) stays float: no QuantizeLinear after the Gemm's output
    q = onnx.load(str(int8))
    assert q.graph.node[-1].op_type == "Sigmoid"
    assert not any(n.op_type == "QuantizeLinear" and n.input[0] in ("d", "l0", "l1", "score") for n in q.graph.node)
    # calibrated on constant images, every activation range is degenerate: real crops saturate and the check fails
    bad = tmp_path / "bad-int8.onnx"
    quantize_onnx(small, bad, np.zeros_like(cal[:8]))
    worse = measure_fidelity(small, bad, cal)
    assert not worse.ok and worse.mean_abs_diff > 5 * fid.mean_abs_diff
    # the trained light model too: its int8 file's report matches what the Predictor scores
    fid_light = quantize_onnx(fp32, tmp_path / "light-q.onnx", calibration_from_cache(tiny_cache, meta, "train", 32))
    assert fid_light.ok and fid_light.n == 32


def test_export_int8_tolerance_warns_and_strict_fails(light_ckpt: Path, tiny_cache: Path, tmp_path: Path) -> None:
    fp32, int8 = tmp_path / "light.onnx", tmp_path / "light-int8.onnx"
    args = ["export", str(light_ckpt), "--onnx", str(fp32), "--int8", str(int8), "--calibrate", str(tiny_cache),
            "--calibration-samples", "16", "--int8-tolerance", "1e-12"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0 and "warning: --int8:" in res.output and "is not faithful" in res.output, res.output
    assert int8.exists()
    res = CliRunner().invoke(app, [*args, "--int8-strict"])
    assert res.exit_code == 1 and "--int8-strict" in res.output and not int8.exists(), res.output
    res = CliRunner().invoke(app, [*args[:-1], "0"])
    assert res.exit_code == 2 and "--int8-tolerance must be > 0" in res.output


def test_score_head_nodes_and_spearman() -> None:
    from onnx import TensorProto, helper

    w = helper.make_tensor("w", TensorProto.FLOAT, [2, 3, 1, 1], [0.1] * 6)
    fc = helper.make_tensor("fc", TensorProto.FLOAT, [2, 2], [1.0, 0.0, 0.0, 1.0])
    i0, i1 = helper.make_tensor("i0", TensorProto.INT64, [], [0]), helper.make_tensor("i1", TensorProto.INT64, [], [1])
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "fc"], ["logits"], name="gemm"),
             helper.make_node("Gather", ["logits", "i1"], ["l1"], axis=1, name="live"),
             helper.make_node("Gather", ["logits", "i0"], ["l0"], axis=1, name="spoof"),
             helper.make_node("Sub", ["l1", "l0"], ["d"], name="sub"),
             helper.make_node("Sigmoid", ["d"], ["score"], name="sigmoid")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("score", TensorProto.FLOAT, [1])], [w, fc, i0, i1])
    assert score_head_nodes(helper.make_model(graph)) == ["live", "spoof", "sub", "sigmoid"]
    # Spearman written out: ranks (1,2,3,4) vs (1,3,2,4), Σd² = 2 → 1 − 6·2/(4·15) = 0.8
    assert spearman(np.array([1.0, 2, 3, 4]), np.array([10.0, 30, 20, 40])) == pytest.approx(0.8)
    # ties take their mean rank: (1.5, 1.5, 3) vs (1, 2, 3) → 1.5 / sqrt(1.5 · 2)
    assert spearman(np.array([5.0, 5, 7]), np.array([1.0, 2, 3])) == pytest.approx(1.5 / np.sqrt(3.0))
    assert np.isnan(spearman(np.ones(3), np.array([1.0, 2, 3])))


class CountingBackend:
    def __init__(self, inner) -> None:  # noqa: ANN001
        self.inner, self.name, self.batches = inner, inner.name, []

    def run(self, batch):  # noqa: ANN001, ANN202
        self.batches.append(len(batch))
        return self.inner.run(batch)


def test_all_faces_of_an_image_in_one_model_call(light_ckpt: Path, tmp_path: Path) -> None:
    fp32 = tmp_path / "light.onnx"
    assert CliRunner().invoke(app, ["export", str(light_ckpt), "--onnx", str(fp32)]).exit_code == 0
    p = Predictor.from_checkpoint(fp32, detector="cascade", intra_op_threads=1)
    p.backend = CountingBackend(p.backend)
    res = p.predict(faces_scene(3, 100))
    assert len(res.faces) == 3 and p.backend.batches == [3]
    one_by_one = [p.score_crops([p.crop(faces_scene(3, 100), f.box)])[0][0] for f in res.faces]
    np.testing.assert_allclose([f.score for f in res.faces], one_by_one, atol=1e-5)


def test_thread_helpers() -> None:
    assert machine_threads() == len(os.sched_getaffinity(0))
    import cv2

    before, before_cv = torch.get_num_threads(), cv2.getNumThreads()
    try:
        single_threaded_kernels()
        assert torch.get_num_threads() == 1 and cv2.getNumThreads() == 1
    finally:
        torch.set_num_threads(before)
        cv2.setNumThreads(before_cv)


def test_serve_sizes_one_pool_to_the_machine(light_ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("fastapi")
    import cv2

    import openfas.deploy.server as server_mod

    fp32 = tmp_path / "light.onnx"
    assert CliRunner().invoke(app, ["export", str(light_ckpt), "--onnx", str(fp32)]).exit_code == 0
    seen: dict = {}
    monkeypatch.setattr(server_mod, "serve", lambda predictor, host, port, settings: seen.update(
        predictor=predictor, settings=settings))
    before, before_cv = torch.get_num_threads(), cv2.getNumThreads()
    try:
        res = CliRunner().invoke(app, ["serve", str(fp32), "--detector", "whole"])
        assert res.exit_code == 0, res.output
        assert seen["settings"].max_concurrency == machine_threads()  # 0 (default) = one worker per core
        assert torch.get_num_threads() == 1 and cv2.getNumThreads() == 1  # each worker: one thread
        opts = seen["predictor"].backend.session.get_session_options()
        assert opts.intra_op_num_threads == 1 and opts.inter_op_num_threads == 1
        res = CliRunner().invoke(app, ["serve", str(fp32), "--max-concurrency", "3"])
        assert seen["settings"].max_concurrency == 3
    finally:
        torch.set_num_threads(before)
        cv2.setNumThreads(before_cv)
