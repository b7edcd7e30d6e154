"""CASIA-SURF (Zhang et al., CVPR 2019): aligned RGB / depth / IR face crops listed by text files.

::

    ROOT/train_list.txt           Training/real_part/CLKJ_AS0137/real.rssdk/color/91.jpg <depth> <ir> 1
    ROOT/val_private_list.txt     Val/0000/000000-color.jpg Val/0000/000000-depth.jpg Val/0000/000000-ir.jpg 1
    ROOT/test_private_list.txt    (same)

One line per sample: ``rgb_path depth_path ir_path label`` relative to the root (label 1 real, 0 fake).
Splits: ``train`` (train_list.txt), ``dev`` (val_private_list.txt), ``test`` (test_private_list.txt). The
``*_public_list.txt`` files carry no labels and are refused. The images already are face crops
(``face_format="whole"``), ``kind="image"``. Every CASIA-SURF attack is a printed photo with cut-out face
regions: ``attack="print"``, the attack folder name (e.g. ``04_en_b``) kept in ``extra["attack_code"]``.
The protocol may also be the path of any list file in this format (absolute or relative to the root);
its items then carry the split name asked for.

Missing listed images: skipped with one logged warning per list; a list none of whose images exist is an
error (wrong root).
"""

from __future__ import annotations

from pathlib import Path

from openfas.data.datasets.base import DatasetAdapter, DatasetError, read_list_lines, register_dataset, warn_missing
from openfas.data.sample import LIVE, SPOOF, MediaItem

SURF_LISTS: dict[str, tuple[str, ...]] = {"train": ("train_list.txt",),
                                          "dev": ("val_private_list.txt", "val_list.txt"),
                                          "test": ("test_private_list.txt", "test_list.txt")}
MODALITY_DIRS = ("color", "profile", "rgb", "depth", "ir")


def parse_label(token: str, path: Path, lineno: int) -> int:
    """List label ``1`` real / ``0`` fake → openfas label."""
    if token not in ("0", "1"):
        raise DatasetError(f"{path}:{lineno}: label {token!r} is not 1 (real) or 0 (fake)")
    return LIVE if token == "1" else SPOOF


def video_of(rel: str) -> str:
    """The video (capture) folder of a frame path: the folder above ``color/``/``profile/``/…, else its folder."""
    parts = rel.split("/")[:-1]
    if parts and parts[-1].lower() in MODALITY_DIRS:
        parts = parts[:-1]
    return "/".join(parts) or rel


def list_base(list_path: Path, root: Path, first_rel: str) -> Path:
    """Folder the list's relative paths start from: the root, else the list's own folder."""
    if (root / first_rel).exists() or not (list_path.parent / first_rel).exists():
        return root
    return list_path.parent


def resolve_list_protocol(root: Path, protocol: str) -> Path | None:
    """A protocol given as the path of a list file (absolute, or relative to the root/cwd), else None."""
    if not protocol.endswith(".txt") and "/" not in protocol and "\\" not in protocol:
        return None
    for cand in (Path(protocol).expanduser(), root / protocol):
        if cand.is_file():
            return cand
    raise DatasetError(f"{protocol}: list file not found (looked in the working folder and in {root})")


