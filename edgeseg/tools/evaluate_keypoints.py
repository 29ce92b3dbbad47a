"""`edgeseg eval` on a keypoint bundle: PCK at 5% and 10% of the frame's diagonal and the mean error in pixels,
over every seen point and per keypoint.

A seen point (COCO visibility 2) counts as found at a threshold when a peak of the same keypoint with at least the
bundle's min_confidence lies within it; each object's point is matched to its nearest such peak, so two graspers'
tips are scored against the two peaks the graph gives. The mean error is over the points that have a confident
peak at all (PCK counts the rest as missed). Frames are resized to the model's input and its points mapped back,
so distances are in the labels' pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.bundle import Bundle
from edgeseg.errors import EdgesegError
from edgeseg.metrics import keypoint_scores
from edgeseg.progress import Progress
from edgeseg.redact import redact
from edgeseg.runtime.keypoints import KeypointDetector
from edgeseg.runtime.pipeline import StageTimes
from edgeseg.runtime.sources import open_source
from edgeseg.tables import format_table


def labelled_keypoints(data: str, names: tuple[str, ...], frames: int | None) -> tuple[list[np.ndarray], list[Any]]:
    """The frames of a source with keypoint labels, and their labels, checked against the model's keypoints."""
    source = open_source(data)
    images, truths = [], []
    try:
        schema = source.keypoint_schema
        if schema is None:
            raise EdgesegError(f"'{redact(data)}' has no keypoint labels: use synthetic://medical?...&keypoints=1 or a "
                               "labelled folder with keypoints.json")  # fmt: skip
        if tuple(schema.names) != tuple(names):
            raise EdgesegError(f"'{redact(data)}' labels keypoints {', '.join(schema.names)} but the bundle finds "
                               f"{', '.join(names)}; evaluate on data labelled for this model")  # fmt: skip
        for frame in source:
            if frames is not None and len(images) >= frames:
                break
            images.append(frame.image)
            truths.append(frame.keypoints if frame.keypoints is not None else np.zeros((0, len(names), 3)))
    finally:
        source.close()
    if not images:
        raise EdgesegError(f"'{redact(data)}' gave no frames to evaluate")
    return images, truths


def score_keypoints(detector: KeypointDetector, images: list[np.ndarray], truths: list[np.ndarray],
                    progress: bool = False) -> dict[str, Any]:  # fmt: skip
    """PCK and mean error of one model's peaks on labelled frames (every frame of one size)."""
    spec, times = detector.spec, StageTimes()
    answers = []
    bar = Progress(len(images), "eval", enabled=progress)
    for image in images:
        answers.append(detector.detect(image, times))
        bar.advance()
    figures = keypoint_scores(answers, truths, spec.names, spec.min_confidence, images[0].shape[:2])
    return {**figures, "min_confidence": spec.min_confidence}


def evaluate_keypoints(bundle_dir: Path, data: str, backend: str = "auto", precision: str = "best",
                       frames: int | None = None, progress: bool = True) -> dict[str, Any]:  # fmt: skip
    bundle = Bundle.load(bundle_dir)
    detector = KeypointDetector.for_bundle(bundle, backend, precision)
    try:
        images, truths = labelled_keypoints(data, detector.spec.names, frames)
        figures = score_keypoints(detector, images, truths, progress)
    finally:
        detector.close()
    artifact = detector.artifact
    return {"frames": len(images), "data": redact(data), "precision": artifact.precision, "artifact": artifact.path,
            **figures}  # fmt: skip


def keypoint_table(result: dict[str, Any]) -> str:
    def cell(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    def row(name: str, figures: dict[str, Any]) -> list[str]:
        return [name, str(figures["points"]), cell(figures["pck05"], ".3f"), cell(figures["pck10"], ".3f"),
                cell(figures["mean_error_px"], ".2f")]  # fmt: skip

    rows = [row(name, figures) for name, figures in result["per_keypoint"].items()] + [row("all", result)]
    return "\n".join([
        f"{result['artifact']} ({result['precision']}) on {result['frames']} frames of {result['data']}; PCK at 5% and "
        f"10% of the {result['diagonal_px']:.0f}-pixel diagonal, peaks from confidence {result['min_confidence']}",
        format_table(["keypoint", "seen", "PCK@0.05", "PCK@0.1", "mean error px"], rows),
    ])  # fmt: skip
