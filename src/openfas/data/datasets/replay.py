"""Idiap Replay-Attack (Chingovska et al., BIOSIG 2012) in its published layout.

::

    ROOT/{train,devel,test}/real/client001_session01_webcam_authenticate_adverse_1.mov
    ROOT/{train,devel,test}/attack/{fixed,hand}/attack_<device>_client001_session01_<source>_<photo|video>_<light>.mov
    ROOT/face-locations/<same relative path>.face      (per-frame ``frame x y w h``; face_format "replay")
    ROOT/enroll/…                                      (enrolment videos: ignored)

Each video may instead be a folder of its extracted frames with the video's name (``…/real/client001_…_1/``
holding ``frame_00177.jpg`` …, the number being the frame's index in the video, so ``.face`` files still
match); both kinds may be mixed, and a video with both a file and a folder is read from the file.

Splits ``train``, ``dev`` (folder ``devel``), ``test`` (clients 1-60 are split 15 / 15 / 20 and disjoint).
Attack type from the file name:
``attack_print_…`` = print (a printed photo, ``pai="print"``); ``attack_mobile_…`` (iPhone screen) and
``attack_highdef_…`` (iPad screen) = replay, for photos shown on the screen as well as videos (the usual
PAD convention: the medium is a display; ``pai`` = ``mobile_photo``, ``mobile_video``, ``highdef_photo``,
``highdef_video``). ``extra``: ``support`` (fixed/hand, "" for real), ``device`` (print/mobile/highdef,
"webcam" for real), ``medium`` (photo/video, "" for real), ``light`` (controlled/adverse).

Protocols (as in bob.db.replay): ``grandtest`` (all), ``print``, ``mobile``, ``highdef`` (live + that
attack device), ``photo`` (live + print + displayed photos), ``video`` (live + displayed videos).
``face-locations/`` may also be given as ``face_dir`` (it is a separate download); without it, or for a video
without a ``.face`` file, the face detector is used.
"""

from __future__ import annotations

import re
from pathlib import Path

from openfas.data.datasets.base import (
    IMAGE_EXTS,
    DatasetAdapter,
    DatasetError,
    log,
    nested,
    register_dataset,
    walk_files,
)
from openfas.data.sample import LIVE, SPOOF, MediaItem

REPLAY_PROTOCOLS: tuple[str, ...] = ("grandtest", "print", "mobile", "highdef", "photo", "video")
_SPLIT_DIR = {"train": "train", "dev": "devel", "test": "test"}
_REAL = re.compile(r"^client(\d+)_session(\d+)_([a-z]+)_([a-z]+)_(controlled|adverse)(?:_(\d+))?$")
_ATTACK = re.compile(r"^attack_(print|mobile|highdef)_client(\d+)_session(\d+)_([a-z]+)_(photo|video)_"
                     r"(controlled|adverse)$")
_EXTS = (".mov", ".avi", ".mp4")


def parse_replay_name(stem: str) -> dict[str, str]:
    """Facts encoded in a Replay-Attack file name (see the module docstring); unknown pattern → ValueError."""
    m = _REAL.match(stem)
    if m:
        client, session, device, kind, light, _ = m.groups()
        return {"attack": "live", "pai": "live", "client": client, "session": session, "device": device,
                "light": light, "recording": kind}
    m = _ATTACK.match(stem)
    if m:
        device, client, session, source, medium, light = m.groups()
        attack = "print" if device == "print" else "replay"
        pai = "print" if device == "print" else f"{device}_{medium}"
        return {"attack": attack, "pai": pai, "client": client, "session": session, "device": device,
                "light": light, "source": source, "medium": medium}
    raise ValueError(f"{stem!r} is not a Replay-Attack file name (client…_session…_webcam_… or attack_<print|"
                     "mobile|highdef>_client…)")


