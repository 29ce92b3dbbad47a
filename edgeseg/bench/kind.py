"""What one output kind's bench does its own way; the rest of a bench (rows, engine timing, stages, loops) is the same
for every kind (bench.py).

A kind gives the labels its default scene carries, how its answers are scored (agreement with the FP32 row, and a
score against labels where the frames carry them), what its drawing costs at the source resolution and at 1080p
against one cv2.addWeighted, and its PyTorch-eager baseline where the bundle's model can be built again.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeseg.bench.rows import DEFAULT_SOURCE
from edgeseg.bundle import Bundle


class BenchKind:
    """One kind's part of a bench; a subclass per output kind (kinds.py picks it through the runtime's head)."""

    name = "semantic"  # the report's kind: its accuracy columns follow it (report.py)
    default_source = DEFAULT_SOURCE  # what bench reads without -i: a scene with this kind's labels
    scene = "driving"  # the synthetic scene `bench --streams` renders

    def __init__(self, bundle: Bundle, frames: list[Any], label_names: list[str] | None):
        """`frames` are the accuracy frames (images and whatever labels the source gave them)."""
        self.bundle = bundle
        self.images = [frame.image for frame in frames]
        self.note = ""  # why a score against labels is not measured, where the report should say so
        self.reference: list[Any] | None = None  # the FP32 row's answers, which the others are compared with

    def accuracy(self, answers: list[Any]) -> dict[str, Any]:
        """Agreement of one row's answers (a head's `Result.answer` per accuracy frame) with the first row's (FP32),
        and the kind's score where the frames carry labels."""
        if self.reference is None:
            self.reference = answers  # the first row measured is FP32
        return self.score(answers, self.reference)

    def score(self, answers: list[Any], reference: list[Any]) -> dict[str, Any]:
        raise NotImplementedError

    def overlay_costs(self, frame: np.ndarray) -> list[dict[str, Any]]:
        raise NotImplementedError

    def baseline(self) -> tuple[Any, str]:
        """The PyTorch-eager baseline (baseline.py), or None and why there is none."""
        raise NotImplementedError
