"""CASIA-FASD (Zhang et al., ICB 2012) in its published layout.

::

    ROOT/train_release/<subject>/{1..8}.avi, HR_{1..4}.avi     (20 subjects)
    ROOT/test_release/<subject>/…                             (30 subjects)

1, 2, HR_1 live; 3, 4, HR_2 warped printed photo (print, ``pai="warped_photo"``); 5, 6, HR_3 cut printed
photo (print, ``pai="cut_photo"``); 7, 8, HR_4 video replay (replay, ``pai="video"``). Odd numbers are low
quality, even numbers normal quality, HR_* high quality (``extra["quality"]``). Subject folders are numbered
from 1 in both releases but hold different people, so subjects are ``train_<n>`` / ``test_<n>``.

The dataset ships no face locations (the face detector is used). Splits: ``train``, ``test``; with
``dev_subjects=k`` the last k train subjects (in numeric order: deterministic) form a ``dev`` split and
leave ``train``. Files other than the 12 published names are ignored; a subject folder lacking some of them
is fine (partial copies), an empty release folder is an error.
"""

from __future__ import annotations

from pathlib import Path

from openfas.data.datasets.base import DatasetAdapter, DatasetError, files_in, nested, register_dataset
from openfas.data.sample import LIVE, SPOOF, MediaItem

# video stem → (attack, pai, quality)
CASIA_FASD_VIDEOS: dict[str, tuple[str, str, str]] = {
    "1": ("live", "live", "low"), "2": ("live", "live", "normal"), "HR_1": ("live", "live", "high"),
    "3": ("print", "warped_photo", "low"), "4": ("print", "warped_photo", "normal"),
    "HR_2": ("print", "warped_photo", "high"),
    "5": ("print", "cut_photo", "low"), "6": ("print", "cut_photo", "normal"), "HR_3": ("print", "cut_photo", "high"),
    "7": ("replay", "video", "low"), "8": ("replay", "video", "normal"), "HR_4": ("replay", "video", "high"),
}
_RELEASE = {"train": "train_release", "test": "test_release"}


def _subject_key(name: str) -> tuple[int, str]:
    return (int(name), name) if name.isdigit() else (1 << 30, name)


@register_dataset("casia-fasd", aliases=("casia", "C"))
class CasiaFASD(DatasetAdapter):
    """CASIA-FASD: splits train/test (+ dev with ``dev_subjects``); one protocol; domain "C"."""

    domain = "C"
    splits: tuple[str, ...] = ("train", "test")

    def __init__(self, root: str | Path, dev_subjects: int = 0) -> None:
        if dev_subjects < 0:
            raise ValueError(f"dev_subjects must be >= 0, got {dev_subjects}")
        self.dev_subjects = dev_subjects
        self.splits = ("train", "dev", "test") if dev_subjects else ("train", "test")
        super().__init__(root)

    def _check_root(self) -> None:
        if not (self.root / "train_release").is_dir() and not (self.root / "test_release").is_dir():
            raise DatasetError(f"{self.root}: no train_release/ or test_release/ folder; is this the CASIA-FASD root?")

    def _subjects(self, release: str) -> list[Path]:
        folder = self.root / release
        if not folder.is_dir():
            raise DatasetError(f"{self.root}: no {release}/ folder (CASIA-FASD)")
        folder = nested(folder)
        subjects = sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                          key=lambda p: _subject_key(p.name))
        if not subjects:
            raise DatasetError(f"{folder}: no subject folders (expected {release}/<subject>/1.avi …)")
        return subjects

    def _list(self, split: str, protocol: str) -> list[MediaItem]:
        release = _RELEASE["train" if split == "dev" else split]
        subjects = self._subjects(release)
        if split != "test" and self.dev_subjects:
            if self.dev_subjects >= len(subjects):
                raise DatasetError(f"{self.root / release}: dev_subjects={self.dev_subjects} leaves no train "
                                   f"subject ({len(subjects)} found)")
            cut = len(subjects) - self.dev_subjects
            subjects = subjects[cut:] if split == "dev" else subjects[:cut]
        prefix = "train" if release == "train_release" else "test"
        items: list[MediaItem] = []
        for sdir in subjects:
            present = files_in(sdir)
            by_stem = {Path(n).stem: p for n, p in present.items() if n.lower().endswith((".avi", ".mp4", ".mov"))}
            for stem, (attack, pai, quality) in CASIA_FASD_VIDEOS.items():
                path = by_stem.get(stem)
                if path is None:
                    continue
                items.append(MediaItem(
                    media_id=f"{self.domain}/{release}/{sdir.name}/{stem}", paths={"rgb": path},
                    label=LIVE if attack == "live" else SPOOF, attack=attack, domain=self.domain,
                    subject=f"{prefix}_{sdir.name}", video=f"{prefix}_{sdir.name}_{stem}", split=split,
                    kind="video", extra={"quality": quality, "pai": pai, "release": release}))
        return items
