"""Per-frame score tables and their evaluation with :mod:`openfas.eval.metrics`.

:class:`ScoreTable` holds the scores of one split (written by training and ``openfas eval``, read back by
reports).

Threshold policies (``policy`` of :func:`evaluate_tables`; the report states which was used):

* ``fixed`` – a given value (e.g. a checkpoint's stored threshold);
* ``eer`` – the EER threshold of the test set itself (an oracle, as DG papers report HTER);
* ``dev_eer`` – the EER threshold of the dev set, applied to test (OULU-NPU, bob ``--criterion eer``);
* ``dev_apcer`` – the smallest dev threshold with worst-species APCER ≤ ``apcer_target``, applied to test
  (bob.pad's ``bpcerN`` criterion with N = 1 / target).

Perfectly separated dev set (every live score above every attack score): the dev data does not pin the threshold
down anywhere inside the gap, and the policies above land on its edge (``dev_eer``: the lowest live score;
``dev_apcer``: just above the highest attack score), so live faces of a new session that score a little lower are
rejected. ``separated_rule="midpoint"`` (the trainer's default, ``eval.separated_rule``) then takes the midpoint of
the gap, ``(highest attack + lowest live) / 2``, which has the same zero dev error and the largest margin to both
classes; ``"policy"`` keeps the policy's value. How the threshold was chosen is recorded under
``threshold["calibration"]`` (and in the checkpoint's ``threshold_info``), with a warning when the set was separated.

Frame-level metrics use a threshold picked on frame scores; video-level metrics (video score = mean of its
frames' scores) use one picked the same way on video scores, so each level is a self-consistent system.

Media without a face (honest denominators): a sampled frame where the face detector found no face never reaches
the model, but a deployed system facing it does not accept it either. Such frames (and media left with no crop
at all, at video level) are scored as REJECTIONS: a live one counts as a BPCER error, an attack one as correctly
rejected (it adds to APCER's denominator, not its errors); for AUC/EER they rank below every scored sample.
Thresholds are still picked on the dev frames that have a face. The counts are in ``metrics.json``
(``no_face``) and the report. A split whose media are all still images is evaluated per image: ``unit`` is
``"image"`` and there is no video level (an image is not a video).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from openfas.data.cache import CropCacheReader
from openfas.eval import metrics as M

_SOURCES = {
    "fixed": "fixed threshold {value:.6g}",
    "eer": "EER threshold of the test set itself (oracle)",
    "dev_eer": "EER threshold of the dev set, applied to test",
    "dev_apcer": "smallest dev threshold with worst-species APCER <= {target:g}, applied to test",
}
SEPARATED_RULES = ("midpoint", "policy")
HEADLINE_KEYS = ("auc", "eer", "hter", "apcer", "bpcer", "acer")


@dataclass
class ScoreTable:
    """Per-frame scores with everything evaluation needs (score: higher = more live).

    ``videos`` holds the media id of each frame (unique per source video in a cache), the key of
    video-level evaluation.
    """

    sample_ids: list[str]
    videos: list[str]
    domains: list[str]
    attacks: list[str]
    labels: np.ndarray
    scores: np.ndarray

    def write_csv(self, path: Path) -> None:
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["sample_id", "video", "domain", "attack", "label", "score"])
            for row in zip(self.sample_ids, self.videos, self.domains, self.attacks,
                           self.labels.tolist(), self.scores.tolist(), strict=True):
                w.writerow([*row[:5], f"{row[5]:.8g}"])


@dataclass(frozen=True)
class NoFaceCounts:
    """What face detection removed from one split of a cache (from its ``done`` records, see
    :func:`openfas.data.prepare.prepare_media`): per attack type (``"live"`` for live), the sampled frames
    without a face and the media left with no crop at all; ``kinds`` = media kinds in the split."""

    frames: dict[str, int] = field(default_factory=dict)
    media: dict[str, int] = field(default_factory=dict)
    kinds: frozenset[str] = frozenset()
    known: bool = True  # False: the cache predates these counts (nothing can be said)

    def to_json(self) -> dict[str, Any]:
        return {"frames": dict(sorted(self.frames.items())), "media": dict(sorted(self.media.items())),
                "n_frames": sum(self.frames.values()), "n_media": sum(self.media.values()),
                "policy": "scored as rejections: live = BPCER error, attack = correctly rejected"}


def no_face_counts(cache_dir: str | Path, split: str, domains: list[str] | None = None) -> NoFaceCounts:
    """:class:`NoFaceCounts` of ``split`` (``"all"`` = every split) restricted to ``domains`` (None = all).
    A cache not made by ``data prepare`` (synthetic, hand-built) had no detector: empty counts."""

    frames: dict[str, int] = {}
    media: dict[str, int] = {}
    kinds: set[str] = set()
    known = True
    reader = CropCacheReader(cache_dir)
    if "prepare" not in reader.info():  # synthetic or hand-built: no detector ran, nothing was dropped
        return NoFaceCounts()
    for st in reader.media_status().values():
        if "split" not in st:
            known = False
            continue
        if (split != "all" and st["split"] != split) or (domains is not None and st["domain"] not in domains):
            continue
        kinds.add(st.get("kind", "video"))
        attack = st["attack"]
        if st.get("frames_no_face"):
            frames[attack] = frames.get(attack, 0) + int(st["frames_no_face"])
        if not st.get("crops"):
            media[attack] = media.get(attack, 0) + 1
    return NoFaceCounts(frames, media, frozenset(kinds), known)


def _with_rejections(scores: np.ndarray, labels: np.ndarray, attacks: np.ndarray,
                     counts: dict[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Append ``counts[attack]`` rows scored −∞ (rejected at any threshold) per attack type."""
    extra = [a for a, n in sorted(counts.items()) for _ in range(n)]
    if not extra:
        return scores, labels, attacks
    return (np.concatenate([scores, np.full(len(extra), -np.inf)]),
            np.concatenate([labels, np.array([1 if a == "live" else 0 for a in extra], dtype=labels.dtype)]),
            np.concatenate([np.asarray(attacks, dtype=object), np.array(extra, dtype=object)]))


