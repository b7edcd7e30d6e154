"""Run logging: TensorBoard scalars, a JSON-lines log and a CSV of scalars; rank 0 only."""

from __future__ import annotations

import csv
import json
import logging
import os
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

    FILES = ("metrics.jsonl", "scalars.csv")

    def __init__(self, run_dir: Path, enabled: bool = True, tensorboard: bool = True,
                 resume: dict[str, Any] | None = None) -> None:
        """``resume`` = ``{"step": global step of the checkpoint, "rows": its "log_rows" or None}``: the logs are
        cut back to what they held when that checkpoint was saved (without "rows", to the rows up to ``step``), so
        the steps run again after a resume are not logged twice."""
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self._tb = None
        self._csv_fields: list[str] | None = None
        self.rows = dict.fromkeys(self.FILES, 0)
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume is not None:
            self._truncate(int(resume["step"]), resume.get("rows"))
        for name in self.FILES:
            p = self.run_dir / name
            self.rows[name] = len(p.read_bytes().splitlines()) if p.exists() else 0
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                purge = {"purge_step": int(resume["step"]) + 1} if resume is not None else {}
                self._tb = SummaryWriter(str(self.run_dir / "tensorboard"), **purge)
            except ImportError:  # pragma: no cover - tensorboard is a declared dependency
                log.warning("tensorboard not installed; TensorBoard logging disabled")

    def _truncate(self, step: int, rows: dict[str, int] | None) -> None:
        def step_of(name: str, line: bytes) -> int:
            try:
                text = line.decode()
                return int(json.loads(text)["step"]) if name.endswith(".jsonl") else int(next(csv.reader([text]))[2])
            except (ValueError, KeyError, IndexError, TypeError, StopIteration):
                return step + 1  # an unreadable (half-written) line goes
        for name in self.FILES:
            p = self.run_dir / name
            if not p.exists():
                continue
            # bytes: the kept rows are written back exactly as they were (csv ends its rows with \r\n)
            lines = p.read_bytes().splitlines(keepends=True)
            if rows is not None and name in rows:
                keep = lines[:int(rows[name])]
            else:
                keep = [ln for ln in lines if ln.strip() and step_of(name, ln) <= step]
            if len(keep) != len(lines):
                log.info("%s: dropping %d rows logged after the checkpoint (step %d)", p, len(lines) - len(keep), step)
                tmp = p.with_name(p.name + ".tmp")
                tmp.write_bytes(b"".join(keep))
                os.replace(tmp, p)

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
        self.rows["metrics.jsonl"] += 1
        self.rows["scalars.csv"] += len(values)
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(f"{phase}/{k}", float(v), step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
