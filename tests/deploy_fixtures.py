"""Shared by the deployment tests: one tiny trained checkpoint per test session (pixelnet width 8, 32×32 crops).

Imported as a plain module (not a conftest) so that several test files reuse the same files: the checkpoint is
cached under pytest's session base temp folder and trained only once.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

TINY = ["data.image_size=32", "data.map_size=8", "model.width=8", "data.batch_size=4", "optim.lr=0.003",
        "train.epochs=3", "train.log_every=1000"]
_lock = threading.Lock()


def tiny_checkpoint(base: Path, cache: Path) -> Path:
    """Train (once) and return ``final.safetensors`` of a tiny pixel-wise model on ``cache``."""
    import torch

    from openfas.config import load_config
    from openfas.engine.trainer import Trainer

    run = base / "deploy-tiny-run"
    final = run / "checkpoints" / "final.safetensors"
    with _lock:
        if not final.exists():
            torch.set_num_threads(1)
            cfg = load_config(None, [f"data.cache={cache}", *TINY])
            Trainer(cfg, run_dir=run, progress=False).fit()
    return final


def synth_face(seed: int = 0, size: int = 160) -> np.ndarray:
    """A rendered live synthetic face (BGR uint8), which both built-in detectors find."""
    from openfas.data.synth.pad import render_sample

    return render_sample(seed, "live", "synth_a", 0, size)["rgb"]


def faces_scene(n: int = 3, face: int = 120) -> np.ndarray:
    """``n`` synthetic faces side by side on a grey canvas (BGR uint8)."""
    canvas = np.full((2 * face, (face + 35) * n + 40, 3), 128, np.uint8)
    for i in range(n):
        x = 20 + i * (face + 35)
        canvas[face // 2: face // 2 + face, x: x + face] = synth_face(i, face)
    return canvas


class GatedBackend:
    """Predictor backend wrapper that blocks in ``run`` until ``release`` is set, to hold a worker busy
    (``entered`` is set once a request reached the model)."""

    def __init__(self, inner) -> None:  # noqa: ANN001
        self.inner, self.name = inner, inner.name
        self.entered, self.release = threading.Event(), threading.Event()

    def run(self, batch):  # noqa: ANN001, ANN202
        self.entered.set()
        self.release.wait(30)
        return self.inner.run(batch)
