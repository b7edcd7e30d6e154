"""Run logging: TensorBoard scalars, a JSON-lines log and a CSV of scalars; rank 0 only."""

from __future__ import annotations

import csv
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("openfas")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (it may be swapped, e.g. by a CLI runner),
    never to a stream captured once and closed since."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def setup_console_logging(level: int = logging.INFO) -> None:
    if not log.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
    log.setLevel(level)


class RunLogger:
    """Writes ``metrics.jsonl``, ``scalars.csv`` and TensorBoard events into the run folder."""

    def __init__(self, run_dir: Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self._tb = None
        self._csv_fields: list[str] | None = None
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))
            except ImportError:  # pragma: no cover - tensorboard is a declared dependency
                log.warning("tensorboard not installed; TensorBoard logging disabled")

    def scalars(self, step: int, values: dict[str, float], phase: str = "train", **context: Any) -> None:
        if not self.enabled:
            return
        row = {"time": round(time.time(), 3), "phase": phase, "step": step, **context,
               **{k: float(v) for k, v in values.items()}}
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        with open(self.run_dir / "scalars.csv", "a", newline="") as f:
            for k, v in values.items():
                csv.writer(f).writerow([row["time"], phase, step, k, float(v)])
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(f"{phase}/{k}", float(v), step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
