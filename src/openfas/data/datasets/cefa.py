"""CASIA-SURF CeFA (Liu et al., WACV 2021; CVPR 2020 ChaLearn challenge) protocol 4 lists.

Accepted layout (the challenge release; lists in ROOT, ROOT/phase1 or ROOT/phase2, paths relative to the
list's folder or to ROOT)::

    4@1_train.txt                      train/1_000_1_1_1/profile/0001.jpg 1         (one line per frame)
    4@1_dev_ref.txt | 4@1_dev_res.txt  dev/003000 1                                 (one line per video folder)
    4@1_test_ref.txt | 4@1_test_res.txt  test/000010 1
    <video>/profile/NNNN.jpg, <video>/depth/NNNN.jpg, <video>/ir/NNNN.jpg           (RGB, depth, IR crops)

Label 1 real, 0 fake. A line may name a frame (``…/profile/x.jpg``: depth and IR are the same path with
``depth``/``ir``), a video folder (every frame of its ``profile/`` folder becomes an item), or three paths
``rgb depth ir label`` as in CASIA-SURF. Lines without a label (unlabelled ``*_res`` lists) are an error.
Protocols ``4@1``, ``4@2``, ``4@3`` or the path of any list file in one of these formats.

Protocol 4 is cross-ethnicity and cross-PAI: train/dev on one ethnicity (4@1 AF, 4@2 CA, 4@3 EA) with
replay (screen) attacks, test on the two others with print (cloth) attacks. Folder names
``Race_ID_Device_Session_PAI`` (e.g. ``1_000_1_1_4``; race 1 AF, 2 CA, 3 EA; PAI 1 real, 2 cloth,
3 photo, 4 screen) give ethnicity and attack directly (cross-checked with the label); the anonymised
dev/test folders (``003000``) take them from the protocol: ``extra["ethnicity"]`` is the protocol's
ethnicity for train/dev and ``"unknown"`` for test (one of the other two). ``face_format="whole"``.
"""

from __future__ import annotations

import re
from pathlib import Path

from openfas.data.datasets.base import IMAGE_EXTS, DatasetError, register_dataset
from openfas.data.datasets.surf import TripletListAdapter, video_of
from openfas.data.sample import LIVE, MediaItem

CEFA_PROTOCOLS: tuple[str, ...] = ("4@1", "4@2", "4@3")
CEFA_TRAIN_ETHNICITY: dict[str, str] = {"4@1": "AF", "4@2": "CA", "4@3": "EA"}
_RACE = {"1": "AF", "2": "CA", "3": "EA"}
_PAI = {"1": ("live", "live"), "2": ("print", "cloth"), "3": ("print", "photo"), "4": ("replay", "screen")}
_FOLDER = re.compile(r"^([1-3])_(\d+)_(\d)_(\d)_([1-4])$")
_LISTS = {"train": ("train",), "dev": ("dev_ref", "dev_res"), "test": ("test_ref", "test_res")}


@register_dataset("cefa", aliases=("casia-cefa",))
class CeFA(TripletListAdapter):
    """CeFA protocol 4: splits train/dev/test; protocols 4@1/4@2/4@3 or a list path; RGB+depth+IR images."""

    domain = "cefa"
    splits = ("train", "dev", "test")
    protocols = CEFA_PROTOCOLS

    def _check_root(self) -> None:
        if not any(d.is_dir() and any(d.glob("4@*_*.txt")) for d in self._list_dirs()):
            raise DatasetError(f"{self.root}: no 4@N_train.txt / 4@N_dev_*.txt list (looked in ., phase1/, "
                               "phase2/); is this the CeFA root?")

    def _list_dirs(self) -> list[Path]:
        return [self.root, self.root / "phase1", self.root / "phase2"]

    def _published_list(self, split: str, protocol: str) -> Path:
        names = [f"{protocol}_{s}.txt" for s in _LISTS[split]]
        for d in self._list_dirs():
            for n in names:
                if (d / n).is_file():
                    return d / n
        raise DatasetError(f"{self.root}: no {' or '.join(names)} (looked in ., phase1/, phase2/) for the CeFA "
                           f"{split} split of protocol {protocol}")

    def _check_tokens(self, tok: list[str], line: str, path: Path, lineno: int) -> None:
        if len(tok) not in (2, 4):
            hint = " (an unlabelled *_res list? use the *_ref list with labels)" if len(tok) == 1 else ""
            raise DatasetError(f"{path}:{lineno}: expected 'path label' or 'rgb depth ir label', got "
                               f"{line!r}{hint}")

    def _samples(self, tok: list[str], first: str, base: Path, path: Path, lineno: int) -> list[list[str]] | None:
        if len(tok) == 4:
            return [[t.replace("\\", "/") for t in tok[:3]]]
        if first.lower().endswith(IMAGE_EXTS):
            if "/profile/" not in f"/{first}":
                raise DatasetError(f"{path}:{lineno}: a frame path must lie in a profile/ folder, got {first!r}")
            return [[first, first.replace("profile/", "depth/"), first.replace("profile/", "ir/")]]
        prof = base / first / "profile"  # a video folder: every frame of its profile/ folder
        if not prof.is_dir():
            return None
        frames = sorted(p.name for p in prof.iterdir() if p.name.lower().endswith(IMAGE_EXTS))
        return [[f"{first}/{d}/{f}" for d in ("profile", "depth", "ir")] for f in frames]

    def _item(self, rels: list[str], base: Path, label: int, split: str, protocol: str, path: Path,
              lineno: int) -> MediaItem:
        video = video_of(rels[0])
        folder = video.split("/")[-1]
        m = _FOLDER.match(folder)
        extra: dict = {"face_format": "whole", "protocol": protocol}
        if m:
            race, pid, device, session, pai_digit = m.groups()
            attack, pai = _PAI[pai_digit]
            if (attack == "live") != (label == LIVE):
                raise DatasetError(f"{path}:{lineno}: label {int(label == LIVE)} disagrees with the folder name "
                                   f"{folder} (PAI {pai_digit} = {pai})")
            subject = f"{race}_{pid}"
            extra.update(ethnicity=_RACE[race], device=device, session=session)
        else:
            if label == LIVE:
                attack, pai = "live", "live"
            elif split == "test":
                attack, pai = "print", "cloth"
            else:
                attack, pai = "replay", "screen"
            subject = video
            train_eth = CEFA_TRAIN_ETHNICITY.get(protocol, "unknown")
            extra["ethnicity"] = train_eth if split in ("train", "dev") else "unknown"
        extra["pai"] = pai
        paths = {m_: base / r for m_, r in zip(("rgb", "depth", "ir"), rels, strict=True)}
        return MediaItem(media_id=f"{self.domain}/{rels[0].rsplit('.', 1)[0]}", paths=paths, label=label,
                         attack=attack, domain=self.domain, subject=subject, video=video, split=split,
                         kind="image", extra=extra)