def quick_metrics(table: ScoreTable) -> dict[str, float]:
    """AUC, EER and HTER at the EER threshold of the same set (for per-epoch dev monitoring)."""
    if len(set(table.labels.tolist())) < 2:
        return {}
    ss = M.ScoreSet(table.scores, table.labels, np.asarray(table.attacks))
    eer, thr = ss.eer()
    return {"auc": ss.auc(), "eer": float(eer), "hter": float(ss.apcer_bpcer(thr)["hter"])}


def read_scores_csv(path: str | Path) -> ScoreTable:
    """Read a per-frame score CSV written by ``ScoreTable.write_csv`` (errors name the file and row)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: score file not found")
    need = ["sample_id", "video", "domain", "attack", "label", "score"]
    cols: dict[str, list[str]] = {k: [] for k in need}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [k for k in need if k not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing columns {missing} (has {reader.fieldnames})")
        for row in reader:
            for k in need:
                cols[k].append(row[k])
    try:
        labels = np.array([int(x) for x in cols["label"]], dtype=np.int64)
        scores = np.array([float(x) for x in cols["score"]], dtype=np.float64)
    except ValueError as err:
        raise ValueError(f"{path}: bad label or score value ({err})") from None
    return ScoreTable(cols["sample_id"], cols["video"], cols["domain"], cols["attack"], labels, scores)


def video_table(table: ScoreTable) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Video-level (scores, labels, attacks, ids): mean frame score per ``domain/video``."""
    ids = np.asarray([f"{d}/{v}" for d, v in zip(table.domains, table.videos, strict=True)])
    return M.video_level(table.scores, table.labels, np.asarray(table.attacks), ids)


