"""Site calibration on real faces: what a model's stored threshold does to faces of other cameras, and what
``openfas calibrate`` makes of it.

    python bench/site_calibration.py data/lfw data/nuaa runs/site \\
        --model runs/nuaa/lbp-s0/checkpoints/final.safetensors --model runs/nuaa/cdcn-s0/checkpoints/final.safetensors

LFW stands in for a new camera population, NUAA's prints for the attacks. The first run writes three folders
under OUT (kept and reused later):

* ``live-cal/`` and ``live-eval/`` – the first image of every 9th LFW person (``lfw-deepfunneled/``), taken
  alternately: 320 faces to calibrate on and 319 held out;
* ``nuaa-dev-print/`` – NUAA's print frames of the ``cross-session`` dev split (session 02, 224 frames).

Then, per ``--model`` (checkpoint or ONNX file): every face is scored as ``openfas calibrate`` scores it (an
image counts with its most confident face), the threshold is re-picked on ``live-cal`` at ``--target-bpcer``,
and one table row is printed: at the stored threshold, the share of ``live-cal`` faces rejected and of the
prints accepted; at the calibrated threshold, the share of the held-out ``live-eval`` faces rejected (BPCER)
and of the prints accepted (APCER). The same numbers come from the CLI::

    openfas calibrate MODEL OUT/live-cal --attack OUT/nuaa-dev-print --out site.safetensors
    openfas calibrate site.safetensors OUT/live-eval --attack OUT/nuaa-dev-print --out check.safetensors

(the second call's "previous threshold" line gives the held-out rates). Results: docs/results.md.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from openfas.data.datasets import get_dataset
from openfas.data.video import is_image_file
from openfas.deploy.calibrate import rejected_share, score_files, site_threshold
from openfas.deploy.predictor import Predictor


def build_folders(lfw: Path, nuaa: Path, out: Path) -> None:
    """Write live-cal/, live-eval/ and nuaa-dev-print/ under ``out`` (skipped when they exist)."""
    folders = [out / "live-cal", out / "live-eval", out / "nuaa-dev-print"]
    if all(f.is_dir() and any(f.iterdir()) for f in folders):
        return
    for f in folders:
        f.mkdir(parents=True, exist_ok=True)
    people = sorted(p for p in (lfw / "lfw-deepfunneled").iterdir() if p.is_dir())[::9]
    for i, person in enumerate(people):
        first = sorted(person.iterdir())[0]
        shutil.copy(first, folders[i % 2] / first.name)
    prints = [m for m in get_dataset("nuaa")(nuaa).list_media("dev") if m.attack == "print"]
    for m in prints:
        shutil.copy(m.paths["rgb"], folders[2] / m.paths["rgb"].name)
    print(f"{len(people)} LFW faces ({(len(people) + 1) // 2} calibration, {len(people) // 2} held out), "
          f"{len(prints)} NUAA dev prints")


def images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if is_image_file(p))


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("lfw", type=Path, help="LFW in its distributed layout (holds lfw-deepfunneled/)")
    p.add_argument("nuaa", type=Path, help="NUAA in its published layout")
    p.add_argument("out", type=Path, help="folder for the three image folders")
    p.add_argument("--model", action="append", default=[], help="checkpoint or .onnx file (repeatable)")
    p.add_argument("--target-bpcer", type=float, default=0.05)
    a = p.parse_args()
    build_folders(a.lfw, a.nuaa, a.out)
    cal, held, prints = (images(a.out / f) for f in ("live-cal", "live-eval", "nuaa-dev-print"))
    print("| model | stored threshold: live-cal rejected / prints accepted "
          "| calibrated: live-eval rejected (BPCER) / prints accepted (APCER) |\n|---|---|---|")
    for model in a.model:
        predictor = Predictor.from_checkpoint(model)
        live_cal, live_held, attack = (score_files(predictor, files) for files in (cal, held, prints))
        stored = predictor.threshold
        site = site_threshold(live_cal.array, a.target_bpcer)
        before = "–" if stored is None else (f"{pct(rejected_share(live_cal.array, stored))} / "
                                              f"{pct(1 - rejected_share(attack.array, stored))}")
        after = f"{pct(rejected_share(live_held.array, site))} / {pct(1 - rejected_share(attack.array, site))}"
        print(f"| {model} | {before} | {after} |", flush=True)


if __name__ == "__main__":
    main()
