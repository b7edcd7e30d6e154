"""The records that flow through the data layer.

Labels, attack types and modalities follow :mod:`openfas.conventions` (``label = 1`` live, ``0`` spoof).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from openfas.conventions import ATTACK_TYPES, LIVE, MODALITIES, SPOOF

__all__ = ["ATTACK_TYPES", "LIVE", "MODALITIES", "SPOOF", "CropRecord", "MediaItem", "attack_index"]


def attack_index(attack: str) -> int:
    """Integer id of an attack type (``live`` is 0)."""
    try:
        return ATTACK_TYPES.index(attack)
    except ValueError as err:
        raise ValueError(f"unknown attack type {attack!r}; expected one of {ATTACK_TYPES}") from err


@dataclass(frozen=True)
class MediaItem:
    """One source file (a video, a still image, or aligned modality images) listed by a dataset adapter.

    ``paths`` maps modality → file (``{"rgb": …}`` for RGB datasets; ``rgb``/``depth``/``ir`` for CASIA-SURF).
    ``face_file`` is the dataset's own per-frame face-location file when it ships one; ``depth_file`` a
    user-supplied pseudo-depth map (image file, or a folder of per-frame maps) for live samples.
    """

    media_id: str
    paths: dict[str, Path]
    label: int
    attack: str
    domain: str
    subject: str
    video: str
    split: str
    kind: str = "video"  # "video" | "image"
    face_file: Path | None = None
    depth_file: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.label not in (LIVE, SPOOF):
            raise ValueError(f"{self.media_id}: label must be 1 (live) or 0 (spoof), got {self.label!r}")
        attack_index(self.attack)
        if (self.label == LIVE) != (self.attack == "live"):
            raise ValueError(f"{self.media_id}: label {self.label} disagrees with attack {self.attack!r}")
        if self.kind not in ("video", "image"):
            raise ValueError(f"{self.media_id}: kind must be 'video' or 'image', got {self.kind!r}")


@dataclass(frozen=True)
class CropRecord:
    """Metadata of one cached face crop (one frame of one media item, all of its modalities)."""

    sample_id: str
    media_id: str
    label: int
    attack: str
    domain: str
    subject: str
    video: str
    frame: int
    split: str
    modalities: tuple[str, ...] = ("rgb",)
    target: str = ""  # "" (none stored), "mask" or "depth": the live pixel-wise target kind

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["modalities"] = list(self.modalities)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CropRecord:
        d = dict(d)
        d["modalities"] = tuple(d.get("modalities", ("rgb",)))
        return cls(**d)
