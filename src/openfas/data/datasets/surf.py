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


@register_dataset("casia-surf", aliases=("surf",))
class CasiaSURF(DatasetAdapter):
    """CASIA-SURF: splits train/dev/test from the published lists; protocol "default" or a list path."""

    domain = "casia-surf"
    splits = ("train", "dev", "test")

    def _check_root(self) -> None:
        if not any((self.root / n).is_file() for names in SURF_LISTS.values() for n in names):
            raise DatasetError(f"{self.root}: no train_list.txt / val_private_list.txt / test_private_list.txt; "
                               "is this the CASIA-SURF root?")

    def resolve_protocol(self, protocol: str | None) -> str:
        if protocol and resolve_list_protocol(self.root, str(protocol)) is not None:
            return str(protocol)
        return super().resolve_protocol(protocol)

    def list_file(self, split: str, protocol: str = "default") -> Path:
        custom = resolve_list_protocol(self.root, protocol)
        if custom is not None:
            return custom
        for name in SURF_LISTS[split]:
            if (self.root / name).is_file():
                return self.root / name
        raise DatasetError(f"{self.root}: no {' or '.join(SURF_LISTS[split])} for the CASIA-SURF {split} split")

    def _list(self, split: str, protocol: str) -> list[MediaItem]:
        path = self.list_file(split, protocol)
        lines = read_list_lines(path)
        items: list[MediaItem] = []
        missing: list[str] = []
        base: Path | None = None
        for lineno, line in lines:
            tok = line.split()
            if len(tok) == 3:
                raise DatasetError(f"{path}:{lineno}: no label (an unlabelled *_public list?); expected "
                                   "'rgb depth ir label'")
            if len(tok) != 4:
                raise DatasetError(f"{path}:{lineno}: expected 'rgb_path depth_path ir_path label', got {line!r}")
            label = parse_label(tok[3], path, lineno)
            rels = [t.replace("\\", "/") for t in tok[:3]]
            if base is None:
                base = list_base(path, self.root, rels[0])
            paths = {m: base / r for m, r in zip(("rgb", "depth", "ir"), rels, strict=True)}
            if not all(p.is_file() for p in paths.values()):
                missing.append(rels[0])
                continue
            parts = rels[0].split("/")
            video = video_of(rels[0])
            subject = parts[2] if len(parts) > 3 and parts[0].lower().startswith("train") else video
            extra: dict = {"face_format": "whole", "pai": "live" if label == LIVE else "print", "list": path.name}
            if label == SPOOF and len(parts) > 4 and parts[1].lower().startswith("fake"):
                extra["attack_code"] = parts[3].split(".")[0]
            items.append(MediaItem(
                media_id=f"{self.domain}/{rels[0].rsplit('.', 1)[0]}", paths=paths, label=label,
                attack="live" if label == LIVE else "print", domain=self.domain, subject=subject, video=video,
                split=split, kind="image", extra=extra))
        if lines and not items:
            raise DatasetError(f"{path}: none of the {len(lines)} listed images exist under {base} "
                               f"(first: {missing[0]}); wrong root?")
        warn_missing(self.name, path, missing)
        return items
