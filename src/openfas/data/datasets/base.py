"""Dataset adapters: the common base class, the name registry and small file-system helpers.

An adapter reads one public face anti-spoofing dataset in its OWN published layout (folders, protocol lists,
face-location files) and lists :class:`~openfas.data.sample.MediaItem` records; it never decodes media.
:func:`openfas.data.prepare.prepare_media` turns the items into a face-crop cache.

``get_dataset("oulu-npu")(root).list_media("train", protocol="1")``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar, TypeVar

from openfas.data.sample import MediaItem
from openfas.errors import OpenFASError

log = logging.getLogger("openfas.data.datasets")

VIDEO_EXTS: tuple[str, ...] = (".avi", ".mov", ".mp4", ".mkv", ".webm", ".m4v")
IMAGE_EXTS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class DatasetError(OpenFASError, ValueError):
    """A dataset root, protocol list or file is missing or malformed; the message names the file and problem."""


class DatasetAdapter:
    """Base class: ``Adapter(root).list_media(split, protocol=None) -> list[MediaItem]``.

    Subclasses set ``name`` (registry name), ``domain`` (short domain tag used in media ids and for domain
    generalisation: O, C, I, M, ...), ``splits`` and ``protocols`` (``("default",)`` when the dataset has a
    single protocol; the first one is used when ``protocol`` is None), and implement :meth:`_check_root`
    and :meth:`_list`.
    """

    name: ClassVar[str] = ""
    domain: str = ""
    splits: tuple[str, ...] = ()
    protocols: tuple[str, ...] = ("default",)

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()
        if not self.root.exists():
            raise DatasetError(f"{self.root}: {self.name} root folder not found")
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: {self.name} root must be a folder, this is a file")
        self._check_root()

    # -- to implement -------------------------------------------------------------------------------
    def _check_root(self) -> None:
        """Raise :class:`DatasetError` naming ``self.root`` when it does not look like this dataset."""

    def _list(self, split: str, protocol: str) -> list[MediaItem]:
        raise NotImplementedError

    # -- public -------------------------------------------------------------------------------------
    def list_media(self, split: str, protocol: str | None = None) -> list[MediaItem]:
        """The media items of ``split`` under ``protocol`` (None = the dataset's default protocol), in a
        stable order. Unknown split or protocol → :class:`DatasetError` naming the valid ones."""
        protocol = self.resolve_protocol(protocol)
        split = self.resolve_split(split)
        items = self._list(split, protocol)
        seen: set[str] = set()
        for it in items:
            if it.media_id in seen:
                raise DatasetError(f"{self.root}: media id {it.media_id!r} listed twice in split {split!r} "
                                   f"(protocol {protocol!r})")
            seen.add(it.media_id)
        return items

    def resolve_split(self, split: str) -> str:
        s = split.strip()
        if s not in self.splits:
            raise DatasetError(f"{self.name}: unknown split {split!r}; valid splits: {', '.join(self.splits)}")
        return s

    def resolve_protocol(self, protocol: str | None) -> str:
        if protocol is None or str(protocol).strip() == "":
            return self.protocols[0]
        p = str(protocol).strip()
        if p not in self.protocols:
            raise DatasetError(f"{self.name}: unknown protocol {protocol!r}; valid protocols: "
                               f"{', '.join(self.protocols)}")
        return p

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r})"


A = TypeVar("A", bound=type[DatasetAdapter])
_REGISTRY: dict[str, type[DatasetAdapter]] = {}
_ALIASES: dict[str, str] = {}


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def register_dataset(name: str, aliases: Iterable[str] = ()) -> Callable[[A], A]:
    """Class decorator: register an adapter under ``name`` (plus optional short ``aliases``)."""

    def deco(cls: A) -> A:
        key = _norm(name)
        if key in _REGISTRY and _REGISTRY[key] is not cls:
            raise ValueError(f"dataset name {name!r} is already registered by {_REGISTRY[key].__name__}")
        cls.name = key
        _REGISTRY[key] = cls
        for a in aliases:
            _ALIASES[_norm(a)] = key
        return cls

    return deco


def list_datasets() -> list[str]:
    """Registered dataset names (canonical, sorted)."""
    return sorted(_REGISTRY)


def get_dataset(name: str) -> type[DatasetAdapter]:
    """The adapter class registered as ``name`` (or a short alias such as ``oulu``, ``casia``, ``replay``,
    ``msu``, ``surf``); unknown names → ValueError listing the known ones."""
    key = _norm(name)
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        aliases = ", ".join(f"{a}→{c}" for a, c in sorted(_ALIASES.items()))
        raise DatasetError(f"unknown dataset {name!r}; known datasets: {', '.join(list_datasets())}"
                           + (f" (aliases: {aliases})" if aliases else ""))
    return _REGISTRY[key]


# ----------------------------------------------------------------------------------------- helpers


def nested(path: Path) -> Path:
    """``path/<same name>`` when an archive was unpacked into a folder of its own name (``Train_files/Train_files``)."""
    inner = path / path.name
    return inner if inner.is_dir() else path


def read_list_lines(path: Path) -> list[tuple[int, str]]:
    """Non-empty, non-comment lines of a text list as ``(line_number, stripped_line)``."""
    try:
        text = path.read_text(encoding="utf-8-sig", errors="strict")
    except FileNotFoundError as err:
        raise DatasetError(f"{path}: list file not found") from err
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"{path}: cannot read list file ({err})") from err
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if s and not s.startswith("#"):
            out.append((i, s))
    return out


def files_in(folder: Path) -> dict[str, Path]:
    """``{file name: path}`` of the plain files directly in ``folder`` (one directory read, no stat per file)."""
    out: dict[str, Path] = {}
    try:
        with os.scandir(folder) as it:
            for e in it:
                if e.is_file():
                    out[e.name] = Path(e.path)
    except FileNotFoundError:
        return {}
    return out


def walk_files(folder: Path, exts: tuple[str, ...]) -> list[Path]:
    """All files under ``folder`` (recursively, following no hidden folders) with one of ``exts``, sorted."""
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in filenames:
            if not f.startswith(".") and f.lower().endswith(exts):
                out.append(Path(dirpath) / f)
    return sorted(out)


def warn_missing(dataset: str, source: Path, missing: list[str]) -> None:
    """One warning for the listed-but-absent media of a protocol list (the items are skipped)."""
    if missing:
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        log.warning("%s: %d media listed in %s are missing and skipped: %s", dataset, len(missing), source, shown)
