"""Timing helpers shared by calibrate (choosing the CPU INT8 form) and bench (the report's rows)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def timed(function: Callable[[], Any], runs: int) -> list[float]:
    """Seconds taken by each of `runs` calls."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return samples


def interleaved_samples(
    calls: dict[Any, Callable[[], Any]], warmup: int, runs: int, rounds: int = 5
) -> dict[Any, list[float]]:
    """`runs` timings of each call, taken in `rounds` blocks that alternate between the calls, so a
    shared machine's slow spell falls on all of them alike: the ratios between them are the result."""
    for call in calls.values():
        timed(call, warmup)
    samples: dict[Any, list[float]] = {key: [] for key in calls}
    per_round = -(-runs // rounds)
    for _ in range(rounds):
        for key, call in calls.items():
            samples[key] += timed(call, min(per_round, runs - len(samples[key])))
    return samples
