"""OULU-NPU (Boulkenafet et al., FG 2017) in its published layout.

::

    ROOT/Train_files/1_1_01_1.avi  (+ 1_1_01_1.txt: per-frame eye centres, face_format "oulu")
    ROOT/Dev_files/…  ROOT/Test_files/…
    ROOT/Protocols/Protocol_1/{Train,Dev,Test}.txt
    ROOT/Protocols/Protocol_2/{Train,Dev,Test}.txt
    ROOT/Protocols/Protocol_3/{Train,Dev,Test}_{1..6}.txt   (leave-one-phone-out, protocols "3_1".."3_6")
    ROOT/Protocols/Protocol_4/{Train,Dev,Test}_{1..6}.txt   (protocols "4_1".."4_6")

Video names are ``Phone_Session_User_File``; File 1 = live, 2/3 = print with printer 1/2, 4/5 = replay on
display 1/2 (``extra["pai"]`` = ``print1``, ``print2``, ``replay1``, ``replay2``). List lines are
``label,video`` with ``+1`` live, ``-1`` print, ``-2`` replay. The distributed Train/Dev lists label
replay videos ``-1`` as well, so the attack type comes from the File digit, and the label column is
cross-checked only where it is unambiguous: ``+1`` ⇔ File 1, a negative label ⇔ File 2–5, ``-2`` ⇒ File 4–5.
A mismatch is an error naming the list file and line.

Missing media: a video named by a list but absent from ``<Split>_files/`` is skipped with ONE logged
warning per list (OULU copies are often partial); a missing ``<Split>_files/`` folder is an error. A
missing eye-position ``.txt`` leaves ``face_file`` None (the face detector is used for that video).

Protocol ``"all"`` (not an official protocol) lists every video found in ``<Split>_files/`` without reading
a list: the whole dataset, as cross-dataset (domain-generalisation) works use it.
"""

from __future__ import annotations

import re
from pathlib import Path

from openfas.data.datasets.base import (
    DatasetAdapter,
    DatasetError,
    files_in,
    nested,
    read_list_lines,
    register_dataset,
    warn_missing,
)
from openfas.data.sample import LIVE, SPOOF, MediaItem

OULU_PROTOCOLS: tuple[str, ...] = ("1", "2", *(f"3_{i}" for i in range(1, 7)), *(f"4_{i}" for i in range(1, 7)),
                                   "all")
# Phone digit 1-6: Samsung Galaxy S6 edge, HTC Desire EYE, MEIZU X5, ASUS Zenfone Selfie, Sony XPERIA C5 Ultra Dual,
# OPPO N3.
# File digit → (attack type, PAI species)
OULU_FILES: dict[str, tuple[str, str]] = {"1": ("live", "live"), "2": ("print", "print1"), "3": ("print", "print2"),
                                          "4": ("replay", "replay1"), "5": ("replay", "replay2")}
_SPLIT_DIR = {"train": "Train", "dev": "Dev", "test": "Test"}
_NAME = re.compile(r"^([1-6])_([1-3])_(\d{2})_([1-5])$")
_VIDEO_EXTS = (".avi", ".mp4", ".mov")


def parse_oulu_name(video: str) -> dict[str, str]:
    """``"1_1_01_2"`` → ``{"phone": "1", "session": "1", "user": "01", "file": "2", "attack": "print",
    "pai": "print1"}``; a malformed name → ValueError."""
    m = _NAME.match(video)
    if m is None:
        raise ValueError(f"{video!r} is not an OULU-NPU video name Phone_Session_User_File (e.g. 1_1_01_1)")
    phone, session, user, file = m.groups()
    attack, pai = OULU_FILES[file]
    return {"phone": phone, "session": session, "user": user, "file": file, "attack": attack, "pai": pai}


