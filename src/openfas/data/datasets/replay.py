"""Idiap Replay-Attack (Chingovska et al., BIOSIG 2012) in its published layout.

::

    ROOT/{train,devel,test}/real/client001_session01_webcam_authenticate_adverse_1.mov
    ROOT/{train,devel,test}/attack/{fixed,hand}/attack_<device>_client001_session01_<source>_<photo|video>_<light>.mov
    ROOT/face-locations/<same relative path>.face      (per-frame ``frame x y w h``; face_format "replay")
    ROOT/enroll/…                                      (enrolment videos: ignored)

Splits ``train``, ``dev`` (folder ``devel``), ``test``. Attack type from the file name:
``attack_print_…`` = print (a printed photo, ``pai="print"``); ``attack_mobile_…`` (iPhone screen) and
``attack_highdef_…`` (iPad screen) = replay, for photos shown on the screen as well as videos (the usual
PAD convention: the medium is a display; ``pai`` = ``mobile_photo``, ``mobile_video``, ``highdef_photo``,
``highdef_video``). ``extra``: ``support`` (fixed/hand, "" for real), ``device`` (print/mobile/highdef,
"webcam" for real), ``light`` (controlled/adverse).

Protocols (as in bob.db.replay): ``grandtest`` (all), ``print``, ``mobile``, ``highdef`` (live + that
attack device), ``photo`` (live + print + displayed photos), ``video`` (live + displayed videos).
``face-locations/`` may also be given as ``face_dir`` (it is a separate download); without it, or for a video
without a ``.face`` file, the face detector is used.
"""

from __future__ import annotations

import re
from pathlib import Path

from openfas.data.datasets.base import DatasetAdapter, DatasetError, log, nested, register_dataset, walk_files
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
        files = walk_files(sdir / "real", _EXTS)
        for support in ("fixed", "hand"):
            files += walk_files(sdir / "attack" / support, _EXTS)
        items: list[MediaItem] = []
        for path in files:
            rel = path.relative_to(self.root).with_suffix("")
            try:
                info = parse_replay_name(path.stem)
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
                     "session": info["session"], "protocol": protocol}
            if face is not None:
                extra["face_format"] = "replay"
            items.append(MediaItem(
                media_id=f"{self.domain}/{rel.as_posix()}", paths={"rgb": path},
                label=LIVE if info["attack"] == "live" else SPOOF, attack=info["attack"], domain=self.domain,
                subject=info["client"], video=rel.as_posix(), split=split, kind="video", face_file=face,
                extra=extra))
        return items
