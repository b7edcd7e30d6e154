"""Where a config's crops live: the crop-cache folder of ``data.cache`` (generating the synthetic set once) and
how that cache's crops were cut."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch.distributed as dist

from openfas.config import Config, ConfigError
from openfas.data.cache import CropCacheReader
from openfas.data.synth.pad import GENERATOR_VERSION, generate_synthetic


def resolve_cache(cfg: Config, is_main: bool = True) -> Path:
    """The crop-cache folder of ``cfg.data``; ``"synthetic"`` generates (once) and caches a synthetic set.

    Under ``torchrun`` only the main rank generates; every rank waits until the set exists.
    """
    if cfg.data.cache != "synthetic":
        path = Path(cfg.data.cache).expanduser()
        if not (path / "crops.lmdb").exists():
            raise ConfigError(f"data.cache={cfg.data.cache!r}: no crop cache there; run `openfas data prepare` "
                              "(real datasets) or `openfas data synth`")
        return path
    s = cfg.data.synth
    params = s.model_dump(mode="json")
    params.pop("cache_dir")
    params["generator_version"] = GENERATOR_VERSION
    digest = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
    path = Path(s.cache_dir).expanduser() / f"synth-{digest}"
    if is_main:
        generate_synthetic(path, domains=tuple(s.domains), subjects_per_domain=s.subjects_per_domain,
                           videos_per_subject=s.videos_per_subject, frames_per_video=s.frames_per_video,
                           size=s.size, modalities=tuple(s.modalities), seed=s.seed, domain_shift=s.domain_shift)
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
    return path


def crop_geometry(cache_dir: Path, crop_fraction: float = 1.0) -> dict[str, Any]:
    """How the crops of a cache were cut (so a deployed model can crop faces the same way).

    Prepared caches: ``{"source": "prepared", "crop_size", "scale", "detector"}`` (scale = crop side / longer side
    of the face box, see :func:`openfas.data.face.square_region`); synthetic caches: ``{"source": "synthetic",
    "crop_size"}`` (the rendered image is the crop).
    """
    info = CropCacheReader(cache_dir).info()
    if "prepare" in info:
        p = info["prepare"]
        size, scale = p.get("crop_size"), p.get("scale")
        if crop_fraction != 1.0 and size is not None and scale is not None:  # data.crop_fraction: a tighter crop
            size, scale = max(1, round(size * crop_fraction)), scale * crop_fraction
        return {"source": "prepared", "crop_size": size, "scale": scale, "detector": p.get("detector")}
    if "synth" in info:
        return {"source": "synthetic", "crop_size": info["synth"].get("size")}
    return {"source": "unknown"}
