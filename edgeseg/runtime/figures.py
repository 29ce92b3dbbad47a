"""What a run measures: per-stage durations from several threads, and the figures of the run and of each stream."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def percentiles_ms(samples: list[float]) -> dict[str, float]:
    values = np.asarray(samples, np.float64) * 1000.0
    return {
        "count": int(values.size),
        "mean_ms": float(values.mean()),
        "p50_ms": float(np.percentile(values, 50)),
        "p90_ms": float(np.percentile(values, 90)),
        "p99_ms": float(np.percentile(values, 99)),
        "max_ms": float(values.max()),
    }


class StageTimes:
    """Per-stage durations in seconds, appended from several threads."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        with self.lock:
            self.samples[stage].append(seconds)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as one sample of `name` (not recorded when the block raises)."""
        start = time.perf_counter()
        yield
        self.add(name, time.perf_counter() - start)

    def recent_mean(self, stage: str, count: int = 30) -> float:
        """The mean of the stage's last `count` samples, in seconds (0 before the first)."""
        with self.lock:
            values = self.samples[stage][-count:]
        return float(np.mean(values)) if values else 0.0

    def summary(self) -> dict[str, dict[str, float]]:
        with self.lock:
            return {stage: percentiles_ms(values) for stage, values in self.samples.items() if values}


@dataclass
class StreamFigures:
    name: str
    uri: str  # as shown: redacted
    frames_read: int = 0
    frames_processed: int = 0
    frames_written: int = 0
    frames_dropped: int = 0
    bad_frames: int = 0
    gaps: list[float] = field(default_factory=list)
    first_written: float = 0.0
    last_written: float = 0.0

    @property
    def fps(self) -> float:
        span = self.last_written - self.first_written
        return (self.frames_written - 1) / span if self.frames_written > 1 and span > 0 else 0.0


@dataclass
class RunSummary:
    frames_read: int = 0
    frames_processed: int = 0
    frames_written: int = 0
    frames_dropped: int = 0
    bad_frames: int = 0
    gaps: list[float] = field(default_factory=list)  # seconds a live stream was away, per loss
    seconds: float = 0.0
    interrupted: bool = False
    backend: str = ""
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    first_written: float = 0.0  # perf_counter() of the first and last frame written
    last_written: float = 0.0
    streams: list[Any] = field(default_factory=list)  # per-input figures of a run with several inputs
    mean_batch: float = 1.0  # frames per inference call

    @property
    def fps(self) -> float:
        return self.frames_written / self.seconds if self.seconds > 0 else 0.0

    @property
    def steady_fps(self) -> float:
        """Frames per second from the first frame out to the last: the rate once running, without start-up."""
        span = self.last_written - self.first_written
        return (self.frames_written - 1) / span if self.frames_written > 1 and span > 0 else self.fps
