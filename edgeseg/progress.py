"""A small progress bar on stderr for long work (export, calibrate, build, bench, training)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """`Progress(total, label)`; `begin(note)` names a step as it starts, `advance(note)` marks it done. On a
    terminal the bar redraws in place and names the step in progress; in a log each finished step is one line."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None, enabled: bool = True):
        self.total, self.label, self.done = max(total, 1), label, 0
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.started = time.perf_counter()
        self.last_draw = 0.0
        self.last_line = ""  # a log never gets the same step twice
        self.finished = False  # the last line is drawn once

    def advance(self, note: str = "", steps: int = 1) -> None:
        self.done = min(self.total, self.done + steps)
        if self.enabled and not self.finished and self._due(note):
            self._draw(note)
            self.finished = self.done >= self.total

    def begin(self, note: str) -> None:
        """The step now under way: a terminal shows it at once, so a long step is not shown as the one before it."""
        if self.enabled and self.tty and self.done < self.total:
            self._draw(f"{note}...")

    def extend(self, steps: int) -> None:
        """More work found on the way (calibrate's per-layer search): the bar's total grows instead of overflowing."""
        self.total += steps
        self.finished = self.finished and self.done >= self.total

    def _due(self, note: str) -> bool:
        """A terminal redraws at most 10 times a second; a log gets a line per noted step."""
        if self.tty:
            return self.done >= self.total or time.perf_counter() - self.last_draw >= 0.1
        return bool(note) or self.done >= self.total

    def _draw(self, note: str) -> None:
        now = time.perf_counter()
        self.last_draw = now
        width = 24
        filled = int(width * self.done / self.total)
        bar = "#" * filled + "-" * (width - filled)
        line = f"{self.label} [{bar}] {self.done}/{self.total} {now - self.started:5.1f}s {note}"
        if self.tty:
            self.stream.write("\r" + line[:120].ljust(120) + ("\n" if self.done >= self.total else ""))
        else:
            step = f"{self.done}/{self.total} {note}"
            if step == self.last_line:
                return
            self.last_line = step
            self.stream.write(line + "\n")
        self.stream.flush()