class TripletListAdapter(DatasetAdapter):
    """Base of the datasets whose splits are text lists of labelled RGB / depth / IR samples (CASIA-SURF, CeFA).

    The protocol may be the path of a list file (:func:`resolve_list_protocol`); a list's relative paths start
    at the root or else at the list's folder (:func:`list_base`, decided on its first line); each line ends
    with its label (:func:`parse_label`); samples whose three images are not all there are skipped with one
    logged warning, and a list none of whose samples exist is an error. Subclasses implement
    :meth:`_published_list`, :meth:`_check_tokens`, :meth:`_samples` and :meth:`_item`.
    """

    listed = "samples"  # what a list line names, in the "none of the … exist" error

    def resolve_protocol(self, protocol: str | None) -> str:
        if protocol and resolve_list_protocol(self.root, str(protocol)) is not None:
            return str(protocol)
        return super().resolve_protocol(protocol)

    def list_file(self, split: str, protocol: str | None = None) -> Path:
        """The list file of ``split``: ``protocol`` as a list path, else the dataset's own list of that protocol
        (None = the first protocol)."""
        protocol = self.protocols[0] if protocol is None else protocol
        custom = resolve_list_protocol(self.root, protocol)
        return custom if custom is not None else self._published_list(split, protocol)

    # -- to implement -------------------------------------------------------------------------------
    def _published_list(self, split: str, protocol: str) -> Path:
        """The dataset's own list file of ``split`` under ``protocol``; :class:`DatasetError` if absent."""
        raise NotImplementedError

    def _check_tokens(self, tok: list[str], line: str, path: Path, lineno: int) -> None:
        """Raise :class:`DatasetError` (``path:lineno: …``) unless ``tok`` is a line form this list accepts."""
        raise NotImplementedError

    def _samples(self, tok: list[str], first: str, base: Path, path: Path, lineno: int) -> list[list[str]] | None:
        """The ``[rgb, depth, ir]`` paths (relative to ``base``) of every sample a line names (``first`` is its
        first path with ``/`` separators), or None when it names a folder that does not exist."""
        raise NotImplementedError

    def _item(self, rels: list[str], base: Path, label: int, split: str, protocol: str, path: Path,
              lineno: int) -> MediaItem:
        """The media item of one sample (``rels`` as :meth:`_samples` gives it, line ``lineno`` of ``path``)."""
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------------------
    def _list(self, split: str, protocol: str) -> list[MediaItem]:
        path = self.list_file(split, protocol)
        lines = read_list_lines(path)
        items: list[MediaItem] = []
        missing: list[str] = []
        base: Path | None = None
        for lineno, line in lines:
            tok = line.split()
            self._check_tokens(tok, line, path, lineno)
            label = parse_label(tok[-1], path, lineno)
            first = tok[0].replace("\\", "/").rstrip("/")
            if base is None:
                base = list_base(path, self.root, first)
            samples = self._samples(tok, first, base, path, lineno)
            if samples is None:
                missing.append(first)
                continue
            for rels in samples:
                if not all((base / r).is_file() for r in rels):
                    missing.append(rels[0])
                    continue
                items.append(self._item(rels, base, label, split, protocol, path, lineno))
        if lines and not items:
            raise DatasetError(f"{path}: none of the {len(lines)} listed {self.listed} exist under {base} "
                               f"(first: {missing[0] if missing else '?'}); wrong root?")
        warn_missing(self.name, path, missing)
        return items


@register_dataset("casia-surf", aliases=("surf",))
class CasiaSURF(TripletListAdapter):
    """CASIA-SURF: splits train/dev/test from the published lists; protocol "default" or a list path."""

    domain = "casia-surf"
    splits = ("train", "dev", "test")
    listed = "images"

    def _check_root(self) -> None:
        if not any((self.root / n).is_file() for names in SURF_LISTS.values() for n in names):
            raise DatasetError(f"{self.root}: no train_list.txt / val_private_list.txt / test_private_list.txt; "
                               "is this the CASIA-SURF root?")

    def _published_list(self, split: str, protocol: str) -> Path:
        for name in SURF_LISTS[split]:
            if (self.root / name).is_file():
                return self.root / name
        raise DatasetError(f"{self.root}: no {' or '.join(SURF_LISTS[split])} for the CASIA-SURF {split} split")

    def _check_tokens(self, tok: list[str], line: str, path: Path, lineno: int) -> None:
        if len(tok) == 3:
            raise DatasetError(f"{path}:{lineno}: no label (an unlabelled *_public list?); expected "
                               "'rgb depth ir label'")
        if len(tok) != 4:
            raise DatasetError(f"{path}:{lineno}: expected 'rgb_path depth_path ir_path label', got {line!r}")

    def _samples(self, tok: list[str], first: str, base: Path, path: Path, lineno: int) -> list[list[str]] | None:
        return [[t.replace("\\", "/") for t in tok[:3]]]

    def _item(self, rels: list[str], base: Path, label: int, split: str, protocol: str, path: Path,
              lineno: int) -> MediaItem:
        paths = {m: base / r for m, r in zip(("rgb", "depth", "ir"), rels, strict=True)}
        parts = rels[0].split("/")
        video = video_of(rels[0])
        subject = parts[2] if len(parts) > 3 and parts[0].lower().startswith("train") else video
        extra: dict = {"face_format": "whole", "pai": "live" if label == LIVE else "print", "list": path.name}
        if label == SPOOF and len(parts) > 4 and parts[1].lower().startswith("fake"):
            extra["attack_code"] = parts[3].split(".")[0]
        return MediaItem(media_id=f"{self.domain}/{rels[0].rsplit('.', 1)[0]}", paths=paths, label=label,
                         attack="live" if label == LIVE else "print", domain=self.domain, subject=subject,
                         video=video, split=split, kind="image", extra=extra)
