"""Build the folders of docs/real_faces.md "Site calibration" from the shared data (LFW and NUAA):
live-cal/ and live-eval/ (the first image of every 9th LFW person, alternately), nuaa-dev-print/ (NUAA's
session-02 print frames: the adapter's cross-session dev split).

    python tools/site_calibration_folders.py ../shared/data/lfw ../shared/data/nuaa site/
"""
import shutil
import sys
from pathlib import Path

from openfas.data.datasets import get_dataset

lfw, nuaa, out = Path(sys.argv[1]) / "lfw-deepfunneled", Path(sys.argv[2]), Path(sys.argv[3])
for sub in ("live-cal", "live-eval", "nuaa-dev-print"):
    (out / sub).mkdir(parents=True, exist_ok=True)
people = sorted(p for p in lfw.iterdir() if p.is_dir())[::9]
for i, person in enumerate(people):
    first = sorted(person.iterdir())[0]
    shutil.copy(first, out / ("live-cal" if i % 2 == 0 else "live-eval") / first.name)
prints = [m for m in get_dataset("nuaa")(nuaa).list_media("dev") if m.attack == "print"]  # cross-session dev
for m in prints:
    shutil.copy(m.paths["rgb"], out / "nuaa-dev-print" / m.paths["rgb"].name)
n = len(prints)
cal, held = (len(people) + 1) // 2, len(people) // 2
print(f"{len(people)} LFW faces ({cal} calibration, {held} held out), {n} NUAA dev prints")
