"""The baseline row: what a user writes without edgeseg (PyTorch eager float32 and a plain OpenCV overlay loop)."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeseg.bench.rows import BenchOptions, Row, with_fps
from edgeseg.bundle import Bundle
from edgeseg.timing import timed


def baseline_row(
    bundle: Bundle,
    options: BenchOptions,
    frames: list[np.ndarray],
    timing_source: str,
    accuracy_of: Callable[[list[np.ndarray]], dict[str, Any]],
) -> tuple[Row | None, str]:
    """What a user writes without edgeseg: PyTorch eager float32 and a plain OpenCV overlay loop."""
    model_info = bundle.manifest["model"]
    if importlib.util.find_spec("torch") is None:
        return None, "torch is not installed (pip install 'edgeseg[export]')"
    if model_info.get("source") not in ("zoo", "module"):
        return None, "the bundle was imported from ONNX: there is no PyTorch model to compare with"
    weights = (model_info.get("weights") or {}).get("path")
    if model_info.get("source") == "zoo" and not weights:
        return None, "the bundle was exported without weights: PyTorch would build other random weights"
    if weights and not Path(weights).is_file():
        return None, f"the weights the bundle was exported from ({weights}) are not here"
    import torch

    from edgeseg.export import ExportOptions
    from edgeseg.export.torch_export import build, with_defaults
    from edgeseg.export.wrapper import select_logits

    export_options = ExportOptions(
        size=tuple(bundle.input.size),
        classes=bundle.classes,
        weights=Path(weights) if weights else None,
        model_options=model_info.get("options") or {},
        progress=False,
    )
    model, _, _ = build(model_info["name"], with_defaults(model_info["name"], export_options))
    if model_info.get("source") == "module" and not weights:
        # The function is all the bundle remembers: if it initialises randomly, a rebuild is another model.
        again, _, _ = build(model_info["name"], with_defaults(model_info["name"], export_options))
        if not same_parameters(model, again):
            return None, (
                f"{model_info['name']} builds different weights at each call (random initialisation): export with "
                "--weights so the baseline runs the model the bundle holds"
            )
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


def same_parameters(first: Any, second: Any) -> bool:
    """Whether two builds of a torch module hold the same weights and buffers."""
    import torch

    a, b = first.state_dict(), second.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)
