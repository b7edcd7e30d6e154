"""Build the folders of docs/real_faces.md "Site calibration" from the shared data (LFW and NUAA):
live-cal/ and live-eval/ (the first image of every 9th LFW person, alternately), nuaa-dev-print/ (NUAA's
session-02 print frames of the training list, the dev split).

    python tools/site_calibration_folders.py ../shared/data/lfw ../shared/data/nuaa site/
"""
import shutil
import sys
from pathlib import Path

lfw, nuaa, out = Path(sys.argv[1]) / "lfw-deepfunneled", Path(sys.argv[2]), Path(sys.argv[3])
for sub in ("live-cal", "live-eval", "nuaa-dev-print"):
    (out / sub).mkdir(parents=True, exist_ok=True)
people = sorted(p for p in lfw.iterdir() if p.is_dir())[::9]
for i, person in enumerate(people):
    first = sorted(person.iterdir())[0]
    shutil.copy(first, out / ("live-cal" if i % 2 == 0 else "live-eval") / first.name)
n = 0
for line in (nuaa / "imposter_train_raw.txt").read_text().splitlines():
    rel = line.strip().replace("\\", "/")
    if rel and Path(rel).name.split("_")[3] == "02":
        shutil.copy(nuaa / "ImposterRaw" / rel, out / "nuaa-dev-print" / Path(rel).name)
        n += 1
cal, held = (len(people) + 1) // 2, len(people) // 2
print(f"{len(people)} LFW faces ({cal} calibration, {held} held out), {n} NUAA dev prints")
