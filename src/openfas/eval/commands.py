"""``openfas eval`` (and the other evaluation commands): registered on the main CLI by :func:`register`.

Heavy imports stay inside the command functions so that ``openfas --help`` is fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from openfas.cli_common import fail as _fail


def register(app: typer.Typer) -> None:
    """Add the evaluation commands to ``app``."""
    app.command("eval")(evaluate)


def evaluate(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint (.safetensors) written by `openfas train`.")],
    cache: Annotated[str | None, typer.Option(
        help="Crop cache to evaluate on (default: the training config's).")] = None,
    split: Annotated[str, typer.Option(help="Split to score ('all' for every split).")] = "test",
    domains: Annotated[str | None, typer.Option(
        help="Comma-separated domains (default: the config's test domains).")] = None,
    threshold: Annotated[str, typer.Option(
        help="'stored' (the checkpoint's dev threshold), 'eer' or a number.")] = "stored",
    out: Annotated[Path | None, typer.Option(
        help="Output folder (default: <checkpoint folder>/../eval-<split>).")] = None,
) -> None:
    """Score a dataset split with a trained checkpoint and write per-frame scores and ``metrics.json``."""
    from openfas.engine.checkpoint import CheckpointError
    from openfas.engine.evaluation import evaluate_tables
    from openfas.engine.trainer import Trainer, build_model_from_checkpoint

    try:
        model, info = build_model_from_checkpoint(checkpoint)
    except CheckpointError as err:
        _fail(str(err))
        return
    cfg = info["config"]
    if cache is not None:
        cfg.data.cache = cache
    trainer = Trainer.__new__(Trainer)  # reuse the scoring code without training state
    from openfas.engine import distributed as D
    from openfas.engine.trainer import resolve_cache

    trainer.cfg, trainer.method, trainer.model = cfg, info["method"], model
    trainer.dist, trainer.device = D.DistInfo(), D.resolve_device(cfg.train.device)
    trainer.model.to(trainer.device)
    trainer.amp_dtype = None
    trainer.cache_dir = resolve_cache(cfg)
    doms = domains.split(",") if domains else (cfg.data.test_domains or cfg.data.train_domains)
    table = trainer.score_split(split, doms)
    stored = info["meta"].get("threshold")
    if threshold == "stored":
        if stored is None:
            _fail(f"{checkpoint}: no stored threshold; pass --threshold eer or a number")
        result = evaluate_tables(table, None, "fixed", float(stored), cfg.eval.video_level)
        result["threshold"].update(policy="stored", source="threshold stored in the checkpoint (chosen on dev)")
    elif threshold == "eer":
        result = evaluate_tables(table, None, "eer", video_level=cfg.eval.video_level)
    else:
        try:
            value = float(threshold)
        except ValueError:
            _fail(f"--threshold {threshold!r}: expected 'stored', 'eer' or a number")
            return
        result = evaluate_tables(table, None, "fixed", value, cfg.eval.video_level)
    out_dir = out or checkpoint.parent.parent / f"eval-{split}"
    out_dir.mkdir(parents=True, exist_ok=True)
    table.write_csv(out_dir / "scores.csv")
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2))
    typer.echo(json.dumps({"out": str(out_dir), **result["headline"]}, indent=2))