@register_dataset("oulu-npu", aliases=("oulu", "O"))
class OuluNPU(DatasetAdapter):
    """OULU-NPU: protocols "1", "2", "3_1".."3_6", "4_1".."4_6"; splits train/dev/test; domain "O"."""

    domain = "O"
    splits = ("train", "dev", "test")
    protocols = OULU_PROTOCOLS

    def _check_root(self) -> None:
        proto = self.root / "Protocols"
        if not proto.is_dir():
            raise DatasetError(f"{self.root}: no Protocols/ folder; is this the OULU-NPU root?")
        self.protocol_dir = nested(proto)

    def list_file(self, split: str, protocol: str) -> Path:
        """The protocol list of ``split``: ``Protocols/Protocol_1/Train.txt`` or ``Protocol_3/Train_2.txt``."""
        major, _, sub = protocol.partition("_")
        name = _SPLIT_DIR[split] + (f"_{sub}" if sub else "") + ".txt"
        return self.protocol_dir / f"Protocol_{major}" / name

    def parse_list(self, path: Path) -> list[tuple[int, str, str]]:
        """``[(list_label, video, info...)]`` checked against the File digit (see the module docstring)."""
        out = []
        for lineno, line in read_list_lines(path):
            parts = [p.strip() for p in line.split(",")]
            if len(parts) != 2:
                raise DatasetError(f"{path}:{lineno}: expected 'label,video' (e.g. '+1,1_1_01_1'), got {line!r}")
            try:
                label = int(parts[0])
            except ValueError:
                raise DatasetError(f"{path}:{lineno}: label {parts[0]!r} is not +1, -1 or -2") from None
            if label not in (1, -1, -2):
                raise DatasetError(f"{path}:{lineno}: label {parts[0]!r} is not +1, -1 or -2")
            video = Path(parts[1]).stem if parts[1].lower().endswith(_VIDEO_EXTS) else parts[1]
            try:
                info = parse_oulu_name(video)
            except ValueError as err:
                raise DatasetError(f"{path}:{lineno}: {err}") from None
            live_file = info["file"] == "1"
            if (label == 1) != live_file or (label == -2 and info["attack"] != "replay"):
                raise DatasetError(f"{path}:{lineno}: label {parts[0]} disagrees with the video name {video} "
                                   f"(File {info['file']} = {info['pai']})")
            out.append((label, video, info["file"]))
        return out

    def _list(self, split: str, protocol: str) -> list[MediaItem]:
        media_dir = self.root / f"{_SPLIT_DIR[split]}_files"
        if not media_dir.is_dir():
            raise DatasetError(f"{self.root}: no {media_dir.name}/ folder with the {split} videos of OULU-NPU")
        media_dir = nested(media_dir)
        present = files_in(media_dir)
        if protocol == "all":
            path = media_dir
            entries = []
            for name in sorted(present):
                stem, ext = name.rsplit(".", 1) if "." in name else (name, "")
                if "." + ext.lower() in _VIDEO_EXTS and _NAME.match(stem):
                    entries.append((1 if stem.endswith("_1") else -1, stem, stem[-1]))
        else:
            path = self.list_file(split, protocol)
            if not path.is_file():
                raise DatasetError(f"{path}: protocol list not found (OULU-NPU protocol {protocol!r}, "
                                   f"split {split!r})")
            entries = self.parse_list(path)
        items: list[MediaItem] = []
        missing: list[str] = []
        for label, video, _ in entries:
            file = next((present[video + e] for e in (".avi", ".mp4", ".mov") if video + e in present), None)
            if file is None:
                missing.append(video)
                continue
            info = parse_oulu_name(video)
            face = present.get(video + ".txt")
            items.append(MediaItem(
                media_id=f"{self.domain}/{video}", paths={"rgb": file}, label=LIVE if label == 1 else SPOOF,
                attack=info["attack"], domain=self.domain, subject=info["user"], video=video, split=split,
                kind="video", face_file=face,
                extra={"phone": info["phone"], "session": info["session"], "file": info["file"],
                       "pai": info["pai"], "protocol": protocol, "list_label": label,
                       **({"face_format": "oulu"} if face is not None else {})}))
        warn_missing(self.name, path, missing)
        return items