def _level_arrays(table: ScoreTable, level: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if level == "video":
        s, y, a, _ = video_table(table)
        return s, y, a
    return table.scores, table.labels, np.asarray(table.attacks)


def choose_threshold(policy: str, test: ScoreTable, dev: ScoreTable | None = None, fixed: float = 0.5,
                     apcer_target: float = 0.05, level: str = "frame") -> float:
    """The threshold of ``policy`` at ``level`` ("frame" or "video"); see the module docstring."""
    if policy == "fixed":
        return float(fixed)
    if policy == "eer":
        s, y, _ = _level_arrays(test, level)
        return M.select_threshold("eer", s, y)
    if policy in ("dev_eer", "dev_apcer"):
        if dev is None:
            raise ValueError(f"threshold policy {policy!r} needs dev scores")
        s, y, a = _level_arrays(dev, level)
        return M.select_threshold(policy, s, y, a, apcer_target)
    raise ValueError(f"unknown threshold policy {policy!r}; use fixed, eer, dev_eer or dev_apcer")


def calibrate_separated(policy_value: float, dev: ScoreTable, level: str = "frame", rule: str = "midpoint"
                        ) -> tuple[float, dict[str, Any]]:
    """Apply ``rule`` (see the module docstring) to a dev threshold: ``(threshold, calibration record)``."""
    if rule not in SEPARATED_RULES:
        raise ValueError(f"unknown separated_rule {rule!r}; use {' or '.join(SEPARATED_RULES)}")
    s, y, _ = _level_arrays(dev, level)
    max_attack, min_live, separated = M.separation_gap(s, y)
    info: dict[str, Any] = {"level": level, "n_live": int((y == 1).sum()), "n_attack": int((y == 0).sum()),
                            "max_attack": max_attack, "min_live": min_live, "separated": separated,
                            "policy_value": float(policy_value), "rule": "policy"}
    if not separated:
        return float(policy_value), info
    if rule == "midpoint":
        value = (max_attack + min_live) / 2
        info["rule"] = f"midpoint of the dev gap: ({max_attack:.6g} + {min_live:.6g}) / 2 = {value:.6g}"
    else:
        value = float(policy_value)
        info["rule"] = "the policy's own value (separated_rule=policy), at the edge of the gap"
    info["warning"] = (f"the dev set was perfectly separated ({level} level: every live score above every attack "
                       f"score, gap {max_attack:.6g} .. {min_live:.6g}), so the dev data do not pin the threshold "
                       f"down; {value:.6g} was chosen by the rule above. Faces from other cameras or light may "
                       "score differently: check the threshold on data from your deployment conditions")
    return value, info


def evaluate_tables(test: ScoreTable, dev: ScoreTable | None, policy: str, fixed: float = 0.5,
                    video_level: bool = True, apcer_target: float = 0.05,
                    source: str | None = None, no_face: NoFaceCounts | None = None,
                    separated_rule: str = "policy") -> dict[str, Any]:
    """Metrics of ``test`` at thresholds chosen by ``policy`` (fixed, eer, dev_eer, dev_apcer).

    Returns ``{"threshold": {policy, value, source, ...}, "frame": summary, "video": summary?,
    "video_threshold": {...}?, "headline": {..., "level"}, "n_test_frames", "n_test_videos"?, "unit",
    "no_face"?}``; ``source`` overrides the sentence that says where the threshold came from. ``no_face``: the
    test split's media without a face, scored as rejections (module docstring); the counts of frames/videos
    include them. ``separated_rule`` applies to the dev policies when the dev set is perfectly separated
    (module docstring); the threshold's ``calibration`` record says what was done.
    """
    if policy not in _SOURCES:
        raise ValueError(f"unknown threshold policy {policy!r}; use fixed, eer, dev_eer or dev_apcer")
    threshold = choose_threshold(policy, test, dev, fixed, apcer_target, "frame")
    text = source or _SOURCES[policy].format(value=threshold, target=apcer_target)
    cal: dict[str, Any] | None = None
    if policy in ("dev_eer", "dev_apcer") and dev is not None:
        threshold, cal = calibrate_separated(threshold, dev, "frame", separated_rule)
    thr_info: dict[str, Any] = {"policy": policy, "value": float(threshold), "source": text}
    if cal is not None:
        thr_info["calibration"] = cal
    if policy == "dev_apcer":
        thr_info["apcer_target"] = float(apcer_target)
    nf = no_face if no_face is not None and no_face.known else None
    fs, fy, fa = _with_rejections(test.scores, test.labels, np.asarray(test.attacks), nf.frames if nf else {})
    frame = M.summarize(fs, fy, fa, threshold)
    images = nf is not None and nf.kinds == {"image"}
    out: dict[str, Any] = {"threshold": thr_info, "frame": frame, "n_test_frames": int(len(fs)),
                           "unit": "image" if images else "frame"}
    if nf is not None:
        out["no_face"] = nf.to_json()
    elif no_face is not None:
        out["no_face"] = {"unknown": "the cache predates face-detection counts; media without a face are not "
                                     "counted here"}
    headline_src = frame
    if video_level and not images:
        vs, vl, va, _ = video_table(test)
        vs, vl, va = _with_rejections(vs, vl, va, nf.media if nf else {})
        dev_ok = dev is None or len(set(video_table(dev)[1].tolist())) == 2 or policy in ("fixed", "eer")
        if len(set(vl.tolist())) == 2 and dev_ok:
            vthr = choose_threshold(policy, test, dev, fixed, apcer_target, "video")
            vinfo = {**thr_info, "source": text + " (picked on video-level scores)"}
            if cal is not None and dev is not None:
                vthr, vinfo["calibration"] = calibrate_separated(vthr, dev, "video", separated_rule)
            vinfo["value"] = float(vthr)
            out["video"] = M.summarize(vs, vl, va, vthr)
            out["video_threshold"] = vinfo
            out["n_test_videos"] = int(len(vs))
            headline_src = out["video"]
    out["headline"] = {k: headline_src[k] for k in HEADLINE_KEYS if k in headline_src}
    out["headline"]["level"] = "video" if headline_src is not frame else out["unit"]
    return out
