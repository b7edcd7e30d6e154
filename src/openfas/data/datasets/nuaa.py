"""NUAA Photograph Imposter Database (Tan et al., ECCV 2010) in its published layout.

::

    ROOT/ClientRaw/<id>/<id>_<glasses>_<pos>_<session>_<picNo>.jpg        live webcam frames (640×480)
    ROOT/ImposterRaw/<id>/…                                                printed-photo attacks
    ROOT/client_train_raw.txt  imposter_train_raw.txt                      sessions 01–02 (official train)
    ROOT/client_test_raw.txt   imposter_test_raw.txt                       session 03 (official test)

List lines are ``<id>/<file>`` (CRLF line ends in the distribution). The database also ships face crops:
``variant="face"`` reads ``ClientFace``/``ImposterFace`` with ``*_face.txt`` and ``variant="normalized"`` reads
``ClientNormalized``/``ImposterNormalized`` with ``*_normalized.txt``; both are already face crops
(``face_format="whole"``, no detector). Each variant may also sit in the sub-folder the archive unpacks to
(``raw/``, ``Detectedface/``, ``NormalizedFace/``) under ROOT.

Every item is one still image (``kind="image"``). ``video`` groups the frames of one recording:
``<id>_<glasses>_<pos>_<session>_<live|print>``, so video-level scores pool the frames of one take.
``extra`` holds ``session``, ``glasses``, ``position`` and ``pic``; ``subject`` is the 4-digit person id.

Protocols (the official one has train and test only; openfas needs a dev split for the threshold and the
checkpoint, and it is always carved from the official TRAIN lists, never from session 03):

- ``cross-session`` (default): train = session 01, dev = session 02, test = session 03. The test session was
  recorded in another place and light, so the dev split must also be an unseen session to predict it: a dev of
  held-out people from the training sessions shares their light and background and saturates (dev AUC 1.0
  while session-3 AUC was 0.68), so it cannot rank recipes. The price is half the training frames.
- ``cross-session-swap``: train = session 02, dev = session 01 (the second fold, for recipe selection).
- ``people``: train = sessions 01–02 of all but the last ``dev_people`` persons (numeric order, only persons with
  both live and print frames count), dev = those persons' frames; kept for comparison.
- ``sessions``: the ``people`` split with one DOMAIN per session (``N01``, ``N02``; test ``N03``) instead of
  ``N``, for the domain-generalisation methods (RFMetaFAS, ANRL), which meta-learn across source domains.
- ``official``: train = sessions 01–02, test = session 03, and an EMPTY dev split (training refuses it).

A listed file that is absent is skipped, counted and named: one warning per list, and
``adapter.missing[list file] = [names]`` for the CLI report. A malformed list line is an error naming the
file and line.
"""

from __future__ import annotations

import re
from pathlib import Path

from openfas.data.datasets.base import (
    DatasetAdapter,
    DatasetError,
    read_list_lines,
    register_dataset,
    warn_missing,
)
from openfas.data.sample import LIVE, SPOOF, MediaItem

NUAA_PROTOCOLS: tuple[str, ...] = ("cross-session", "cross-session-swap", "people", "sessions", "official")
# variant → (live folder, attack folder, list-file suffix, archive sub-folder)
NUAA_VARIANTS: dict[str, tuple[str, str, str, str]] = {
    "raw": ("ClientRaw", "ImposterRaw", "raw", "raw"),
    "face": ("ClientFace", "ImposterFace", "face", "Detectedface"),
    "normalized": ("ClientNormalized", "ImposterNormalized", "normalized", "NormalizedFace"),
}
_NAME = re.compile(r"^(\d{4})_(\d{2})_(\d{2})_(\d{2})_(\d+)$")
_TRAIN_DEV_SESSIONS = {"cross-session": ("01", "02"), "cross-session-swap": ("02", "01")}


def parse_nuaa_name(name: str) -> dict[str, str]:
    """``"0010_01_05_03_115.jpg"`` → ``{"id": "0010", "glasses": "01", "position": "05", "session": "03",
    "pic": "115"}``; a name not of the form ``ID_glasses_pos_session_picNo`` → ValueError."""
    m = _NAME.match(Path(name).stem)
    if m is None:
        raise ValueError(f"{name!r} is not a NUAA file name ID_glasses_pos_session_picNo (e.g. 0010_01_05_03_115.jpg)")
    return dict(zip(("id", "glasses", "position", "session", "pic"), m.groups(), strict=True))


