"""Fast inference path of the light model: ONNX export, static int8 quantisation (`openfas export --int8`),
all faces of an image in one model call, single-threaded kernels for the service's worker pool."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from deploy_fixtures import faces_scene
from typer.testing import CliRunner

from openfas.cli import app
from openfas.config import load_config
from openfas.deploy.predictor import Predictor, machine_threads, single_threaded_kernels
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
