"""Small helpers shared by the command modules of the ``openfas`` CLI."""

from __future__ import annotations

import math
from pathlib import Path
from typing import NoReturn

import typer


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` in red on stderr and exit with ``code``."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def check_folder_target(path: Path, what: str) -> None:
    """Exit 2 when ``path`` (a folder to create or reuse) is a file or lies under one."""
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                fail(f"{what} {path}: {'it' if p == path else p} exists and is not a folder")
            return


def check_file_target(path: Path, what: str) -> None:
    """Exit 2 when the output file ``path`` is a folder, or its folder is a file or lies under one."""
    if path.is_dir():
        fail(f"{what} {path}: is a folder, expected a file name")
    check_folder_target(path.parent, what)


def check_finite(value: float | None, what: str) -> None:
    """Exit 2 when ``value`` is NaN or infinite (it would end up as bare NaN in JSON and decide nothing)."""
    if value is not None and not math.isfinite(value):
        fail(f"{what} must be a finite number, got {value}")
