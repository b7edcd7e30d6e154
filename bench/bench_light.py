"""The light deployable model end to end on ONE thread: time by stage, the deployed detector against the
model's training detector, accuracy float vs int8, and what the detector setting does to the scores.

    python bench/bench_light.py [MODEL] --frames DIR_OR_FILES [--n 40] [--repeats 5] [--detector SPEC]
                                [--baseline-detector SPEC] [--int8 MODEL-int8.onnx]
    python bench/bench_light.py [MODEL] --agree nuaa:ROOT:test replay:ROOT:test folder:ROOT [--detector SPEC]
    python bench/bench_light.py MODEL --cache CACHE [--split test] [--int8 …] [--checkpoint …]

``MODEL``: an ``.onnx`` file or a bundled model's name (default: the bundled model). The commands behind the
model card's speed and detector sections (from the repository root, the shared data next to it; no
``OMP_NUM_THREADS``: the bench sets every thread count itself, and the OpenMP-default line needs it unset):

    python bench/bench_light.py --frames ../shared/data/nuaa/ClientRaw/0004 ../shared/data/nuaa/ImposterRaw/0004 \
        --n 40 --repeats 7
    python bench/bench_light.py --agree nuaa:../shared/data/nuaa:test replay:../shared/data/replayattack:test \
        folder:../shared/data/celeba_spoof_subset

Timing (``--frames``: folders or files of full frames, e.g. NUAA's 640×480 webcam JPEGs): PyTorch, OpenCV, ONNX
Runtime (intra-op 1, sequential) and the face detector's OpenMP runtime all on one thread; the same ``--n``
frames (JPEG bytes in memory) go through every variant, interleaved round by round so that machine noise hits
each alike; per frame, the median over ``--repeats`` rounds of the mean over frames:

* ``decode``                  – JPEG bytes → BGR (the Predictor's decoder: header checks, EXIF orientation);
* ``detector``                – the deployed detector (``--detector``; default: what ``Predictor`` picks for
  the model, the manifest's for a bundled model) on the decoded frame;
* ``detector baseline``       – the detector the model's training crops were cut with (``--baseline-detector``);
* ``detector baseline, OpenMP default`` – the same with the detector library's OpenMP runtime left at its own
  default (``OMP_NUM_THREADS``, else one thread per core), what the library does when nothing sets it; timed
  apart, after the others, against the one-thread baseline (its spinning threads would slow what runs next);
* ``end-to-end``              – ``Predictor.predict(bytes)``: decode + detect + crop + preprocess + model;
* ``end-to-end baseline``     – the same with the baseline detector;
* ``end-to-end int8``         – the deployed pipeline with the int8 model (``--int8``);
* ``model``                   – the model alone on one preprocessed crop;

then each stage's share of the end-to-end time and the ratios deployed / baseline (the numbers to quote: the
machine's load changes the milliseconds, much less the ratios).

Agreement (``--agree NAME:ROOT[:SPLIT]``, dataset adapters such as ``nuaa``, ``replay``, ``folder``; SPLIT
default ``test``, or the only one): one frame per item (a frame folder's first), detected with both detectors
(one thread), the most confident box of each scored by the model. Per dataset: frames with a face under each,
IoU of the two boxes, |score difference|, live decisions that flip at the model's threshold, AUC and
APCER/BPCER under each. For scale, the same numbers for the baseline detector against itself on the frame
shifted by one pixel of its working size (a camera moved by that much): how much the pipeline's scores move
anyway.

Accuracy (``--cache``): the crops of ``--split`` scored by the float and the int8 model (``detector="whole"``: the
cache's crops, as training made them); frame-level AUC of each and the change, plus BPCER/APCER at the stored
threshold, and the fidelity of int8 to float (max and mean |score difference|, Spearman rank correlation; choose
``--split dev`` while tuning anything, report ``test`` once). Scores of the float ONNX model are also checked
against the PyTorch checkpoint when ``--checkpoint`` is given.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np


def _frames(spec: list[str], n: int) -> list[bytes]:
    paths: list[Path] = []
    for s in spec:
        p = Path(s)
        paths += sorted(q for q in p.iterdir() if q.suffix.lower() in (".jpg", ".jpeg", ".png")) if p.is_dir() else [p]
    if not paths:
        raise SystemExit(f"no frames in {spec}")
    return [paths[i % len(paths)].read_bytes() for i in range(max(n, 1))]


def _interleaved(variants: dict, n: int, repeats: int) -> dict[str, float]:
    """ms per frame of each ``variants[k](i)`` (i = 0 … n−1): every variant on frame i before frame i + 1, so that
    bursts of machine noise hit all alike; the median over ``repeats`` rounds of the mean over the frames."""
    for fn in variants.values():  # warm-up
        fn(0)
    rounds: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):
        total = dict.fromkeys(variants, 0.0)
        for i in range(n):
            for k, fn in variants.items():
                t0 = time.perf_counter()
                fn(i)
                total[k] += time.perf_counter() - t0
        for k, v in total.items():
            rounds[k].append(v / n * 1000)
    return {k: statistics.median(v) for k, v in rounds.items()}


def _predictors(args: argparse.Namespace):  # noqa: ANN202
    """(deployed Predictor, baseline Predictor), both with ONNX Runtime on one thread."""
    from openfas.deploy.predictor import Predictor

    deployed = Predictor.from_checkpoint(args.model, detector=args.detector, intra_op_threads=1)
    baseline_spec = args.baseline_detector or _training_detector(deployed)
    baseline = Predictor.from_checkpoint(args.model, detector=baseline_spec, intra_op_threads=1)
    return deployed, baseline


def _training_detector(pred) -> str:  # noqa: ANN001
    crop = pred.meta["preprocess"].get("crop") or {}
    spec = crop.get("detector") if crop.get("source") == "prepared" else None
    return spec if isinstance(spec, str) else pred.detector_spec


def timing(args: argparse.Namespace) -> None:
    from openfas.data.detectors import SlimeFaceDetector, build_detector
    from openfas.deploy.predictor import Predictor, single_threaded_kernels
    from openfas.deploy.uploads import decode_image_bytes

    single_threaded_kernels()
    frames = _frames(args.frames, args.n)
    deployed, baseline = _predictors(args)
    p8 = Predictor.from_checkpoint(args.int8, detector=deployed.detector_spec, intra_op_threads=1) \
        if args.int8 else None
    det, det_base = build_detector(deployed.detector_spec), build_detector(baseline.detector_spec)
    decoded = [decode_image_bytes(f) for f in frames]
    h, w = decoded[0].shape[:2]
    found = sum(len(deployed.predict(f).faces) > 0 for f in frames)
    found_base = sum(len(baseline.predict(f).faces) > 0 for f in frames)
    crop = None
    for img in decoded:
        boxes = deployed.detect(img)
        if boxes:
            crop = deployed.preprocess([deployed.crop(img, boxes[0])])
            break
    variants = {  # each: what to do with frame i
        "decode": lambda i: decode_image_bytes(frames[i]),
        "detector": lambda i: det.detect(decoded[i]),
        "detector baseline": lambda i: det_base.detect(decoded[i]),
        "end-to-end": lambda i: deployed.predict(frames[i]),
        "end-to-end baseline": lambda i: baseline.predict(frames[i]),
    }
    if p8 is not None:
        variants["end-to-end int8"] = lambda i: p8.predict(frames[i])
    if crop is not None:
        variants["model"] = lambda i: deployed.backend.run(crop)
        if p8 is not None:
            variants["model int8"] = lambda i: p8.backend.run(crop)
    med = _interleaved(variants, len(frames), args.repeats)
    omp_med = None
    if isinstance(det_base, SlimeFaceDetector):
        # Measured apart, after the rest: an OpenMP team's threads keep spinning for a while after each call and
        # would slow whatever runs next. Its calls run on a thread of their own, where nothing has set the
        # (per-thread) OpenMP thread count.
        omp_default = SlimeFaceDetector(det_base.min_score, det_base.max_side, threads=None)
        own_thread = ThreadPoolExecutor(1)
        omp_med = _interleaved({
            "detector baseline": lambda i: det_base.detect(decoded[i]),
            "detector baseline, OpenMP default": lambda i: own_thread.submit(omp_default.detect, decoded[i]).result(),
        }, len(frames), args.repeats)
        own_thread.shutdown()
    omp = os.environ.get("OMP_NUM_THREADS") or f"unset: {os.cpu_count()} cores"
    print(f"{len(frames)} frames {w}×{h}; model {deployed.model_name} ({deployed.identity['name']}); 1 thread; "
          f"median of {args.repeats} rounds; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"  detector {deployed.detector_spec} (faces in {found} frames); baseline {baseline.detector_spec} "
          f"(faces in {found_base}); OMP_NUM_THREADS {omp}")
    for k, v in med.items():
        print(f"  {k:<44} {v:8.2f} ms/frame")
    for k, v in (omp_med or {}).items():
        print(f"  {k + ' (apart)':<44} {v:8.2f} ms/frame")
    e2e = med["end-to-end"]
    rest = e2e - med["decode"] - med["detector"]
    print(f"  shares of end-to-end: decode {med['decode'] / e2e:.0%}, detector {med['detector'] / e2e:.0%}, "
          f"crop + preprocess + model {rest / e2e:.0%}" + (f" (model alone {med['model'] / e2e:.0%})"
                                                            if "model" in med else ""))
    print(f"  ratio end-to-end / end-to-end baseline        {e2e / med['end-to-end baseline']:.2f}")
    print(f"  ratio detector / detector baseline            {med['detector'] / med['detector baseline']:.2f}")
    if omp_med is not None:
        print(f"  ratio detector baseline 1 thread / OpenMP default "
              f"{omp_med['detector baseline'] / omp_med['detector baseline, OpenMP default']:.2f}")
    if p8 is not None:
        print(f"  ratio end-to-end int8 / float    {med['end-to-end int8'] / e2e:.2f}")
        if "model int8" in med:
            print(f"  ratio model int8 / float         {med['model int8'] / med['model']:.2f}")


def _agree_items(spec: str) -> tuple[str, list[tuple[np.ndarray, int]]]:
    from openfas.data.datasets import get_dataset
    from openfas.data.video import read_frames

    name, _, rest = spec.partition(":")
    root, _, split = rest.partition(":")
    adapter = get_dataset(name)(root)
    if not split:  # "test", or the only split of an adapter without one (a flat folder: "all")
        splits = tuple(adapter.splits)
        if "test" not in splits and len(splits) != 1:
            raise SystemExit(f"{spec}: {name} at {root} has no 'test' split and more than one other "
                             f"({', '.join(splits)}); give one as {name}:{root}:SPLIT")
        split = "test" if "test" in splits else splits[0]
    items = adapter.list_media(split)
    frames = []
    for it in items:
        got = read_frames(it.paths["rgb"], [0])
        if got:
            frames.append((got[0][1], int(it.label)))
    return f"{name}:{Path(root).name}:{split}", frames


def _both_classes(labels: np.ndarray) -> bool:
    return bool(0 < labels.sum() < len(labels))


def _iou(a, b) -> float:  # noqa: ANN001
    x0, y0 = max(a.x, b.x), max(a.y, b.y)
    x1, y1 = min(a.x + a.w, b.x + b.w), min(a.y + a.h, b.y + b.h)
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    return inter / (a.w * a.h + b.w * b.h - inter)


def agreement(args: argparse.Namespace) -> None:
    from openfas.data.detectors import main_face
    from openfas.data.face import Box
    from openfas.eval import metrics as M

    deployed, baseline = _predictors(args)
    det, det_base = deployed.face_detector(), baseline.face_detector()
    if det is None or det_base is None:
        raise SystemExit("--agree compares two face detectors; 'whole' finds none")
    thr = deployed.threshold
    side = getattr(det_base, "max_side", None)
    print(f"agreement: detector {deployed.detector_spec} against {baseline.detector_spec}; model "
          f"{deployed.identity['name']}, threshold {thr:.4g}")

    def score(img: np.ndarray, box: Box | None) -> float:
        return float("nan") if box is None else float(deployed.score_crops([deployed.crop(img, box)])[0][0])

    for spec in args.agree:
        name, frames = _agree_items(spec)
        rows = []
        for img, label in frames:
            b0 = main_face(det_base.detect(img))
            b1 = main_face(det.detect(img))
            h, w = img.shape[:2]
            step = max(1, round(max(h, w) / side)) if side else 1  # one pixel of the baseline's working size
            moved = np.zeros_like(img)
            moved[step:, step:] = img[:-step, :-step]
            bj = main_face(det_base.detect(moved))
            bj = None if bj is None else Box(bj.x - step, bj.y - step, bj.w, bj.h, bj.score)
            rows.append((label, b0, b1, bj, score(img, b0), score(img, b1), score(img, bj)))
        n = len(rows)
        labels = np.array([r[0] for r in rows], dtype=np.int64)
        s0 = np.array([r[4] for r in rows], dtype=np.float64)
        has0 = np.isfinite(s0)
        print(f"  {name}: {n} frames ({int(labels.sum())} live); faces found: baseline {int(has0.sum())}")
        for box_col, what in ((2, deployed.detector_spec), (3, f"{baseline.detector_spec} on a 1-px-shifted frame")):
            s1 = np.array([r[box_col + 3] for r in rows], dtype=np.float64)  # the score that goes with that box
            has1 = np.isfinite(s1)
            both = has0 & has1  # a face under both: the frames whose boxes and scores can be compared
            ious = np.array([_iou(r[1], r[box_col]) for r in rows if r[1] is not None and r[box_col] is not None])
            diff = s1[both] - s0[both]
            line = f"    {what}: faces found {int(has1.sum())}/{n}; "
            if diff.size:
                flips = np.mean((s1[both] >= thr) != (s0[both] >= thr))
                print(line + f"box IoU median {np.median(ious):.3f}, 5th pct {np.percentile(ious, 5):.3f}, min "
                      f"{ious.min():.3f}; |Δscore| mean {np.abs(diff).mean():.4f}, 95th pct "
                      f"{np.percentile(np.abs(diff), 95):.3f}, max {np.abs(diff).max():.3f}; mean Δscore "
                      f"{diff.mean():+.4f}; decisions flipped {flips:.1%}")
            else:
                print(line + "no frame with a face under both, nothing to compare")
            if _both_classes(labels[has0]) and _both_classes(labels[has1]):
                at0 = M.ScoreSet(s0[has0], labels[has0]).apcer_bpcer(thr)
                at1 = M.ScoreSet(s1[has1], labels[has1]).apcer_bpcer(thr)
                print(f"      AUC {M.auc(s1[has1], labels[has1]):.4f} (baseline {M.auc(s0[has0], labels[has0]):.4f}); "
                      f"at the threshold APCER {at1['apcer']:.4f} BPCER {at1['bpcer']:.4f} (baseline APCER "
                      f"{at0['apcer']:.4f} BPCER {at0['bpcer']:.4f})")


def accuracy(args: argparse.Namespace) -> None:
    from openfas.data.cache import CropCacheReader
    from openfas.deploy.predictor import Predictor
    from openfas.eval import metrics as M

    reader = CropCacheReader(args.cache)
    recs = [r for r in reader.records() if r.split == args.split]
    crops = [reader.image(r.sample_id) for r in recs]
    labels = np.array([r.label for r in recs])
    models = {"float": args.model}
    if args.int8:
        models["int8"] = args.int8
    if args.checkpoint:
        models["pytorch"] = args.checkpoint
    scores = {}
    for name, path in models.items():
        p = Predictor.from_checkpoint(path, detector="whole", intra_op_threads=1)
        scores[name] = p.score_crops(crops)[0].astype(np.float64)
        thr = p.threshold
        ss = M.ScoreSet(scores[name], labels)
        at = ss.apcer_bpcer(thr) if thr is not None else {}
        print(f"  {name:<8} {args.split}: {len(labels)} crops ({int(labels.sum())} live), AUC {ss.auc():.4f}, EER "
              f"{ss.eer()[0]:.4f}; at the stored threshold {thr:.4g}: APCER {at.get('apcer', float('nan')):.4f} "
              f"BPCER {at.get('bpcer', float('nan')):.4f}")
    if "int8" in scores:
        from openfas.deploy.quantize import spearman

        d = M.auc(scores["int8"], labels) - M.auc(scores["float"], labels)
        diff = np.abs(scores["int8"] - scores["float"])
        print(f"  AUC change int8 − float: {d:+.4f}; |score difference| max {diff.max():.4f} mean {diff.mean():.4f}; "
              f"Spearman {spearman(scores['int8'], scores['float']):.4f}")
    if "pytorch" in scores:
        print(f"  max |ONNX float − PyTorch| {np.abs(scores['float'] - scores['pytorch']).max():.2e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", default=None, help="exported .onnx (float) or a bundled model's name "
                                                           "(default: the bundled model)")
    ap.add_argument("--int8", help="int8 .onnx (openfas export --int8)")
    ap.add_argument("--checkpoint", help="the .safetensors the export came from (accuracy: agreement check)")
    ap.add_argument("--frames", nargs="*", default=[], help="folder(s) or files of full frames for timing")
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--detector", default=None, help="deployed detector spec (default: what Predictor picks)")
    ap.add_argument("--baseline-detector", default=None,
                    help="detector to compare with (default: the one the model's training crops were cut with)")
    ap.add_argument("--agree", nargs="*", default=[], help="NAME:ROOT[:SPLIT] datasets for the detector agreement")
    ap.add_argument("--cache", help="crop cache for the accuracy comparison")
    ap.add_argument("--split", default="test")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    if args.frames:
        timing(args)
    if args.agree:
        agreement(args)
    if args.cache:
        if args.model is None:
            raise SystemExit("--cache needs the MODEL argument")
        accuracy(args)


if __name__ == "__main__":
    main()
