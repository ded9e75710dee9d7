"""A one-line text progress bar on stderr, for long work: training epochs, OCR batches, sweeps.

``fastnn.train.ProgressBar`` is the same class (its older home).
"""

from __future__ import annotations

import math
import sys
import time

__all__ = ["ProgressBar"]


class ProgressBar:
    """A one-line text progress bar on stderr (no dependency), with a live time estimate.

    On a terminal the line is redrawn in place at every update (within an epoch too).  Elsewhere (a log
    file, a pipe, CI) plain lines are written at a modest rate: the first update, then at most one line per
    ``every`` seconds and per tenth of the work, and the last; with ``each_unit`` also one at the end of
    every unit (every epoch: for epochs long enough that a line each is no flood).
    """

    def __init__(self, total: int, label: str = "", stream=None, width: int = 24, every: float = 5.0,
                 each_unit: bool = False):
        self.total = max(int(total), 1)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.every = every
        self.each_unit = bool(each_unit)
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()
        self.last_line = None  # (time, fraction) of the last plain line
        self.finished = False

    def update(self, done: float, info: str = "") -> None:
        """Show ``done`` units of ``total`` (a float: 2.5 is half-way through the third epoch)."""
        if self.finished:
            return
        frac = min(done / self.total, 1.0)
        self.finished = frac >= 1
        filled = int(round(frac * self.width))
        now = time.perf_counter()
        elapsed = now - self.start
        eta = elapsed / frac - elapsed if frac > 0 else 0.0
        current = min(max(math.ceil(done), 1), self.total)  # the epoch under way, or just finished
        line = (f"{self.label} {current}/{self.total} [{'#' * filled}{'.' * (self.width - filled)}] "
                f"{elapsed:.1f}s<{eta:.1f}s {info}")
        if self.tty:
            self.stream.write("\r" + line + "\033[K")
            if frac >= 1:
                self.stream.write("\n")
        elif (self.last_line is None or frac >= 1
              or (self.each_unit and float(done).is_integer() and frac > self.last_line[1])
              or (now - self.last_line[0] >= self.every and frac - self.last_line[1] >= 0.1)):
            self.stream.write(line + "\n")
            self.last_line = (now, frac)
        else:
            return
        self.stream.flush()
