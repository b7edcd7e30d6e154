"""LFW View 2 with openfas's synthetic masks: the photos of pairs.txt masked, and three pair lists.

    python bench/lfw_masked_view2.py LFW_ROOT OUT [--seed 0] [--pairs pairs.txt]

Writes OUT/masked/<Name>/<Name>_NNNN.png (each photo of the pair list, View 2's pairs.txt or View 1's
pairsDevTest.txt, with the mask `openfas data lfw` would draw on a
test image: style from --seed and the file name, placed from dlib's 68 landmarks of the unmasked photo; the
photo is not aligned), OUT/clean (a link to the deep-funneled folder) and, in the MLFW layout relative to OUT and
in the list's order, pairs_clean.txt, pairs_one_masked.txt (the second photo of each pair masked) and
pairs_both_masked.txt. Score them with `openfas eval MODEL --pairs OUT/pairs_one_masked.txt --root OUT
--pairs-format mlfw` (10 folds stratified by label, not the official ones).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2

from openfas.data.synth.masks import MASK_TYPES, apply_mask
from openfas.data.video import read_image
from openfas.recognition.landmarks import DlibLandmarker
from openfas.recognition.lfw import lfw_image_dir, mask_style_for
from openfas.recognition.pairs import read_pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lfw", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pairs", default="pairs.txt", help="pair list in LFW_ROOT (pairs.txt or pairsDevTest.txt)")
    a = ap.parse_args()
    image_dir = lfw_image_dir(a.lfw)
    pl = read_pairs(a.lfw / a.pairs, "lfw")
    a.out.mkdir(parents=True, exist_ok=True)
    if not (a.out / "clean").exists():
        (a.out / "clean").symlink_to(image_dir.resolve(), target_is_directory=True)
    lmk = DlibLandmarker()  # LFW's centred box where HOG finds no face, as `openfas data lfw`
    rels = sorted(set(pl.left) | set(pl.right))
    for k, rel in enumerate(rels, 1):
        out = a.out / "masked" / Path(rel).with_suffix(".png")
        if out.is_file():
            continue
        img = read_image(image_dir / rel)
        style = mask_style_for(str(Path(rel).with_suffix("")), a.seed, MASK_TYPES)
        masked = apply_mask(img, lmk(img).five, style)[0]
        out.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out), masked)
        if k % 1000 == 0:
            print(f"  {k}/{len(rels)} photos", flush=True)
    for proto, (left, right) in {"clean": ("clean", "clean"), "one_masked": ("clean", "masked"),
                                 "both_masked": ("masked", "masked")}.items():
        def path(kind: str, rel: str) -> str:
            return f"{kind}/{rel}" if kind == "clean" else f"masked/{Path(rel).with_suffix('.png')}"

        lines = [f"{path(left, x)} {path(right, y)} {lab}" for x, y, lab in zip(pl.left, pl.right, pl.labels,
                                                                                strict=True)]
        (a.out / f"pairs_{proto}.txt").write_text("\n".join(lines) + "\n")
    print(f"{len(rels)} masked photos and 3 pair lists in {a.out}")


if __name__ == "__main__":
    main()
