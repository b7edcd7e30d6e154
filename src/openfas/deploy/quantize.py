"""Static int8 quantisation of an exported ONNX model with ONNX Runtime's quantisation tools.

``quantize_onnx(float.onnx, int8.onnx, calibration)``: activations and weights become int8 (QDQ format,
per-channel weights) with activation ranges calibrated on real face crops (``calibration``: N×C×S×S float32,
preprocessed exactly as the model expects; :func:`calibration_from_cache` reads them from a crop cache). The
source's integrity seal is checked first; its openfas metadata is carried over with ``"quantized": "int8"`` and
the output is sealed anew, so :class:`~openfas.deploy.predictor.Predictor` loads the file like any export. What
int8 costs in accuracy depends on the model and the data: measure it (``bench/bench_light.py`` scores a cache's
test split with both files and prints the AUC change).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from openfas.data.dataset import FaceCropDataset
from openfas.deploy.export import write_sealed_onnx
from openfas.deploy.predictor import load_onnx_session


def calibration_from_cache(cache_dir: str | Path, meta: dict[str, Any], split: str = "train", n: int = 256,
                           seed: int = 0) -> np.ndarray:
    """``n`` crops of ``split`` (a seeded random subset, live and spoof alike) preprocessed for the model of
    ``meta`` (eval transform: resize to image_size, RGB, ``(x/255 − mean)/std``)."""
    pre = meta["preprocess"]
    ds = FaceCropDataset(cache_dir, split, image_size=int(pre["image_size"]), map_size=int(pre.get("map_size", 8)),
                         train=False, mean=float(pre["mean"]), std=float(pre["std"]))
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(ds))[: min(n, len(ds))]
    return np.stack([ds[int(i)]["image"].numpy() for i in idx]).astype(np.float32)


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol over an array, in batches."""

    def __init__(self, data: np.ndarray, batch: int = 16) -> None:
        self.batches = [data[i:i + batch] for i in range(0, len(data), batch)]
        self.i = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.i >= len(self.batches):
            return None
        self.i += 1
        return {"image": self.batches[self.i - 1]}

    def rewind(self) -> None:
        self.i = 0


def quantize_onnx(src: str | Path, out: str | Path, calibration: np.ndarray, per_channel: bool = True) -> Path:
    """Write the int8 (QDQ) version of the openfas ONNX file ``src`` to ``out``; returns ``out``."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, out = Path(src), Path(out)
    if calibration.ndim != 4 or len(calibration) == 0:
        raise ValueError(f"calibration data must be a non-empty N×C×S×S array, got shape {calibration.shape}")
    _, meta = load_onnx_session(src)  # refuses files whose integrity seal does not match
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        prepped = Path(tmp) / "prepped.onnx"
        quant_pre_process(str(src), str(prepped), skip_symbolic_shape=True)
        qpath = Path(tmp) / "int8.onnx"
        quantize_static(str(prepped), str(qpath), _Reader(calibration), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=per_channel,
                        calibrate_method=CalibrationMethod.MinMax)
        meta["quantized"] = "int8"
        meta["calibration_samples"] = int(len(calibration))
        write_sealed_onnx(onnx.load(str(qpath)), meta, out)
    return out


__all__ = ["calibration_from_cache", "quantize_onnx"]