def _videos_and_frame_folders(folder: Path) -> list[Path]:
    """Video files under ``folder`` and the folders holding extracted frames (a video present as both is taken
    from its file), sorted; names are checked by the caller."""
    if not folder.is_dir():
        return []
    videos = walk_files(folder, _EXTS)
    have = {v.with_suffix("") for v in videos}
    frame_dirs: list[Path] = []
    for d in sorted(p.parent for p in walk_files(folder, IMAGE_EXTS)):
        if d not in have and (not frame_dirs or frame_dirs[-1] != d):
            frame_dirs.append(d)
    return sorted(videos + frame_dirs)


def _in_protocol(info: dict[str, str], protocol: str) -> bool:
    if info["attack"] == "live" or protocol == "grandtest":
        return True
    if protocol in ("print", "mobile", "highdef"):
        return info["device"] == protocol
    if protocol == "photo":
        return info["device"] == "print" or info.get("medium") == "photo"
    return info["device"] != "print" and info.get("medium") == "video"  # "video"


@register_dataset("replay-attack", aliases=("replay", "idiap", "I"))
class ReplayAttack(DatasetAdapter):
    """Replay-Attack: splits train/dev/test; protocols grandtest/print/mobile/highdef/photo/video; domain "I"."""

    domain = "I"
    splits = ("train", "dev", "test")
    protocols = REPLAY_PROTOCOLS

    def __init__(self, root: str | Path, face_dir: str | Path | None = None) -> None:
        self._face_dir_arg = None if face_dir is None else Path(face_dir).expanduser()
        super().__init__(root)

    def _check_root(self) -> None:
        root = self.root
        if not any((root / d).is_dir() for d in _SPLIT_DIR.values()):
            raise DatasetError(f"{root}: no train/, devel/ or test/ folder; is this the Replay-Attack root?")
        if self._face_dir_arg is not None:
            if not self._face_dir_arg.is_dir():
                raise DatasetError(f"{self._face_dir_arg}: face-locations folder not found")
            self.face_dir: Path | None = self._face_dir_arg
        else:
            fd = root / "face-locations"
            self.face_dir = nested(fd) if fd.is_dir() else None

    def _list(self, split: str, protocol: str) -> list[MediaItem]:
        sdir = self.root / _SPLIT_DIR[split]
        if not (sdir / "real").is_dir():
            raise DatasetError(f"{sdir}: no real/ folder (Replay-Attack {split} split)")
        if not (sdir / "attack").is_dir():
            raise DatasetError(f"{sdir}: no attack/ folder (Replay-Attack {split} split)")
        if self.face_dir is None:
            log.info("%s: no face-locations/ folder; the face detector will be used", self.root)
        files = _videos_and_frame_folders(sdir / "real")
        for support in ("fixed", "hand"):
            files += _videos_and_frame_folders(sdir / "attack" / support)
        items: list[MediaItem] = []
        for path in files:
            rel = path.relative_to(self.root).with_suffix("") if path.is_file() else path.relative_to(self.root)
            try:
                info = parse_replay_name(path.stem if path.is_file() else path.name)
            except ValueError as err:
                raise DatasetError(f"{path}: {err}") from None
            in_real = rel.parts[1] == "real"
            if in_real != (info["attack"] == "live"):
                raise DatasetError(f"{path}: a {'real' if in_real else 'attack'}/ folder holds a "
                                   f"{'live' if info['attack'] == 'live' else 'attack'} file name")
            if not _in_protocol(info, protocol):
                continue
            face = None
            if self.face_dir is not None:
                cand = self.face_dir / rel.with_suffix(".face")
                face = cand if cand.is_file() else None
            support = "" if in_real else rel.parts[2]
            extra = {"pai": info["pai"], "support": support, "device": info["device"], "light": info["light"],
                     "medium": info.get("medium", ""), "session": info["session"], "protocol": protocol}
            if face is not None:
                extra["face_format"] = "replay"
            items.append(MediaItem(
                media_id=f"{self.domain}/{rel.as_posix()}", paths={"rgb": path},
                label=LIVE if info["attack"] == "live" else SPOOF, attack=info["attack"], domain=self.domain,
                subject=info["client"], video=rel.as_posix(), split=split, kind="video", face_file=face,
                extra=extra))
        return items
