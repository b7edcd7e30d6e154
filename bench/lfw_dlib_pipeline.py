"""dlib's own face pipeline on LFW View 2, the baseline of `openfas eval dlib`.

    python bench/lfw_dlib_pipeline.py LFW_ROOT [--pairs pairs.txt] [--out FILE.json]

Each photo goes through dlib's pipeline as dlib's examples run it: the HOG detector (no upsampling; the face
nearest the image centre, LFW's centred face box when it finds none), the 68-point model, and
dlib.get_face_chip (150 px, padding 0.25). The chips are embedded by openfas's PyTorch port of dlib's ResNet
(equal to dlib's own descriptors to < 1e-6, tests/test_dlib_resnet.py; about 10x faster here than the
dlib-bin wheel, which has no BLAS). Pairs are scored by the cosine of the embeddings, 10-fold accuracy on the
pairs file's own folds, as `openfas eval` does.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from openfas.data.video import read_image
from openfas.recognition.dlib_teacher import DlibTorchRecognizer
from openfas.recognition.landmarks import DlibLandmarker
from openfas.recognition.lfw import lfw_image_dir
from openfas.recognition.pairs import read_pairs
from openfas.recognition.verification import verification_report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lfw", type=Path)
    ap.add_argument("--pairs", default="pairs.txt")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    image_dir = lfw_image_dir(a.lfw)
    pl = read_pairs(a.lfw / a.pairs, "lfw")
    rec = DlibTorchRecognizer(DlibLandmarker())
    rels = sorted(set(pl.left) | set(pl.right))
    chips, missed = [], []
    for rel in rels:
        img = read_image(image_dir / rel)
        face = rec.landmarker(img)
        if not face.detected:
            missed.append(rel)
        chips.append(rec.chip(img, face))
    emb = rec.embed_chips(chips)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    index = {r: i for i, r in enumerate(rels)}
    scores = np.array([emb[index[x]] @ emb[index[y]] for x, y in zip(pl.left, pl.right, strict=True)])
    result = verification_report(scores, np.array(pl.labels), pl.folds)
    out = {"pairs_file": str(a.lfw / a.pairs), "images": len(rels), "hog_missed": len(missed),
           "hog_missed_files": missed,
           **{k: result[k] for k in ("accuracy", "accuracy_std", "auc", "eer", "pairs", "fold_accuracies")}}
    text = json.dumps(out, indent=2)
    print(text)
    if a.out:
        a.out.write_text(text)


if __name__ == "__main__":
    main()
