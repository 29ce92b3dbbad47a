"""What a bench run measures: the (backend, precision) rows it plans, the frames it reads, and the plain loop it
times."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeseg.bench.rows import BenchOptions
from edgeseg.bundle import Bundle
from edgeseg.errors import EdgesegError
from edgeseg.redact import redact
from edgeseg.runtime.backends import resolve_backend, usable_backends
from edgeseg.runtime.sources import open_source
from edgeseg.timing import timed


def check_options(options: BenchOptions, bundle: Bundle) -> list[tuple[str, str]]:
    """The (backend, precision) rows to run; bad flags are one line each (their ranges are checked when parsed)."""
    if options.frames < options.warmup:
        raise EdgesegError(
            f"--frames {options.frames} is fewer than --warmup {options.warmup}; measure more frames than you discard"
        )
    if options.backend.startswith("triton://"):
        # The server runs whatever artifact it was given; the row is labelled with what it answers for.
        return [(options.backend, "fp32")]
    # auto: every backend usable here, ONNX Runtime first: its FP32 row is the reference for agreement.
    backends = usable_backends(bundle) if options.backend == "auto" else [resolve_backend(options.backend, bundle)]
    plan = []
    for backend in backends:
        kind = "engine" if backend == "tensorrt" else "onnx"
        have = sorted({a.precision for a in bundle.artifacts if a.kind == kind}, key=["fp32", "fp16", "int8"].index)
        wanted = (
            have if options.precisions == "all" else [p.strip() for p in options.precisions.split(",") if p.strip()]
        )
        for precision in wanted:
            if precision not in ("fp32", "fp16", "int8"):
                raise EdgesegError(f"--precision {precision}: choose all or a list of fp32, fp16, int8")
            if precision not in have:
                hint = (
                    f"edgeseg build {bundle.root}"
                    if kind == "engine"
                    else f"edgeseg calibrate {bundle.root} --data URI"
                )
                raise EdgesegError(
                    f"bundle {bundle.root} has no {precision} {'engine' if kind == 'engine' else 'artifact'} (has: "
                    f"{', '.join(have) or 'none'}); run: {hint}"
                )
        plan += [(backend, precision) for precision in wanted]
    return plan


def read_bench_source(options: BenchOptions) -> tuple[list[Any], list[str] | None]:
    """The frames a bench runs on, and what their labels' ids mean where the source says (the class-set rule)."""
    source = open_source(options.source)
    try:
        frames = [f for _, f in zip(range(max(options.frames, options.accuracy_frames)), source)]
    finally:
        source.close()
    if not frames:
        raise EdgesegError(f"'{redact(options.source)}' yielded no frames")
    return frames, source.label_names


def timing_source_for(uri: str, frames: list[np.ndarray]) -> tuple[str, Any]:
    """What capture is timed on, and the scratch folder to keep while it is read (None for a real source). A
    synthetic scene is rendered once into an MPEG-4 file, so capture costs what decoding a video costs, not what
    drawing the scene costs."""
    if not uri.startswith("synthetic://"):
        return uri, None
    import tempfile

    scratch = tempfile.TemporaryDirectory(prefix="edgeseg-bench-")
    path = Path(scratch.name) / "frames.mp4"
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return str(path), scratch


def capture_samples(uri: str, count: int) -> list[float]:
    """Seconds per source.read() for `count` frames of `uri`: the capture stage on its own."""
    source = open_source(uri)
    try:
        return timed(source.read, count)
    finally:
        source.close()


def loop_fps(uri: str, limit: int, step: Callable[[np.ndarray], Any]) -> float:
    """Frames per second of a plain one-thread loop: read a frame, `step` it, for `limit` frames of `uri`."""
    source = open_source(uri)
    start = time.perf_counter()
    count = 0
    try:
        for frame in source:
            step(frame.image)
            count += 1
            if count >= limit:
                break
    finally:
        source.close()
    return count / (time.perf_counter() - start)
