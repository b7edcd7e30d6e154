"""Reading the JSON files of a run or eval folder (``metrics.json``, ``config.json``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, overload


@overload
def read_run_json(run_dir: str | Path, name: str = ..., required: Literal[True] = ...) -> dict[str, Any]: ...


@overload
def read_run_json(run_dir: str | Path, name: str = ..., *, required: bool) -> dict[str, Any] | None: ...


def read_run_json(run_dir: str | Path, name: str = "metrics.json", required: bool = True) -> dict[str, Any] | None:
    """``<run_dir>/<name>`` parsed; a missing required file → FileNotFoundError, bad JSON → ValueError, both
    naming the file. A missing optional file gives None."""
    run_dir = Path(run_dir)
    path = run_dir / name
    if not path.exists():
        if required:
            raise FileNotFoundError(f"{path}: not found (is {run_dir} a run or eval folder?)")
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