@register_dataset("nuaa", aliases=("N",))
class NUAA(DatasetAdapter):
    """NUAA: protocols ``cross-session`` (default), ``cross-session-swap``, ``people``, ``sessions``,
    ``official``; splits train/dev/test; domain "N" (``sessions``: "N" + the session); ``variant`` raw (default),
    face or normalized."""

    domain = "N"
    splits = ("train", "dev", "test")
    protocols = NUAA_PROTOCOLS

    def __init__(self, root: str | Path, variant: str = "raw", dev_people: int = 2) -> None:
        if variant not in NUAA_VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(NUAA_VARIANTS)}, got {variant!r}")
        if dev_people < 1:
            raise ValueError(f"dev_people must be >= 1, got {dev_people}")
        self.variant = variant
        self.dev_people = dev_people
        self.missing: dict[str, list[str]] = {}
        self._lists: dict[tuple[str, str], list[tuple[str, dict[str, str], Path | None]]] = {}
        super().__init__(root)

    def _check_root(self) -> None:
        live, attack, suffix, sub = NUAA_VARIANTS[self.variant]
        for base in (self.root, self.root / sub):
            if (base / f"client_train_{suffix}.txt").is_file() or (base / live).is_dir():
                self.base = base
                break
        else:
            raise DatasetError(f"{self.root}: no {live}/ folder or client_train_{suffix}.txt; is this the NUAA "
                               f"root (variant {self.variant!r})?")
        for folder in (live, attack):
            if not (self.base / folder).is_dir():
                raise DatasetError(f"{self.base}: no {folder}/ folder (NUAA variant {self.variant!r})")

    def list_file(self, cls: str, official_split: str) -> Path:
        """``client_train_raw.txt`` etc.: ``cls`` in client/imposter, ``official_split`` in train/test."""
        return self.base / f"{cls}_{official_split}_{NUAA_VARIANTS[self.variant][2]}.txt"

    def _read(self, cls: str, official_split: str) -> list[tuple[str, dict[str, str], Path | None]]:
        """``[(list entry, parsed name, path or None when absent)]`` of one list; absent files are recorded."""
        if (cls, official_split) in self._lists:
            return self._lists[cls, official_split]
        path = self.list_file(cls, official_split)
        if not path.is_file():
            raise DatasetError(f"{path}: NUAA list file not found")
        folder = self.base / NUAA_VARIANTS[self.variant][0 if cls == "client" else 1]
        out: list[tuple[str, dict[str, str], Path | None]] = []
        missing: list[str] = []
        for lineno, line in read_list_lines(path):  # splitlines() also ends CRLF lines
            entry = line.replace("\\", "/")
            parts = entry.split("/")
            if len(parts) != 2 or not parts[0] or not parts[1]:
                raise DatasetError(f"{path}:{lineno}: expected '<id>/<file>' (e.g. 0001/0001_00_00_01_0.jpg), "
                                   f"got {line!r}")
            try:
                info = parse_nuaa_name(parts[1])
            except ValueError as err:
                raise DatasetError(f"{path}:{lineno}: {err}") from None
            if info["id"] != parts[0]:
                raise DatasetError(f"{path}:{lineno}: file {parts[1]} lies in folder {parts[0]} of another person")
            file = folder / parts[0] / parts[1]
            present = file.is_file()
            if not present:
                missing.append(entry)
            out.append((entry, info, file if present else None))
        if missing:
            self.missing[str(path)] = missing
        warn_missing(self.name, path, missing)
        self._lists[cls, official_split] = out
        return out

    def _dev_people(self, entries: list[tuple[str, str, dict[str, str]]]) -> set[str]:
        both = sorted({i["id"] for c, _, i in entries if c == "client"} & {i["id"] for c, _, i in entries
                                                                             if c == "imposter"})
        if len(both) <= self.dev_people:
            raise DatasetError(f"{self.list_file('client', 'train')}: dev_people={self.dev_people} leaves no training "
                               f"person ({len(both)} persons have both live and print frames)")
        return set(both[-self.dev_people:])

    def _list(self, split: str, protocol: str) -> list[MediaItem]:
        official = "test" if split == "test" else "train"
        if split == "dev" and protocol == "official":
            return []
        entries = [(cls, e, i, f) for cls in ("client", "imposter") for e, i, f in self._read(cls, official)]
        if split != "test":
            if protocol in _TRAIN_DEV_SESSIONS:
                session = _TRAIN_DEV_SESSIONS[protocol][0 if split == "train" else 1]
                entries = [x for x in entries if x[2]["session"] == session]
            elif protocol in ("people", "sessions"):
                held = self._dev_people([(c, e, i) for c, e, i, _ in entries])
                entries = [x for x in entries if (x[2]["id"] in held) == (split == "dev")]
        items: list[MediaItem] = []
        whole = self.variant != "raw"
        for cls, entry, info, file in entries:
            if file is None:
                continue
            live = cls == "client"
            take = f"{info['id']}_{info['glasses']}_{info['position']}_{info['session']}_{'live' if live else 'print'}"
            domain = f"{self.domain}{info['session']}" if protocol == "sessions" else self.domain
            items.append(MediaItem(
                media_id=f"{domain}/{NUAA_VARIANTS[self.variant][0 if live else 1]}/{entry}",
                paths={"rgb": file}, label=LIVE if live else SPOOF, attack="live" if live else "print",
                domain=domain, subject=info["id"], video=take, split=split, kind="image",
                extra={"session": info["session"], "glasses": info["glasses"], "position": info["position"],
                       "pic": info["pic"], "pai": "live" if live else "printed_photo", "protocol": protocol,
                       "variant": self.variant, **({"face_format": "whole"} if whole else {})}))
        return items
