"""The light deployable model end to end: time per webcam frame on ONE thread, and accuracy float vs int8.

    python bench/bench_light.py MODEL.onnx [--int8 MODEL-int8.onnx] --frames DIR_OR_LIST [--n 50]
                                [--detector SPEC] [--cache CACHE --split test] [--repeats 3]

Timing (``--frames``: a folder of 640×480 JPEG frames, e.g. NUAA ``ClientRaw/0001``, or files): everything runs on
one thread (``torch``/OpenCV 1 thread, ONNX Runtime intra-op 1, sequential), on the same ``--n`` frames (encoded
JPEG bytes in memory), interleaved round by round so machine noise hits every variant alike. Reported per frame
(median over rounds of the mean over frames):

* ``decode``            – JPEG bytes → BGR (the Predictor's decoder: header checks, EXIF orientation);
* ``detector``          – the face detector alone on the decoded frame (the floor of any liveness check);
* ``decode+detect``     – both;
* ``end-to-end``        – ``Predictor.predict(bytes)``: decode + detect + crop + preprocess + model, all faces;
* ``end-to-end int8``   – the same with the int8 model (``--int8``);
* ``model``             – the model alone on one preprocessed crop;

and the ratios end-to-end / detector, end-to-end / (decode+detect), and int8 / float (end-to-end and model).

Accuracy (``--cache``): the crops of ``--split`` scored by the float and the int8 model (``detector="whole"``: the
cache's crops, as training made them); frame-level AUC of each and the change, plus BPCER/APCER at the stored
threshold, and the fidelity of int8 to float (max and mean |score difference|, Spearman rank correlation; choose
``--split dev`` while tuning anything, report ``test`` once). Scores of the float ONNX model are also checked
against the PyTorch checkpoint when ``--checkpoint`` is given.
"""

from __future__ import annotations

import argparse
import statistics
import time
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


def _time(fn, items) -> float:  # noqa: ANN001
    t0 = time.perf_counter()
    for it in items:
        fn(it)
    return (time.perf_counter() - t0) / len(items) * 1000


def timing(args: argparse.Namespace) -> None:
    from openfas.data.detectors import build_detector
    from openfas.deploy.predictor import Predictor, single_threaded_kernels
    from openfas.deploy.uploads import decode_image_bytes

    single_threaded_kernels()
    frames = _frames(args.frames, args.n)
    p32 = Predictor.from_checkpoint(args.model, detector=args.detector, intra_op_threads=1)
    p8 = Predictor.from_checkpoint(args.int8, detector=args.detector, intra_op_threads=1) if args.int8 else None
    det = build_detector(p32.detector_spec)
    decoded = [decode_image_bytes(f) for f in frames]
    h, w = decoded[0].shape[:2]
    found = sum(len(p32.predict(f).faces) > 0 for f in frames)
    crop = None
    for img in decoded:
        boxes = p32.detect(img)
        if boxes:
            crop = p32.preprocess([p32.crop(img, boxes[0])])
            break
    variants = {
        "decode": lambda: _time(decode_image_bytes, frames),
        "detector": lambda: _time(det.detect, decoded),
        "decode+detect": lambda: _time(lambda f: det.detect(decode_image_bytes(f)), frames),
        "end-to-end": lambda: _time(p32.predict, frames),
    }
    if p8 is not None:
        variants["end-to-end int8"] = lambda: _time(p8.predict, frames)
    if crop is not None:
        variants["model"] = lambda: _time(lambda _: p32.backend.run(crop), range(len(frames)))
        if p8 is not None:
            variants["model int8"] = lambda: _time(lambda _: p8.backend.run(crop), range(len(frames)))
    for fn in variants.values():  # warm-up
        fn()
    rounds: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.repeats):
        for k, fn in variants.items():
            rounds[k].append(fn())
    med = {k: statistics.median(v) for k, v in rounds.items()}
    print(f"{len(frames)} frames {w}×{h}, faces found in {found}; detector {p32.detector_spec}; model "
          f"{p32.model_name} ({Path(args.model).name}); 1 thread; median of {args.repeats} rounds")
    for k, v in med.items():
        print(f"  {k:<16} {v:8.2f} ms/frame")
    print(f"  ratio end-to-end / detector      {med['end-to-end'] / med['detector']:.2f}")
    print(f"  ratio end-to-end / decode+detect {med['end-to-end'] / med['decode+detect']:.2f}")
    if p8 is not None:
        print(f"  ratio end-to-end int8 / detector {med['end-to-end int8'] / med['detector']:.2f}")
        print(f"  ratio end-to-end int8 / float    {med['end-to-end int8'] / med['end-to-end']:.2f}")
        if "model int8" in med:
            print(f"  ratio model int8 / float         {med['model int8'] / med['model']:.2f}")


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
    ap.add_argument("model", help="exported .onnx (float)")
    ap.add_argument("--int8", help="int8 .onnx (openfas export --int8)")
    ap.add_argument("--checkpoint", help="the .safetensors the export came from (accuracy: agreement check)")
    ap.add_argument("--frames", nargs="*", default=[], help="folder(s) or files of full frames for timing")
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--detector", default=None, help="detector spec (default: the one the model was trained with)")
    ap.add_argument("--cache", help="crop cache for the accuracy comparison")
    ap.add_argument("--split", default="test")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    if args.frames:
        timing(args)
    if args.cache:
        accuracy(args)


if __name__ == "__main__":
    main()
