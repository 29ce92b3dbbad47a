"""The baseline row: what a user writes without edgeseg (PyTorch eager float32 and a plain OpenCV overlay loop).

It is measured as one more row: its model call joins the rows' interleaved engine timing, and its loop joins their
rounds, so a busy moment of a shared machine falls on it and on them alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from edgeseg.bundle import Bundle
from edgeseg.errors import EdgesegError

BASELINE_KEY = ("pytorch", "fp32")
BASELINE_NAME = "pytorch eager fp32 (baseline)"


class Baseline:
    """The bundle's PyTorch model in eager mode, with the loop a user writes around it."""

    def __init__(self, bundle: Bundle, model: Any):
        import torch

        self.torch, self.model = torch, model
        self.artifact = f"{bundle.manifest['model']['name']} (torch {torch.__version__})"
        self.height, self.width = bundle.input.size
        self.mean = np.asarray(bundle.input.mean, np.float32)
        self.std = np.asarray(bundle.input.std, np.float32)
        self.palette = np.array([c.color[::-1] for c in bundle.classes], np.uint8)
        from edgeseg.export.outputs import threshold_logit

        self.threshold_logit = threshold_logit(bundle.manifest["model"])  # a binary model's --threshold, as exported

    @classmethod
    def of(cls, bundle: Bundle) -> tuple[Baseline | None, str]:
        """The baseline, or None and why there is none (no torch, no weights, a function that initialises randomly)."""
        from edgeseg.export.rebuild import rebuild_model, why_not_rebuildable

        reason = why_not_rebuildable(bundle)
        if reason:
            return None, reason
        try:
            return cls(bundle, rebuild_model(bundle)), ""
        except EdgesegError as exc:
            return None, str(exc)

    def to_tensor(self, frame: np.ndarray) -> Any:
        resized = cv2.resize(frame, (self.width, self.height))
        rgb = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        return self.torch.from_numpy(((rgb - self.mean) / self.std).transpose(2, 0, 1)[None].copy())

    def infer_call(self, frame: np.ndarray) -> Callable[[], Any]:
        """The model on one prepared frame: the engine-only figure of this row."""
        example = self.to_tensor(frame)

        def call() -> Any:
            with self.torch.no_grad():
                return self.model(example)

        return call

    def segment(self, frame: np.ndarray) -> np.ndarray:
        from edgeseg.export.wrapper import select_logits

        with self.torch.no_grad():
            logits = select_logits(self.model(self.to_tensor(frame)), self.threshold_logit)
            return logits.argmax(1)[0].numpy().astype(np.uint8)

    def loop_fps(self, timing_source: str, frames: int) -> float:
        """The loop a user writes: read a frame, run the model, colour the mask at frame size, blend."""
        capture = cv2.VideoCapture(timing_source)
        count = 0
        start = time.perf_counter()
        try:
            while count < frames:
                ok, frame = capture.read()
                if not ok:
                    break
                mask = cv2.resize(self.segment(frame), frame.shape[1::-1], interpolation=cv2.INTER_NEAREST)
                cv2.addWeighted(frame, 0.5, self.palette[mask], 0.5, 0.0)
                count += 1
        finally:
            capture.release()
        if count == 0:
            raise EdgesegError(f"the baseline loop read no frame of {timing_source}")
        return count / (time.perf_counter() - start)
