"""Your own data as a folder tree (no protocol files).

::

    ROOT/live/**/*.{jpg,png,…,mp4,avi,mov}
    ROOT/spoof/<attack>/**/*                  <attack> in print, replay, mask, other

or the same under ``ROOT/train/``, ``ROOT/dev/``, ``ROOT/test/`` (splits; without them the one split is
``all``). Images are ``kind="image"``, videos ``kind="video"``. ``faces="detect"`` (default) finds faces
with the detector; ``faces="whole"`` means the files already are face crops. The subject of a file is its
first sub-folder under ``live/`` or ``spoof/<attack>/`` (so ``live/alice/1.jpg`` is subject ``alice``), or
the file's own name when it lies directly there. An unknown folder under ``spoof/`` (or next to
``live``/``spoof``) is an error naming it; ``extra["pai"]`` is the attack folder name.

``identity_split="60/20/20"`` splits a tree without split folders into ``train`` / ``dev`` / ``test`` by subject
(percentages): each subject goes wholly to one split, chosen by its name alone (:func:`identity_split_of`, a
SHA-256 of the name), so the split is fixed, reproducible on any machine, and a subject's live and attack
media always land together.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from openfas.data.datasets.base import (
    IMAGE_EXTS,
    VIDEO_EXTS,
    DatasetAdapter,
    DatasetError,
    register_dataset,
    walk_files,
)
from openfas.data.sample import ATTACK_TYPES, LIVE, SPOOF, MediaItem

_SPLITS = ("train", "dev", "test")
_SPOOF_TYPES = tuple(a for a in ATTACK_TYPES if a != "live")


def parse_identity_split(spec: str) -> tuple[float, float, float]:
    """``"60/20/20"`` → the train, dev and test fractions (three non-negative numbers with a positive sum)."""
    parts = str(spec).replace(",", "/").split("/")
    try:
        nums = [float(p) for p in parts]
    except ValueError:
        nums = []
    if len(nums) != 3 or min(nums) < 0 or sum(nums) <= 0:
        raise ValueError(f"identity_split must be three percentages train/dev/test such as 60/20/20, got {spec!r}")
    total = sum(nums)
    return nums[0] / total, nums[1] / total, nums[2] / total


def identity_split_of(subject: str, fractions: tuple[float, float, float]) -> str:
    """The split of ``subject``: the first 8 bytes of SHA-256 of its UTF-8 name, read as a number in [0, 1),
    compared with the cumulative train / dev fractions."""
    u = int.from_bytes(hashlib.sha256(subject.encode("utf-8")).digest()[:8], "big") / 2.0 ** 64
    if u < fractions[0]:
        return "train"
    return "dev" if u < fractions[0] + fractions[1] else "test"


@register_dataset("folder", aliases=("custom",))
class FolderDataset(DatasetAdapter):
    """``live/`` + ``spoof/<attack>/`` trees, optionally under train/dev/test; one protocol."""

    def __init__(self, root: str | Path, faces: str = "detect", domain: str = "folder",
                 identity_split: str | None = None) -> None:
        if faces not in ("detect", "whole"):
            raise ValueError(f"faces must be 'detect' or 'whole', got {faces!r}")
        if not domain or "/" in domain:
            raise ValueError(f"domain must be a non-empty name without '/', got {domain!r}")
        self.faces = faces
        self.domain = domain
        self.identity_fractions = None if identity_split is None else parse_identity_split(identity_split)
        super().__init__(root)
        if self.identity_fractions is not None:
            if self.splits != ("all",):
                raise DatasetError(f"{self.root}: identity_split splits a tree without train/ dev/ test/ folders; "
                                   f"this one has {', '.join(self.splits)}")
            self.splits = _SPLITS

    def _check_root(self) -> None:
        root = self.root
        split_dirs = [s for s in _SPLITS if (root / s).is_dir()]
        if split_dirs:
            self.splits = tuple(split_dirs)
            for s in split_dirs:
                self._check_tree(root / s)
            if (root / "live").exists() or (root / "spoof").exists():
                raise DatasetError(f"{root}: has both split folders ({', '.join(split_dirs)}) and live/ or spoof/ "
                                   "at the top; put live/ and spoof/ inside each split folder")
        else:
            self.splits = ("all",)
            self._check_tree(root)

    def _check_tree(self, d: Path) -> None:
        if not (d / "live").is_dir() and not (d / "spoof").is_dir():
            raise DatasetError(f"{d}: no live/ or spoof/ folder; expected live/** and spoof/<attack>/** "
                               f"(<attack> in {', '.join(_SPOOF_TYPES)}), optionally under train/ dev/ test/")
        for p in d.iterdir():
            if p.is_dir() and not p.name.startswith(".") and p.name not in ("live", "spoof"):
                raise DatasetError(f"{p}: unknown folder {p.name!r}; expected only live/ and spoof/ here")
        if (d / "spoof").is_dir():
            for p in (d / "spoof").iterdir():
                if p.name.startswith("."):
                    continue
                if not p.is_dir():
                    raise DatasetError(f"{p}: a file directly in spoof/; put it in spoof/<attack>/ with <attack> in "
                                       f"{', '.join(_SPOOF_TYPES)}")
                if p.name not in _SPOOF_TYPES:
                    raise DatasetError(f"{p}: unknown attack folder {p.name!r}; expected one of "
                                       f"{', '.join(_SPOOF_TYPES)}")

    def _list(self, split: str, protocol: str) -> list[MediaItem]:
        if self.identity_fractions is not None:
            fractions = self.identity_fractions
            return [it for it in self._list_tree(self.root, split)
                    if identity_split_of(it.subject, fractions) == split]
        return self._list_tree(self.root if split == "all" else self.root / split, split)

    def _list_tree(self, base: Path, split: str) -> list[MediaItem]:
        groups: list[tuple[Path, str]] = [(base / "live", "live")]
        groups += [(base / "spoof" / a, a) for a in _SPOOF_TYPES]
        items: list[MediaItem] = []
        for folder, attack in groups:
            if not folder.is_dir():
                continue
            for path in walk_files(folder, IMAGE_EXTS + VIDEO_EXTS):
                rel_in = path.relative_to(folder)
                subject = rel_in.parts[0] if len(rel_in.parts) > 1 else path.stem
                rel = path.relative_to(self.root).as_posix()  # with the extension: a.jpg and a.png differ
                kind = "image" if path.suffix.lower() in IMAGE_EXTS else "video"
                extra: dict = {"pai": attack}
                if self.faces == "whole":
                    extra["face_format"] = "whole"
                items.append(MediaItem(
                    media_id=f"{self.domain}/{rel}", paths={"rgb": path}, label=LIVE if attack == "live" else SPOOF,
                    attack=attack, domain=self.domain, subject=subject, video=rel, split=split, kind=kind,
                    extra=extra))
        return items
