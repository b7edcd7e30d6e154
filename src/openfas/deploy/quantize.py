"""Static int8 quantisation of an exported ONNX model with ONNX Runtime's quantisation tools, checked for fidelity.

``quantize_onnx(float.onnx, int8.onnx, calibration)``: weights and activations become 8-bit (QDQ format,
per-channel weights) with activation ranges calibrated (MinMax) on real face crops (``calibration``: N×C×S×S
float32, preprocessed exactly as the model expects; :func:`calibration_from_cache` reads them from a crop cache
with the dataset's eval transform, which is the Predictor's preprocessing, pixel for pixel). The source's integrity
seal is checked first; its openfas metadata is carried over with ``"quantized": "int8"`` and the fidelity below,
and the output is sealed anew, so :class:`~openfas.deploy.predictor.Predictor` loads the file like any export.

Choices, each measured on NUAA (``light/minifasnet_nuaa.yaml``, session-2 dev crops, 256 session-1 calibration
crops; numbers in README "Deployment"):

* **Unsigned 8-bit activations AND weights (U8U8), not signed int8 weights.** ONNX Runtime's x86 int8 kernels
  on CPUs without VNNI (AVX2, AVX-512 without VNNI) multiply u8 activations by s8 weights with ``vpmaddubsw``,
  which saturates each sum of two products at int16, so a convolution's result can be silently wrong (the
  "saturation issue" OpenVINO's docs describe for the same instructions). The evidence, on an AVX2 machine: the
  former S8S8 file, run with graph optimisations off (QDQ emulated in float, no integer kernels), stayed close to
  the float model (dev mean |Δscore| 0.013, AUC 0.864 vs 0.869), while the same file on the fused integer
  kernels drifted to mean |Δ| 0.050, max 0.75, AUC 0.807; u8 activations with s8 weights drifted alike (0.049).
  The U8U8 file gives the same scores on the integer kernels as emulated in float (mean |Δ| 0.0107 vs 0.0106),
  i.e. its kernels do not saturate. ``reduce_range`` (7-bit weights) is ONNX Runtime's other remedy; it loses
  one bit of weight precision and measured less faithful here (0.015) and not faster.
* **The score head stays float.** Every node after the last weighted layer (Conv/Gemm/MatMul) — the
  Gather/Sub/Sigmoid that turns two logits into a probability (for a pixel-wise model, the mean over its map)
  — is excluded from quantisation (:func:`score_head_nodes`). Quantised, the score itself is rounded to 1/255
  steps: every live probability under 0.002 becomes 0 (ties in the ranking) and a dev threshold such as
  0.0095 sits two steps above zero. These nodes are elementwise and cost nothing in float.
* Calibration stays MinMax over 256 training crops: Percentile calibration, all 443 crops, 64
  crops, excluding the first convolution, the global depthwise convolution or the residual Adds changed the
  dev mean |Δ| from 0.0107 to between 0.0105 and 0.0132 (none clearly better), so the simplest rule is kept.

**Fidelity check.** After quantising, both models score the calibration crops (through the same output the
Predictor reads) and :class:`Fidelity` reports max and mean |score_int8 − score_float| and their Spearman rank
correlation. ``openfas export --int8`` prints it and warns when the mean |Δ| exceeds ``--int8-tolerance``
(default :data:`DEFAULT_TOLERANCE` = 0.01; on the 256 NUAA calibration crops the fixed quantiser gives 0.0008 and
the former S8S8 one 0.025); ``--int8-strict`` then fails and removes the file. The calibration crops are training
data, on which a trained model's scores sit near 0 and 1, so the differences there are smaller than on held-out
crops (NUAA dev: 0.011 fixed, 0.050 former): the check catches an int8 file that computes a different function,
it does not measure accuracy; do that on held-out data with ``bench/bench_light.py``.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from openfas.data.dataset import FaceCropDataset
from openfas.deploy.export import write_sealed_onnx
from openfas.deploy.predictor import OnnxBackend, load_onnx_session

DEFAULT_TOLERANCE = 0.01
"""Largest accepted mean |score_int8 − score_float| over the calibration crops (see the module docstring)."""

_WEIGHTED_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})


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


@dataclass(frozen=True)
class Fidelity:
    """How closely the int8 model's scores follow the float model's on ``n`` crops."""

    n: int
    on: str  # what the n crops are, for the report
    max_abs_diff: float
    mean_abs_diff: float
    spearman: float  # rank correlation of the two score lists (nan when either is constant)
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.mean_abs_diff <= self.tolerance

    def __str__(self) -> str:
        return (f"int8 fidelity on {self.n} {self.on}: mean |Δscore| {self.mean_abs_diff:.4f} "
                f"(tolerance {self.tolerance:g}), max |Δscore| {self.max_abs_diff:.4f}, "
                f"Spearman {self.spearman:.4f}")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation: Pearson's correlation of the average ranks (ties share the mean of their
    positions); nan when either list is constant."""
    from scipy.stats import rankdata

    ra, rb = rankdata(np.asarray(a, np.float64)), rankdata(np.asarray(b, np.float64))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = math.sqrt(float((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / den) if den > 0 else float("nan")


def _scores(path: Path, data: np.ndarray, batch: int = 64) -> np.ndarray:
    session, _ = load_onnx_session(path, intra_op_threads=1)
    backend = OnnxBackend(session)
    return np.concatenate([backend.run(data[i:i + batch])[0].reshape(-1) for i in range(0, len(data), batch)])


def measure_fidelity(float_onnx: str | Path, int8_onnx: str | Path, data: np.ndarray,
                     tolerance: float = DEFAULT_TOLERANCE, on: str = "crops") -> Fidelity:
    """Score ``data`` (preprocessed crops) with both openfas ONNX files and compare the scores."""
    f = _scores(Path(float_onnx), data).astype(np.float64)
    q = _scores(Path(int8_onnx), data).astype(np.float64)
    d = np.abs(q - f)
    return Fidelity(n=len(data), on=on, max_abs_diff=float(d.max()), mean_abs_diff=float(d.mean()),
                    spearman=spearman(q, f), tolerance=float(tolerance))


def score_head_nodes(model: Any) -> list[str]:
    """Names of the nodes that come after the last weighted layer (no Conv/Gemm/MatMul downstream of them): the
    elementwise head that maps logits or a map to the score. ``model.graph.node`` is topologically sorted (the
    ONNX spec requires it), so one backward pass marks every node that feeds a weighted layer."""
    feeds_weighted: set[str] = set()
    head: list[str] = []
    for node in reversed(model.graph.node):
        if node.op_type in _WEIGHTED_OPS or any(o in feeds_weighted for o in node.output):
            feeds_weighted.update(node.input)
        else:
            head.append(node.name)
    return head[::-1]


def quantize_onnx(src: str | Path, out: str | Path, calibration: np.ndarray, per_channel: bool = True,
                  tolerance: float = DEFAULT_TOLERANCE) -> Fidelity:
    """Write the int8 (QDQ) version of the openfas ONNX file ``src`` to ``out`` and return its :class:`Fidelity`
    to ``src`` on the calibration crops (also stored in the file's metadata as ``int8_fidelity``)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, out = Path(src), Path(out)
    if calibration.ndim != 4 or len(calibration) == 0:
        raise ValueError(f"calibration data must be a non-empty N×C×S×S array, got shape {calibration.shape}")
    if not tolerance > 0:
        raise ValueError(f"the int8 fidelity tolerance must be > 0, got {tolerance}")
    _, meta = load_onnx_session(src)  # refuses files whose integrity seal does not match
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        prepped = Path(tmp) / "prepped.onnx"
        quant_pre_process(str(src), str(prepped), skip_symbolic_shape=True)
        model = onnx.load(str(prepped))
        for i, node in enumerate(model.graph.node):  # nodes_to_exclude works by name
            if not node.name:
                node.name = f"openfas_{node.op_type}_{i}"
        onnx.save(model, str(prepped))
        qpath = Path(tmp) / "int8.onnx"
        quantize_static(str(prepped), str(qpath), _Reader(calibration), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QUInt8, per_channel=per_channel,
                        calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=score_head_nodes(model))
        meta["quantized"] = "int8"
        meta["calibration_samples"] = int(len(calibration))
        candidate = Path(tmp) / "sealed.onnx"
        write_sealed_onnx(onnx.load(str(qpath)), meta, candidate)
        fidelity = measure_fidelity(src, candidate, calibration, tolerance, on="calibration crops")
        meta["int8_fidelity"] = {k: None if isinstance(v, float) and math.isnan(v) else v
                                 for k, v in asdict(fidelity).items()}  # strict JSON: no NaN
        write_sealed_onnx(onnx.load(str(qpath)), meta, out)
    return fidelity


__all__ = ["DEFAULT_TOLERANCE", "Fidelity", "calibration_from_cache", "measure_fidelity", "quantize_onnx",
           "score_head_nodes", "spearman"]
