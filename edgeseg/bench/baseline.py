"""The baseline row: what a user writes without edgeseg (PyTorch eager float32 and a plain OpenCV overlay loop)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from edgeseg.bench.rows import BenchOptions, Row, with_fps
from edgeseg.bundle import Bundle
from edgeseg.errors import EdgesegError
from edgeseg.timing import timed


def baseline_row(
    bundle: Bundle,
    options: BenchOptions,
    frames: list[np.ndarray],
    timing_source: str,
    accuracy_of: Callable[[list[np.ndarray]], dict[str, Any]],
) -> tuple[Row | None, str]:
    """What a user writes without edgeseg: PyTorch eager float32 and a plain OpenCV overlay loop."""
    from edgeseg.export.rebuild import rebuild_model, why_not_rebuildable

    model_info = bundle.manifest["model"]
    reason = why_not_rebuildable(bundle)
    if reason:
        return None, reason
    try:
        model = rebuild_model(bundle)
    except EdgesegError as exc:  # a function that initialises randomly: no row, and why
        return None, str(exc)
    import torch

    from edgeseg.export.wrapper import select_logits

    height, width = bundle.input.size
    mean, std = np.asarray(bundle.input.mean, np.float32), np.asarray(bundle.input.std, np.float32)
    palette = np.array([c.color[::-1] for c in bundle.classes], np.uint8)

    def to_tensor(frame: np.ndarray) -> Any:
        rgb = cv2.cvtColor(cv2.resize(frame, (width, height)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        return torch.from_numpy(((rgb - mean) / std).transpose(2, 0, 1)[None].copy())

    def segment(frame: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return select_logits(model(to_tensor(frame))).argmax(1)[0].numpy().astype(np.uint8)

    row = Row("pytorch eager fp32 (baseline)", "pytorch", "fp32", f"{model_info['name']} (torch {torch.__version__})")
    example = to_tensor(frames[0])
    with torch.no_grad():
        timed(lambda: model(example), options.warmup)
        samples = timed(lambda: model(example), options.frames)
    row.engine, row.engine_samples_ms = with_fps(samples), [s * 1000 for s in samples]
    # The loop a user writes: read a frame, run the model, colour the mask at frame size, blend.
    capture = cv2.VideoCapture(timing_source)
    count = 0
    start = time.perf_counter()
    while count < options.frames:
        ok, frame = capture.read()
        if not ok:
            break
        mask = cv2.resize(segment(frame), frame.shape[1::-1], interpolation=cv2.INTER_NEAREST)
        cv2.addWeighted(frame, 0.5, palette[mask], 0.5, 0.0)
        count += 1
    row.sequential_fps = count / (time.perf_counter() - start)
    capture.release()
    row.end_to_end = {"fps": row.sequential_fps, "frames": count, "stages": {}}
    row.accuracy = accuracy_of([segment(image) for image in frames[: options.accuracy_frames]])
    return row, ""
