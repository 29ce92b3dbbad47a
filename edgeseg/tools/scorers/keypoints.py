"""Keypoint bundles: PCK at 5% and 10% of the frame's diagonal and the mean error in pixels, over every seen point
and per keypoint.

A seen point (COCO visibility 2) counts as found at a threshold when a peak of the same keypoint with at least the
bundle's min_confidence lies within it; each object's point is matched to its nearest such peak, so two graspers'
tips are scored against the two peaks the graph gives. The mean error is over the points that have a confident
peak at all (PCK counts the rest as missed). Frames are resized to the model's input and its points mapped back,
so distances are in the labels' pixels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from edgeseg.bundle import Bundle
from edgeseg.errors import EdgesegError
from edgeseg.metrics import keypoint_scores
from edgeseg.progress import Progress
from edgeseg.redact import redact
from edgeseg.tables import format_table, printable
from edgeseg.tools.figures import figure, points
from edgeseg.tools.scorers.base import FiguresDict

if TYPE_CHECKING:
    from edgeseg.runtime.keypoints import KeypointDetector

# The runtime is imported by evaluate only: info uses this scorer too, and stays light.


class KeypointFigures(FiguresDict):
    def report(self) -> str:
        return keypoint_table(self)


def labelled_keypoints(data: str, names: tuple[str, ...], frames: int | None) -> tuple[list[np.ndarray], list[Any]]:
    """The frames of a source with keypoint labels, and their labels, checked against the model's keypoints."""
    from edgeseg.runtime.sources import open_source

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
    from edgeseg.runtime.pipeline import StageTimes

    spec, times = detector.spec, StageTimes()
    answers = []
    bar = Progress(len(images), "eval", enabled=progress)
    for image in images:
        answers.append(detector.detect(image, times))
        bar.advance()
    figures = keypoint_scores(answers, truths, spec.names, spec.min_confidence, images[0].shape[:2])
    return {**figures, "min_confidence": spec.min_confidence}


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


class KeypointScorer:
    """Peaks of heatmaps, one set per keypoint (decoded in the graph or by the runtime)."""

    kinds = ("keypoints",)
    agreement_columns = ("peak agreement", "worst frame")
    accuracy_columns = ("PCK@0.05", "PCK change", "mean error px", "error change px")
    parity_key = "peaks"

    def evaluate(self, bundle: Bundle, data: str, backend: str, precision: str, frames: int | None,
                 progress: bool) -> KeypointFigures:  # fmt: skip
        from edgeseg.runtime.keypoints import KeypointDetector

        detector = KeypointDetector.for_bundle(bundle, backend, precision)
        try:
            images, truths = labelled_keypoints(data, detector.spec.names, frames)
            figures = score_keypoints(detector, images, truths, progress)
        finally:
            detector.close()
        artifact = detector.artifact
        return KeypointFigures(frames=len(images), data=redact(data), precision=artifact.precision,
                               artifact=artifact.path, **figures)  # fmt: skip

    def output_line(self, bundle: Bundle) -> str:
        contract, details = bundle.output, bundle.manifest["keypoints"]
        if contract.fused_argmax:
            shape = f"(x, y, confidence) of the {details['peaks']} highest peaks per keypoint, decoded in the graph"
        else:
            shape = f"heatmaps at 1/{details['stride']}, decoded by the runtime"
        return f"output   {contract.name}: {', '.join(printable(n) for n in details['names'])}; {shape}"

    def fidelity_cells(self, fidelity: dict[str, Any]) -> list[str]:
        return [figure(fidelity.get("pck05"), ".4f"), points(fidelity.get("pck05_change")),
                figure(fidelity.get("mean_error_px"), ".2f"),
                figure(fidelity.get("mean_error_change_px"), "+.2f")]  # fmt: skip

    def calibration_figures(self, calibration: dict[str, Any]) -> str:
        if "fp32_pck05" not in calibration:
            return ""
        return (
            f"; FP32 PCK@0.05 {figure(calibration['fp32_pck05'], '.4f')}, mean error "
            f"{figure(calibration.get('fp32_mean_error_px'), '.2f')} px against {calibration.get('truth', '?')}"
        )

    def parity_figures(self, parity: dict[str, Any]) -> str:
        return (
            f"{figure(parity.get('peaks'), 'd')} confident peaks, {figure(parity.get('unmatched_peaks'), 'd')} "
            f"without a twin within 2 px, max |diff| {figure(parity.get('max_abs_diff'), '.2e')}"
        )
