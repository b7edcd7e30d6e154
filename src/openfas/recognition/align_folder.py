"""Cut every photo of a folder into face chips once (``openfas data align SRC DST``).

Every image under ``SRC`` (any depth) becomes ``DST/<same relative path>`` with the suffix ``.png`` (lossless):
the chip of :class:`~openfas.recognition.align.FacePreparer`. Other files (``pairs.txt``, ``masks.csv`` …) are
copied unchanged, so a pair folder stays a pair folder: ``openfas eval … --root DST --aligned`` then scores it
without detecting again (pair lines that name ``.jpg`` files find the ``.png`` chips). ``DST/align.json`` records
the geometry, how each face was found, the images where none was (cut by the fallback) and the unreadable ones.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import cv2

from openfas.data.video import MediaError, read_image
from openfas.errors import OpenFASError
from openfas.recognition.align import FacePreparer
from openfas.recognition.data import IMAGE_SUFFIXES


class AlignFolderError(OpenFASError, ValueError):
    """The source or destination folder is unusable; the message names it."""


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
    counts: dict[str, int] = {}
    not_found: list[str] = []
    unreadable: dict[str, str] = {}
    for k, path in enumerate(images, 1):
        rel = path.relative_to(src)
        try:
            img = read_image(path)
        except (MediaError, OSError) as err:
            unreadable[str(rel)] = str(err)
            continue
        prepared = preparer(img, str(path))
        counts[prepared.face.how] = counts.get(prepared.face.how, 0) + 1
        if not prepared.found:
            not_found.append(str(rel))
        out = dst / rel.with_suffix(".png")
        out.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(out), prepared.chip):
            raise AlignFolderError(f"{out}: cannot write the chip")
        if progress_every and k % progress_every == 0:
            print(f"  {k}/{len(images)} images", flush=True)
    for path in files:
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            target = dst / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    info = {"source": str(src), "geometry": preparer.geometry.to_meta(), "preparation": preparer.describe(),
            "images": len(images), "chips": len(images) - len(unreadable), "by_route": counts,
            "faces_not_found": len(not_found), "not_found_files": not_found, "unreadable": unreadable}
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "align.json").write_text(json.dumps(info, indent=2))
    return info


__all__ = ["AlignFolderError", "align_folder"]
