"""The dlib teacher as an openfas checkpoint, so that `openfas eval --pairs` scores it like a student
(docs/masked_recognition.md §10: the teacher rows, plain and mirror-averaged).

    python tools/lfw_teacher_checkpoint.py DATA WEIGHTS RUN [SPLIT]

DATA: a folder of `openfas data lfw … --geometry dlib --teacher dlib-torch`; WEIGHTS: `openfas data dlib-weights`;
SPLIT: test (default) or val. Builds `dlib-csdn` from `recognition/csdn_lfw_dlibinit.yaml` exactly as a training
run does (init_from = dlib's weights: every sub-decision block is dlib's fc, so the embedding IS dlib's) and saves
it as RUN/checkpoints/final.safetensors before any optimiser step. Scored with `--no-flip` it reproduces
DATA/teacher/metrics.json; the packaged config scores with mirror averaging by default.
"""

from __future__ import annotations

import sys
from pathlib import Path

from openfas.config import load_config
from openfas.engine.trainer import Trainer


def main(data: Path, weights: Path, run: Path, split: str = "test") -> Path:
    classes = sum(1 for p in (data / "train").iterdir() if p.is_dir())
    cfg = load_config("recognition/csdn_lfw_dlibinit.yaml", [
        f"data.identities.root={data / 'train'}", f"data.identities.pairs={data / split / 'pairs_one_masked.txt'}",
        f"data.identities.pairs_root={data / split}", f"method.init_from={weights}",
        f"method.teacher_table={data / 'teacher' / 'dlib_train.safetensors'}", f"model.num_classes={classes}"])
    path = Trainer(cfg, run_dir=run, progress=False).save("final")
    assert path is not None  # a single process is the main one
    return path


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    print(main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), *sys.argv[4:]))
