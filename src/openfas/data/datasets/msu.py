"""MSU-MFSD (Wen, Han and Jain, IEEE TIFS 2015) in its published layout.

::

    ROOT/scene01/real/real_client002_android_SD_scene01.mp4   (…_laptop_SD_scene01.mov)
    ROOT/scene01/attack/attack_client002_android_SD_{ipad_video,iphone_video,printed_photo}_scene01.mp4
    ROOT/train_sub_list.txt   ROOT/test_sub_list.txt         (client ids, one per line: 15 train, 20 test)

Attack type from the name: ``printed_photo`` = print, ``ipad_video`` / ``iphone_video`` = replay
(``extra["pai"]`` is that token). ``extra["device"]``: the capture device (``android`` / ``laptop``).
Videos of clients in neither list are ignored (with one logged warning).

The release also has ``.face`` files beside the videos; their column layout is not verified here, so by
default the face detector is used. ``face_files="xywh"`` (or ``"xyxy"``) uses them with that per-frame
format (``frame x y w h``, comma or whitespace separated).
"""

from __future__ import annotations

import re
from pathlib import Path

from openfas.data.datasets.base import (
    DatasetAdapter,
    DatasetError,
    log,
    nested,
    read_list_lines,
    register_dataset,
    walk_files,
)
from openfas.data.sample import LIVE, SPOOF, MediaItem

_NAME = re.compile(r"^(real|attack)_client(\d+)_([a-z]+)_([A-Za-z]+)_(?:(.+)_)?(scene\d+)$")
_ATTACKS = {"printed_photo": "print", "ipad_video": "replay", "iphone_video": "replay"}
_EXTS = (".mp4", ".mov", ".avi")


def parse_msu_name(stem: str) -> dict[str, str]:
    """``real_client002_android_SD_scene01`` / ``attack_client002_laptop_SD_printed_photo_scene01`` → facts."""
    m = _NAME.match(stem)
    if m is None:
        raise ValueError(f"{stem!r} is not an MSU-MFSD file name (real|attack_clientNNN_<device>_SD_…_sceneNN)")
    kind, client, device, res, pai, scene = m.groups()
    if kind == "real":
        if pai:
            raise ValueError(f"{stem!r}: a real video name carries an attack token {pai!r}")
        attack, pai = "live", "live"
    else:
        if pai not in _ATTACKS:
            raise ValueError(f"{stem!r}: unknown attack {pai!r}; expected one of {sorted(_ATTACKS)}")
        attack = _ATTACKS[pai]
    return {"attack": attack, "pai": pai, "client": f"{int(client):03d}", "device": device,
            "resolution": res, "scene": scene}


@register_dataset("msu-mfsd", aliases=("msu", "M"))
class MsuMFSD(DatasetAdapter):
    """MSU-MFSD: splits train/test from the published subject lists; one protocol; domain "M"."""

    domain = "M"
    splits = ("train", "test")

    def __init__(self, root: str | Path, face_files: str | None = None) -> None:
        if face_files not in (None, "xywh", "xyxy"):
            raise ValueError(f"face_files must be None, 'xywh' or 'xyxy', got {face_files!r}")
        self.face_files = face_files
        super().__init__(root)

    def _check_root(self) -> None:
        root = self.root
        if not (root / "train_sub_list.txt").is_file() and (root / root.name / "train_sub_list.txt").is_file():
            self.root = root = root / root.name  # archive unpacked into a folder of its own name
        for f in ("train_sub_list.txt", "test_sub_list.txt"):
            if not (root / f).is_file():
                raise DatasetError(f"{root}: no {f}; is this the MSU-MFSD root?")
        if not any(root.glob("scene*")):
            raise DatasetError(f"{root}: no scene01/ folder; is this the MSU-MFSD root?")

    def subjects(self, split: str) -> set[str]:
        """Client ids (3-digit strings) of ``split`` from ``<split>_sub_list.txt``."""
        path = self.root / f"{split}_sub_list.txt"
        out = set()
        for lineno, line in read_list_lines(path):
            token = line.split()[0]
            if not token.isdigit():
                raise DatasetError(f"{path}:{lineno}: expected a client number, got {line!r}")
            out.add(f"{int(token):03d}")
        return out

    def _list(self, split: str, protocol: str) -> list[MediaItem]:
        mine = self.subjects(split)
        other = self.subjects("test" if split == "train" else "train")
        if mine & other:
            raise DatasetError(f"{self.root}: clients {sorted(mine & other)} are in both train_sub_list.txt and "
                               "test_sub_list.txt")
        files: list[Path] = []
        for scene in sorted(p for p in self.root.glob("scene*") if p.is_dir()):
            scene = nested(scene)
            for kind in ("real", "attack"):
                files += walk_files(scene / kind, _EXTS)
        items: list[MediaItem] = []
        unlisted: set[str] = set()
        for path in files:
            try:
                info = parse_msu_name(path.stem)
            except ValueError as err:
                raise DatasetError(f"{path}: {err}") from None
            if (path.parent.name == "real") != (info["attack"] == "live"):
                raise DatasetError(f"{path}: file name and folder ({path.parent.name}/) disagree on live/attack")
            if info["client"] not in mine:
                if info["client"] not in other:
                    unlisted.add(info["client"])
                continue
            extra = {"pai": info["pai"], "device": info["device"], "scene": info["scene"],
                     "resolution": info["resolution"]}
            face = path.with_suffix(".face")
            face_file = None
            if self.face_files and face.is_file():
                face_file, extra["face_format"] = face, self.face_files
            rel = path.relative_to(self.root).with_suffix("").as_posix()
            items.append(MediaItem(
                media_id=f"{self.domain}/{path.stem}", paths={"rgb": path},
                label=LIVE if info["attack"] == "live" else SPOOF, attack=info["attack"], domain=self.domain,
                subject=info["client"], video=rel, split=split, kind="video", face_file=face_file, extra=extra))
        if unlisted:
            log.warning("%s: videos of clients %s are in neither subject list and are ignored", self.root,
                        sorted(unlisted))
        return items
