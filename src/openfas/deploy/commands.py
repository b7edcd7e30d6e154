"""``openfas predict`` / ``export`` / ``serve``: registered on the main CLI by :func:`register`.

Heavy imports stay inside the command functions so that ``openfas --help`` is fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from openfas.cli_common import fail as _fail


def register(app: typer.Typer) -> None:
    """Add the deployment commands to ``app``."""
    app.command()(predict)
    app.command()(export)
    app.command()(serve)


def predict(
    checkpoint: Annotated[Path, typer.Argument(help="Trained checkpoint (.safetensors) or exported .onnx.")],
    inputs: Annotated[list[Path], typer.Argument(help="Images, videos or folders.")],
) -> None:
    """Score face images or videos (liveness score, higher = more live). [Deployment issue: in progress]"""
    _fail("`openfas predict` is not implemented yet (tracked by the deployment issue); use "
          "`openfas eval` on a prepared cache meanwhile", 1)


def export(
    checkpoint: Annotated[Path, typer.Argument(help="Trained checkpoint (.safetensors).")],
    onnx: Annotated[Path, typer.Option("--onnx", help="Output .onnx file.")],
) -> None:
    """Export a trained model to ONNX (CDC convs folded, dynamic batch). [Deployment issue: in progress]"""
    _fail("`openfas export` is not implemented yet (tracked by the deployment issue)", 1)


def serve(
    checkpoint: Annotated[Path, typer.Argument(help="Trained checkpoint or .onnx model.")],
    host: str = "127.0.0.1",
    port: int = 8000,
) -> None:
    """Run the HTTP liveness service with its web page. [Deployment issue: in progress]"""
    _fail("`openfas serve` is not implemented yet (tracked by the deployment issue)", 1)
