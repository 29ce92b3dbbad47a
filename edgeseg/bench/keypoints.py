"""`edgeseg bench` on a keypoint bundle: each backend x precision, engine-only and end-to-end, with PCK.

The rows are edgeseg.bench.models' (the semantic bench's shape). The overlay stage draws the skeleton and the
points; with `--also B2` it first blends the second bundle's segmentation, whose inference is a stage of its own
("infer also"), and end-to-end is `edgeseg run KEYPOINTS --also B2`. Accuracy is peak agreement with the FP32
row (its confident peaks reproduced within half a heatmap cell) and PCK@0.05 / @0.1 and mean error where the
frames carry keypoint labels. Plus the drawing at the source resolution and at 1080p, against one
cv2.addWeighted.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from edgeseg.bench.models import ModelBench
from edgeseg.bench.rows import BenchOptions, Row
from edgeseg.bundle import Bundle
from edgeseg.metrics import keypoint_scores, peak_shifts
from edgeseg.progress import Progress
from edgeseg.runtime.keypoints import (
    KeypointDetector,
    KeypointSpec,
    Segmentation,
    draw_keypoints,
)
from edgeseg.runtime.pipeline import StageTimes
from edgeseg.runtime.run import RunOptions, run
from edgeseg.runtime.tensors import resize_frame
from edgeseg.timing import timed


class KeypointBench(ModelBench):
    detector_class = KeypointDetector

    def __init__(self, bundle: Bundle, options: BenchOptions, frames: list[Any], timing_source: str):
        super().__init__(bundle, options, frames, timing_source)
        self.spec = KeypointSpec.of(bundle)
        labelled = frames[: options.accuracy_frames]
        self.truths = [f.keypoints for f in labelled] if all(f.keypoints is not None for f in labelled) else None
        self.reference: list[np.ndarray] | None = None
        self.tolerance = self.spec.half_cell(self.images[0].shape[0], bundle.input.size[0])
        self.segmentation: Segmentation | None = None

    def measure(self, plan: list[tuple[str, str]], progress: Progress) -> list[Row]:
        if self.options.also is not None:
            also = Bundle.load(self.options.also)  # run_bench has checked it against this bundle (check_also)
            self.segmentation = Segmentation(also, RunOptions(bundle=also.root, inputs=[], outputs=[],
                                                              backend=self.options.backend,
                                                              threads=self.options.threads))  # fmt: skip
        try:
            return super().measure(plan, progress)
        finally:
            if self.segmentation is not None:
                self.segmentation.close()

    def analyse(self, detector: KeypointDetector, image: np.ndarray, times: StageTimes) -> Any:
        peaks = detector.detect(image, times)
        if self.segmentation is None:
            return peaks, None
        return peaks, self.segmentation.class_map(resize_frame(image, self.bundle.input.size), times)

    def draw(self, image: np.ndarray, found: Any) -> np.ndarray:
        peaks, segmentation = found
        canvas = image.copy() if segmentation is None else self.segmentation.overlay.render(image, *segmentation)
        return draw_keypoints(canvas, peaks, self.spec)

    def run_loop(self, options: RunOptions) -> Any:
        return run(options)

    def extra_stages(self, image: np.ndarray) -> dict[str, float]:
        if self.segmentation is None:
            return {}
        resized = resize_frame(image, self.bundle.input.size)
        samples = timed(lambda: self.segmentation.class_map(resized, StageTimes()), min(len(self.images), 50))
        return {"infer also": float(np.mean(samples) * 1000)}

    def accuracy(self, detector: KeypointDetector) -> dict[str, Any]:
        """Peak agreement with the FP32 row; PCK and mean error when the frames carry keypoint labels."""
        times = StageTimes()
        found = [detector.detect(image, times) for image in self.images[: self.options.accuracy_frames]]
        if self.reference is None:
            self.reference = found  # the first row measured is FP32
        shifts = np.concatenate([peak_shifts(a, b, self.spec.min_confidence) for a, b in zip(self.reference, found)])
        result: dict[str, Any] = {"agreement": float(np.mean(shifts <= self.tolerance)) if len(shifts) else 1.0}
        if self.truths is not None:
            spec = self.spec
            figures = keypoint_scores(found, self.truths, spec.names, spec.min_confidence, self.images[0].shape[:2])
            result.update({key: figures[key] for key in ("pck05", "pck10", "mean_error_px")})
        return result


def keypoint_overlay_costs(bundle: Bundle, frame: np.ndarray, runs: int = 30) -> list[dict[str, Any]]:
    """Two graspers' points and skeletons drawn at the source resolution and at 1080p, against one cv2.addWeighted."""
    spec = KeypointSpec.of(bundle)
    rows = []
    for label, (height, width) in (("source", frame.shape[:2]), ("1080p", (1080, 1920))):
        image = cv2.resize(frame, (width, height))
        peaks = scattered_peaks(spec, height, width)
        blend = lambda image=image: cv2.addWeighted(image, 0.5, image, 0.5, 0.0)  # noqa: E731 - timed() calls it
        reference = float(np.median(timed(blend, runs)) * 1000)
        draw = lambda image=image, peaks=peaks: draw_keypoints(image.copy(), peaks, spec)  # noqa: E731
        cost = float(np.median(timed(draw, runs)) * 1000)
        rows.append({"resolution": f"{width}x{height}", "at": label,
                     "filter": f"{int((peaks[..., 2] >= spec.min_confidence).sum())} points",
                     "overlay_ms": cost, "addweighted_ms": reference, "ratio": cost / reference})  # fmt: skip
    return rows


def scattered_peaks(spec: KeypointSpec, height: int, width: int) -> np.ndarray:
    """Every keypoint found at every peak, spread over the frame: the most the overlay ever draws, without a model."""
    rng = np.random.default_rng(0)
    peaks = np.empty((len(spec.names), spec.peaks, 3), np.float32)
    peaks[..., 0] = rng.uniform(0, width - 1, peaks.shape[:2])
    peaks[..., 1] = rng.uniform(0, height - 1, peaks.shape[:2])
    peaks[..., 2] = 0.9
    return peaks
