"""Progress of long loops: a tqdm bar on a terminal, else one plain line every ``every_s`` seconds (for logs).

tqdm draws nothing when stderr is not a terminal (a log file, a pipe, ``nohup``), which left hour-long runs
silent. :class:`Progress` prints there instead lines such as
``prepare: 120/400 media (30 %), crops 1130, skipped 2, 0.52 media/s, ETA 8m58s``, and a last one on close.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from tqdm.auto import tqdm

DEFAULT_EVERY_S = 30.0


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class Progress:
    """Counts ``total`` items of ``unit``: a tqdm bar when ``stream`` (default stderr) is a terminal, otherwise a
    line every ``every_s`` seconds (0: after every item) and one on :meth:`close`. ``enabled=False``: silent."""

    def __init__(self, total: int, desc: str, unit: str, *, enabled: bool = True,
                 every_s: float = DEFAULT_EVERY_S, stream: TextIO | None = None) -> None:
        self.total, self.desc, self.unit, self.every_s = total, desc, unit, every_s
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.counts: dict[str, Any] = {}
        self.enabled = enabled
        self._start = self._last = time.monotonic()
        self._printed = 0  # items done when the last line was printed
        self._bar = None
        if enabled and _isatty(self.stream):
            self._bar = tqdm(total=total, unit=unit, desc=desc, file=self.stream, dynamic_ncols=True)

    def update(self, n: int = 1, **counts: Any) -> None:
        """``n`` more items done; ``counts`` (e.g. ``crops=57``) are shown beside the count."""
        self.done += n
        self.counts.update(counts)
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
            if counts:
                self._bar.set_postfix(self.counts)
            return
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self._line(now)

    def line(self, now: float | None = None, final: bool = False) -> str:
        """The progress line for the current state."""
        elapsed = (time.monotonic() if now is None else now) - self._start
        pct = f" ({100 * self.done / self.total:.0f} %)" if self.total else ""
        parts = [f"{self.desc}: {self.done}/{self.total} {self.unit}{pct}"]
        parts += [f"{k} {v}" for k, v in self.counts.items()]
        rate = self.done / elapsed if elapsed > 0 else 0.0
        parts.append(f"{rate:.3g} {self.unit}/s")
        if final:
            parts.append(f"took {_duration(elapsed)}")
        elif rate > 0 and self.done < self.total:
            parts.append(f"ETA {_duration((self.total - self.done) / rate)}")
        return ", ".join(parts)

    def _line(self, now: float, final: bool = False) -> None:
        self._printed = self.done
        print(self.line(now, final), file=self.stream, flush=True)

    def close(self) -> None:
        """Close the bar, or print the last line (when items were done since the previous one)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.enabled and self.done != self._printed:
            self._line(time.monotonic(), final=True)
        self.enabled = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
