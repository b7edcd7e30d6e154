"""Cut every photo of a folder into face chips once (``openfas data align SRC DST``).

Every image under ``SRC`` (any depth) becomes ``DST/<same relative path>`` with the suffix ``.png`` (lossless):
the chip of :class:`~openfas.recognition.align.FacePreparer`. Other files (``pairs.txt``, ``masks.csv`` …) are
copied unchanged, so a pair folder stays a pair folder: ``openfas eval … --root DST --aligned`` then scores it
without detecting again (pair lines that name ``.jpg`` files find the ``.png`` chips). ``DST/align.json`` records
the geometry, how each face was found, the images where none was (cut by the fallback), the unreadable ones and
the ones whose face gave no chip (e.g. coincident landmarks).

Two sources that would land on one output (``a.jpg`` and ``a.png``, ``a.JPG`` and ``a.jpg``, a file named
``align.json``) are refused before anything is written. The run writes into a hidden folder beside ``DST`` and
renames it to ``DST`` at the end: a run that stops (``--no-face error``, an error, Ctrl-C) leaves no ``DST``
behind, so the same command can simply be run again.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import cv2

from openfas.data.video import MediaError, read_image
from openfas.errors import OpenFASError
from openfas.recognition.align import FacePreparationError, FacePreparer
from openfas.recognition.data import IMAGE_SUFFIXES

RECORD = "align.json"


class AlignFolderError(OpenFASError, ValueError):
    """The source or destination folder is unusable, or an image could not be processed; the message names it."""


def _outputs(src: Path, files: list[Path]) -> dict[Path, Path]:
    """``{source file: its path under DST}``; :class:`AlignFolderError` when two sources share an output."""
    taken: dict[Path, Path] = {Path(RECORD): src / RECORD}  # the run's own record
    out: dict[Path, Path] = {}
    for path in files:
        rel = path.relative_to(src)
        target = rel.with_suffix(".png") if path.suffix.lower() in IMAGE_SUFFIXES else rel
        if target in taken:
            first = taken[target]
            what = "this run's record" if first == src / RECORD else str(first)
            raise AlignFolderError(f"{what} and {path} would both be written to DST/{target}; rename one of them "
                                   f"(images become .png chips)")
        taken[target] = path
        out[path] = target
    return out


def align_folder(src: str | Path, dst: str | Path, preparer: FacePreparer,
                 progress_every: int = 500) -> dict[str, Any]:
    """Write the chips of every image under ``src`` to ``dst`` (see the module docstring); returns align.json."""
    src, dst = Path(src).expanduser(), Path(dst).expanduser()
    if not src.is_dir():
        raise AlignFolderError(f"{src}: source folder not found")
    if dst.resolve() == src.resolve() or src.resolve() in dst.resolve().parents:
        raise AlignFolderError(f"{dst}: the destination must lie outside the source folder {src}")
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise AlignFolderError(f"{dst}: exists and is not an empty folder; choose a new destination")
    files = sorted(p for p in src.rglob("*") if p.is_file())
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        raise AlignFolderError(f"{src}: no images ({', '.join(IMAGE_SUFFIXES)}) in the folder or below")
    targets = _outputs(src, files)
    dst.parent.mkdir(parents=True, exist_ok=True)
    work = dst.parent / f".{dst.name}.{uuid.uuid4().hex[:12]}.partial"  # the umask's permissions, unlike mkdtemp
    work.mkdir()
    try:
        info = _align_into(src, work, images, files, targets, preparer, progress_every)
        if dst.exists():
            dst.rmdir()  # empty (checked above)
        work.rename(dst)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return info


def _align_into(src: Path, work: Path, images: list[Path], files: list[Path], targets: dict[Path, Path],
                preparer: FacePreparer, progress_every: int) -> dict[str, Any]:
    counts: dict[str, int] = {}
    not_found: list[str] = []
    unreadable: dict[str, str] = {}
    failed: dict[str, str] = {}
    for k, path in enumerate(images, 1):
        rel = str(path.relative_to(src))
        try:
            img = read_image(path)
        except (MediaError, OSError) as err:
            unreadable[rel] = str(err)
            continue
        try:
            prepared = preparer(img, str(path))
        except FacePreparationError as err:
            failed[rel] = str(err)
            continue
        except OpenFASError:
            raise  # names the image (e.g. no face with fallback 'error')
        except Exception as err:
            raise AlignFolderError(f"{path}: {type(err).__name__}: {err}") from err
        counts[prepared.face.how] = counts.get(prepared.face.how, 0) + 1
        if not prepared.found:
            not_found.append(rel)
        out = work / targets[path]
        out.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(out), prepared.chip):
            raise AlignFolderError(f"{out}: cannot write the chip")
        if progress_every and k % progress_every == 0:
            print(f"  {k}/{len(images)} images", flush=True)
    for path in files:
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            target = work / targets[path]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    info = {"source": str(src), "geometry": preparer.geometry.to_meta(), "preparation": preparer.describe(),
            "images": len(images), "chips": len(images) - len(unreadable) - len(failed), "by_route": counts,
            "faces_not_found": len(not_found), "not_found_files": not_found, "unreadable": unreadable,
            "failed": failed}
    (work / RECORD).write_text(json.dumps(info, indent=2))
    return info


__all__ = ["AlignFolderError", "align_folder"]
