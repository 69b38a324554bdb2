"""A progress line for long file work (replay, export): done, rate, ETA, on stderr.

Neither tqdm nor rich is a dependency, and one line of arithmetic does not justify one.
On a terminal the line is redrawn in place (at most every ``redraw_s``); into a pipe or a
log file, where carriage returns make a mess, a plain line is written every ``log_every_s``.
Work is measured in bytes of input when the total is known (files), so the ETA holds for
files with records of very different sizes; the rate is records per second.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress", "human_bytes"]

_WIDTH = 24


def human_bytes(n: float) -> str:
    """``1536`` -> ``1.5 KiB``."""
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB"):
        n /= 1024
        if n < 1024:
            return f"{n:.1f} {unit}"
    return f"{n / 1024:.1f} GiB"


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    """Call it with (records so far, bytes of input done); :meth:`close` prints the summary.

    Cheap enough to call every thousand records: it only formats when a redraw is due.
    """

    def __init__(
        self,
        label: str,
        total_bytes: int | None = None,
        stream: TextIO | None = None,
        *,
        redraw_s: float = 0.25,
        log_every_s: float = 10.0,
        tty: bool | None = None,
    ) -> None:
        self.label = label
        self.total_bytes = total_bytes
        self.stream = sys.stderr if stream is None else stream
        self.tty = self.stream.isatty() if tty is None else tty
        self.every_s = redraw_s if self.tty else log_every_s
        self.started = time.monotonic()
        self._next = self.started + self.every_s
        self.records = 0
        self.done_bytes = 0
        self._drawn = False

    def __call__(self, records: int, done_bytes: int = 0) -> None:
        self.records, self.done_bytes = records, done_bytes
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self.every_s
            self._write(self.line(now))

    def line(self, now: float | None = None) -> str:
        """``label [#####.....]  42.0%  12,345 records  6,172 rec/s  ETA 0:00:03``."""
        elapsed = max(1e-9, (time.monotonic() if now is None else now) - self.started)
        rate = self.records / elapsed
        parts = [self.label]
        if self.total_bytes:
            fraction = min(1.0, self.done_bytes / self.total_bytes)
            filled = round(fraction * _WIDTH)
            parts.append(f"[{'#' * filled}{'.' * (_WIDTH - filled)}] {fraction * 100:5.1f}%")
            eta = elapsed * (1 - fraction) / fraction if fraction > 0 else None
        else:
            eta = None
        parts.append(f"{self.records:,} records")
        parts.append(f"{rate:,.0f} rec/s")
        if eta is not None and self.done_bytes < (self.total_bytes or 0):
            parts.append(f"ETA {_clock(eta)}")
        return "  ".join(parts)

    def _write(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K" + text)
            self._drawn = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> str:
        """Print and return the final line: records, time, average rate."""
        elapsed = time.monotonic() - self.started
        rate = self.records / elapsed if elapsed > 0 else 0.0
        size = f" ({human_bytes(self.total_bytes)})" if self.total_bytes else ""
        text = f"{self.label}{size}: {self.records:,} records in {elapsed:.1f}s ({rate:,.0f} rec/s)"
        if self.tty and self._drawn:
            self.stream.write("\r\x1b[2K")
        self.stream.write(text + "\n")
        self.stream.flush()
        return text
