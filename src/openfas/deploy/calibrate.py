"""Site calibration: re-pick a model's decision threshold on the deployment's own bona fide faces.

A threshold chosen on a training dataset's dev split does not survive a new camera or light: the colour LBP model
trained on NUAA rejected 52.5 % of a set of LFW faces at its dev threshold (docs/results.md, site calibration).
Bona fide faces of the deployment site are easy to collect, attacks are not, so the rule needs live faces only:

    t = the k-th smallest live score, k = floor(target · n)  (0-based; scores sorted ascending)

With ``live = score ≥ t``, at most k of the n live faces score below t, so the BPCER on these faces is
k / n ≤ target (ISO/IEC 30107-3 BPCER: the share of bona fide presentations classified as attacks). Attack
inputs, when given, are only measured (APCER at t); they never move the threshold. The rewritten model file keeps
the weights and records the rule, the counts, the measured rates and the previous threshold in its metadata
(``threshold_info``), which ``openfas predict --explain`` reads back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from openfas.data.video import is_image_file
from openfas.deploy.export import write_sealed_onnx
from openfas.deploy.predictor import load_onnx_session
from openfas.deploy.uploads import ImageInputError
from openfas.errors import OpenFASError
from openfas.io.checkpoint import load_checkpoint, save_checkpoint

SITE_POLICY = "site_bpcer"
MIN_LIVE = 20  # fewer bona fide faces than this cannot place a threshold worth storing


class CalibrationError(OpenFASError, ValueError):
    """The inputs cannot calibrate a threshold (too few scored faces, bad target, unwritable output)."""


def site_threshold(live_scores: Sequence[float] | np.ndarray, target_bpcer: float) -> float:
    """The threshold that rejects at most ``target_bpcer`` of ``live_scores`` (see the module docstring)."""
    s = np.sort(np.asarray(live_scores, dtype=np.float64).ravel())
    if not 0.0 <= target_bpcer < 1.0:
        raise CalibrationError(f"the target BPCER must be in [0, 1), got {target_bpcer}")
    if s.size == 0:
        raise CalibrationError("no live scores to calibrate on")
    if not np.isfinite(s).all():
        raise CalibrationError("live scores contain NaN or infinite values")
    return float(s[math.floor(target_bpcer * s.size)])


def rejected_share(scores: np.ndarray, threshold: float) -> float:
    """Share of ``scores`` below ``threshold`` (classified as attacks; BPCER when the scores are live)."""
    return float((np.asarray(scores) < threshold).mean()) if len(scores) else float("nan")


@dataclass
class ScoredInputs:
    """Decision-level scores of a set of files (an image: its main, most confident face; a video: the mean over
    frames of the main face, the score ``openfas predict`` decides on), and what could not be scored."""

    scores: list[float] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    no_face: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    @property
    def array(self) -> np.ndarray:
        return np.asarray(self.scores, dtype=np.float64)

    def summary(self, what: str) -> str:
        return (f"{what}: {len(self.files) + len(self.no_face) + len(self.unreadable)} file(s), "
                f"{len(self.scores)} scored, {len(self.no_face)} without a face, {len(self.unreadable)} unreadable "
                "(not used)")


def score_files(predictor: Any, files: Sequence[Path], every: int = 10,
                on_file: Callable[[], None] | None = None) -> ScoredInputs:
    """Score ``files`` with a :class:`~openfas.deploy.predictor.Predictor` at the decision level."""
    out = ScoredInputs()
    for path in files:
        try:
            if is_image_file(path):
                face = predictor.predict(path).main_face()
                score = None if face is None else face.score
            else:
                score = predictor.predict_video(path, every=every).mean_score
        except (ImageInputError, OSError) as err:
            out.unreadable.append((str(path), str(err)))
        else:
            if score is None:
                out.no_face.append(str(path))
            else:
                out.scores.append(float(score))
                out.files.append(str(path))
        if on_file is not None:
            on_file()
    return out


def calibration_info(live: ScoredInputs, attack: ScoredInputs | None, target_bpcer: float, threshold: float,
                     previous: dict[str, Any], sources: dict[str, list[str]]) -> dict[str, Any]:
    """The ``threshold_info`` record stored with a site-calibrated threshold."""
    n = len(live.scores)
    k = math.floor(target_bpcer * n)
    info: dict[str, Any] = {
        "policy": SITE_POLICY,
        "source": f"openfas calibrate: target BPCER {target_bpcer:.4g} on {n} bona fide faces of the deployment "
                  f"site ({k} of them may score below the threshold)",
        "target_bpcer": target_bpcer, "n_live": n, "bpcer": rejected_share(live.array, threshold),
        "live_no_face": len(live.no_face), "live_unreadable": len(live.unreadable),
        "inputs": sources, "previous": previous,
    }
    if previous.get("threshold") is not None:
        info["previous_bpcer"] = rejected_share(live.array, float(previous["threshold"]))
    if attack is not None and attack.scores:
        a = attack.array
        info.update(n_attack=len(a), apcer=float((a >= threshold).mean()),
                    attack_no_face=len(attack.no_face), attack_unreadable=len(attack.unreadable))
        if previous.get("threshold") is not None:
            info["previous_apcer"] = float((a >= float(previous["threshold"])).mean())
    return info


def calibration_warnings(info: dict[str, Any]) -> list[str]:
    """What a reader of a site-calibrated threshold should be told (also used by ``predict --explain``)."""
    warns = []
    n, target = int(info.get("n_live", 0)), float(info.get("target_bpcer", 0.0))
    if math.floor(target * n) < 5:
        warns.append(f"the threshold rests on {math.floor(target * n)} rejected live face(s) of {n}: collect more "
                     "bona fide faces for a stable threshold")
    if "apcer" not in info:
        warns.append("no attack presentations were scored at this threshold: its APCER is unknown")
    return warns


def check_output(model_path: str | Path, out: str | Path) -> None:
    """Refuse an output that would overwrite the model or change its format (before any face is scored)."""
    model_path, out = Path(model_path), Path(out)
    if out.resolve() == model_path.resolve():
        raise CalibrationError(f"{out}: the output must be a new file, not the model being calibrated")
    want = ".onnx" if model_path.suffix.lower() == ".onnx" else ".safetensors"
    if out.suffix.lower() != want:
        what = "an ONNX model" if want == ".onnx" else "a checkpoint"
        raise CalibrationError(f"{out}: {what} is written to a {want} file")


def write_with_threshold(model_path: str | Path, out: str | Path, threshold: float, info: dict[str, Any],
                         *, allow_unsigned: bool | None = None) -> Path:
    """Copy a checkpoint (``.safetensors``: weights and metadata only, no optimiser state) or an exported ONNX
    model to ``out`` with a new threshold and ``threshold_info``; the source's integrity is checked first and the
    copy is sealed anew (the seal covers the metadata)."""
    model_path, out = Path(model_path), Path(out)
    check_output(model_path, out)
    if model_path.suffix.lower() == ".onnx":
        # deferred: onnx is an optional extra, only needed for ONNX models
        import onnx

        data = model_path.read_bytes()  # read once: the bytes whose seal is checked are the bytes copied
        _, meta = load_onnx_session(model_path, allow_unsigned=allow_unsigned, data=data)
        proto = onnx.load_from_string(data)
        write_sealed_onnx(proto, {**meta, "threshold": threshold, "threshold_info": info}, out)
        return out
    ckpt = load_checkpoint(model_path, allow_unsigned=allow_unsigned)
    meta = {**ckpt["meta"], "threshold": threshold, "threshold_info": info}
    return save_checkpoint(out, model_state=ckpt["model"], meta=meta)
