"""Dev-only check for shortcuts in NUAA's training sessions: can a few numbers about the LIGHT tell live from print?

Reads the crops of ``extract_crops.py`` (sessions 01 and 02 only; session 3 is never read) and scores single
statistics of the face region (the central half of the scale-1.5 crop; ``openfas data inspect`` reports the same
statistics within each split of a cache):
* a logistic regression on the statistic fitted on one session and scored on the other (AUC 01→02 / 02→01);
* the AUC of the raw statistic (live scored high) within each session, which shows its direction.

A statistic of the light (exposure, white balance, sensor noise) that separates the classes in both sessions is a
shortcut a CNN can learn from 443 frames and that need not hold under another light.

    python tools/nuaa_dev_sweep/light_shortcuts.py crops.npz
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from openfas.data.light import STATISTICS, light_statistics


def statistics(crops: np.ndarray) -> dict[str, np.ndarray]:
    """Per-crop light statistics of the face window (openfas.data.light), crops N×H×W×3 BGR uint8 at scale 1.5."""
    per = [light_statistics(c, crop_scale=1.5) for c in crops]
    return {k: np.stack([p[k] for p in per]) for k in STATISTICS}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("npz", help="crops file of extract_crops.py")
    p.add_argument("--scale", default="s1.5")
    a = p.parse_args()
    d = np.load(a.npz, allow_pickle=False)
    keep = np.isin(d["session"], (1, 2))
    crops, label, session = d[a.scale][keep], d["label"][keep], d["session"][keep]
    print(f"{'statistic':36s} {'01→02':>7s} {'02→01':>7s} {'raw AUC s01':>12s} {'raw AUC s02':>12s}")
    for name, f in statistics(crops).items():
        cross = []
        for tr, te in ((1, 2), (2, 1)):
            clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
            clf.fit(f[session == tr], label[session == tr])
            cross.append(roc_auc_score(label[session == te], clf.decision_function(f[session == te])))
        raw = [roc_auc_score(label[session == s], f[session == s, 0]) if f.shape[1] == 1 else float("nan")
               for s in (1, 2)]
        print(f"{name:36s} {cross[0]:7.3f} {cross[1]:7.3f} {raw[0]:12.3f} {raw[1]:12.3f}")


if __name__ == "__main__":
    main()
