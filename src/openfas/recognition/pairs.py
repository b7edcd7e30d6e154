"""Verification pair lists: LFW ``pairs.txt``, MFR2 ``pairs.txt`` and MLFW ``pairs.txt``.

Formats (whitespace-separated fields; blank lines and ``#`` comments are skipped):

* ``lfw`` – first line ``<sets> <pairs_per_set>`` (e.g. ``10 300``), then ``Name i j`` (same person) or
  ``Name1 i Name2 j`` (different); image ``root/Name/Name_%04d<ext>`` (``ext`` default ``.jpg``). The file
  is in ``sets`` consecutive blocks of ``2·pairs_per_set`` pairs: the official 10 folds. View 1's
  ``pairsDevTrain.txt`` / ``pairsDevTest.txt`` have a one-number header ``N`` (N same, then N different pairs)
  and no folds (accuracy then uses 10 folds stratified by label).
* ``mfr2`` – the same lines without the header; ``ext`` default ``.png`` (MaskTheFace's MFR2 release).
  Not organised in folds.
* ``mlfw`` – ``img1 img2 label`` (paths relative to ``root``, label 1 = same, 0 = different).
* ``auto`` – decided from the first data line (a two-integer line is an LFW header; three fields with a
  0/1 last field and file-like first fields are MLFW; otherwise MFR2).

A malformed line raises :class:`PairsError` naming the file and the line number.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from openfas.errors import OpenFASError

PAIR_FORMATS = ("auto", "lfw", "mfr2", "mlfw")
_IMAGE_EXTS = (".jpg", ".png", ".jpeg", ".bmp", ".webp")


class PairsError(OpenFASError, ValueError):
    """A pairs file (or an image it names) is unusable; the message names the file and line."""


@dataclass(frozen=True)
class PairList:
    """Relative image paths of each pair, labels (1 = same identity) and the official folds if any."""

    left: list[str]
    right: list[str]
    labels: list[int]
    folds: list[int] | None  # fold index per pair (LFW header), else None
    format: str
    source: str

    def __len__(self) -> int:
        return len(self.labels)


def _is_int(s: str) -> bool:
    try:
        int(s)
    except ValueError:
        return False
    return True


def _looks_like_file(s: str) -> bool:
    return "/" in s or "\\" in s or s.lower().endswith(_IMAGE_EXTS)


def detect_format(lines: list[str]) -> str:
    for line in lines:
        f = line.split()
        if not f or f[0].startswith("#"):
            continue
        if 1 <= len(f) <= 2 and all(_is_int(x) for x in f):
            return "lfw"
        if len(f) == 3 and f[2] in ("0", "1") and _looks_like_file(f[0]) and _looks_like_file(f[1]):
            return "mlfw"
        return "mfr2"
    return "mfr2"


def read_pairs(path: str | Path, fmt: str = "auto", ext: str | None = None) -> PairList:
    """Parse a pairs file (see the module docstring); ``ext`` overrides the image suffix of lfw/mfr2."""
    path = Path(path)
    if fmt not in PAIR_FORMATS:
        raise PairsError(f"{path}: unknown pairs format {fmt!r}; use one of {', '.join(PAIR_FORMATS)}")
    if not path.is_file():
        raise PairsError(f"{path}: pairs file not found")
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise PairsError(f"{path}: cannot read the pairs file ({err})") from None
    if fmt == "auto":
        fmt = detect_format(lines)
    suffix = ext if ext is not None else (".jpg" if fmt == "lfw" else ".png")
    if suffix and not suffix.startswith("."):
        suffix = "." + suffix
    left: list[str] = []
    right: list[str] = []
    labels: list[int] = []
    per_set = None
    sets = 0
    for no, raw in enumerate(lines, 1):
        f = raw.split()
        if not f or f[0].startswith("#"):
            continue
        where = f"{path}:{no}"
        if fmt == "lfw" and per_set is None:
            if len(f) not in (1, 2) or not all(_is_int(x) for x in f):
                raise PairsError(f"{where}: expected the LFW header '<sets> <pairs_per_set>' (View 2) or "
                                 f"'<pairs per class>' (View 1), got {raw.strip()!r}")
            per_set = 2 * int(f[-1])
            if per_set <= 0:
                raise PairsError(f"{where}: pairs per set must be positive")
            sets = int(f[0]) if len(f) == 2 else 1
            continue
        if fmt == "mlfw":
            if len(f) != 3 or f[2] not in ("0", "1"):
                raise PairsError(f"{where}: expected 'img1 img2 label' with label 0 or 1, got {raw.strip()!r}")
            left.append(f[0])
            right.append(f[1])
            labels.append(int(f[2]))
            continue
        if len(f) == 3 and _is_int(f[1]) and _is_int(f[2]):
            n1, i, n2, j = f[0], int(f[1]), f[0], int(f[2])
        elif len(f) == 4 and _is_int(f[1]) and _is_int(f[3]):
            n1, i, n2, j = f[0], int(f[1]), f[2], int(f[3])
        else:
            raise PairsError(f"{where}: expected 'Name i j' or 'Name1 i Name2 j' (integer image numbers), "
                             f"got {raw.strip()!r}")
        if i < 0 or j < 0:
            raise PairsError(f"{where}: negative image number")
        left.append(f"{n1}/{n1}_{i:04d}{suffix}")
        right.append(f"{n2}/{n2}_{j:04d}{suffix}")
        labels.append(int(n1 == n2))
    if not labels:
        raise PairsError(f"{path}: no pairs found")
    folds = None
    if fmt == "lfw" and per_set:
        if len(labels) != sets * per_set:
            raise PairsError(f"{path}: the header announces {sets * per_set} pairs, the file has {len(labels)}")
        if sets > 1:
            folds = [k // per_set for k in range(len(labels))]
    return PairList(left, right, labels, folds, fmt, str(path))


def resolve_image(root: Path, rel: str, pairs: PairList) -> Path:
    """``root/rel``; when missing, the same stem with another common image suffix; else a clear error."""
    p = root / rel
    if p.is_file():
        return p
    for alt in _IMAGE_EXTS:
        q = p.with_suffix(alt)
        if q.is_file():
            return q
    raise PairsError(f"{pairs.source}: image {rel!r} not found under {root}")


__all__ = ["PAIR_FORMATS", "PairList", "PairsError", "detect_format", "read_pairs", "resolve_image"]
