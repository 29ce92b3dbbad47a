"""`edgeseg bench` on an instance bundle: each backend x precision, engine-only and end-to-end, with COCO AP.

The rows have the semantic bench's shape (so the terminal, Markdown, JSON and plot reports render them):
  engine-only   the detector graph alone on one preprocessed frame, the variants timed in interleaved rounds;
  stages alone  capture, preprocess, infer and overlay (each instance's mask drawn into its box) on their own;
  sequential    those stages one after another, as `edgeseg run` runs an instance bundle;
  end-to-end    `edgeseg run`'s own instance loop with sink none;
  accuracy      detection agreement with the FP32 row, and COCO box and mask AP when the frames have instance labels.
Plus the overlay at the source resolution and at 1080p with 30 instances, against one cv2.addWeighted.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from edgeseg.bench.models import ModelBench
from edgeseg.bench.rows import BenchOptions
from edgeseg.bundle import Bundle
from edgeseg.data.coco import (
    as_coco_detections,
    categories_of,
    detection_agreement,
    evaluate_coco,
    instance_classes,
)
from edgeseg.runtime.instances import Detections, InstanceDetector, draw_instances
from edgeseg.runtime.pipeline import StageTimes
from edgeseg.runtime.run import RunOptions, run
from edgeseg.timing import timed

OVERLAY_INSTANCES = 30


class InstanceBench(ModelBench):
    detector_class = InstanceDetector

    def __init__(self, bundle: Bundle, options: BenchOptions, frames: list[Any], timing_source: str):
        super().__init__(bundle, options, frames, timing_source)
        self.names = [c.name for c in bundle.classes]
        self.categories = categories_of(bundle)
        labelled = frames[: options.accuracy_frames]
        self.truths = None
        if all(f.instances is not None and f.label is not None for f in labelled):
            self.truths = [(f.instances, instance_classes(f.instances, f.label)) for f in labelled]
        self.reference: list[list[Any]] | None = None

    def draw(self, image: np.ndarray, found: Detections) -> Any:
        return draw_instances(image, found, self.names)

    def run_loop(self, options: RunOptions) -> Any:
        return run(options)

    def accuracy(self, detector: InstanceDetector) -> dict[str, Any]:
        """Detection agreement with the FP32 row; COCO box and mask AP when the frames carry instance labels."""
        times, found = StageTimes(), []
        for image in self.images[: self.options.accuracy_frames]:
            answer = detector.detect(image, times)
            found.append(as_coco_detections(answer.boxes, answer.scores, answer.classes, answer.masks,
                                            self.categories, *image.shape[:2]))  # fmt: skip
        if self.reference is None:
            self.reference = found  # the first row measured is FP32
        result: dict[str, Any] = {
            "agreement": float(np.mean([detection_agreement(a, b) for a, b in zip(self.reference, found)]))
        }
        if self.truths is not None:
            figures = evaluate_coco(self.truths, found, dict(self.categories))
            result.update({key: figures[key] for key in ("box_ap", "box_ap50", "mask_ap", "mask_ap50")})
        return result


def instance_overlay_costs(bundle: Bundle, frame: np.ndarray, runs: int = 30) -> list[dict[str, Any]]:
    """draw_instances with 30 instances at the source resolution and at 1080p, against one cv2.addWeighted."""
    names = [c.name for c in bundle.classes]
    rows = []
    for label, (height, width) in (("source", frame.shape[:2]), ("1080p", (1080, 1920))):
        image = cv2.resize(frame, (width, height))
        found = scattered_instances(height, width, len(names))
        blend = lambda image=image: cv2.addWeighted(image, 0.5, image, 0.5, 0.0)  # noqa: E731 - timed() calls it
        reference = float(np.median(timed(blend, runs)) * 1000)
        draw = lambda image=image, found=found: draw_instances(image, found, names)  # noqa: E731 - timed() calls it
        cost = float(np.median(timed(draw, runs)) * 1000)
        covered = float(sum((b[2] - b[0]) * (b[3] - b[1]) for b in found.boxes) / (height * width))
        rows.append({"resolution": f"{width}x{height}", "at": label, "filter": f"{OVERLAY_INSTANCES} instances",
                     "overlay_ms": cost, "addweighted_ms": reference, "ratio": cost / reference,
                     "box_share": covered})  # fmt: skip
    return rows


def scattered_instances(height: int, width: int, classes: int) -> Detections:
    """30 detections spread over the frame, sized as a busy driving scene's objects (1.5-8% of the frame's width,
    half again as tall: about a fifth of the frame in boxes), each with an elliptical mask: the overlay's work,
    without a model."""
    rng = np.random.default_rng(0)
    sizes = rng.uniform(0.015, 0.08, OVERLAY_INSTANCES) * width
    x0 = rng.uniform(0, width - sizes)
    y0 = rng.uniform(0, height - 1.5 * sizes)
    boxes = np.stack([x0, y0, x0 + sizes, y0 + 1.5 * sizes], axis=1).astype(np.float32)
    yy, xx = np.mgrid[0:28, 0:28]
    ellipse = (((xx - 13.5) / 12) ** 2 + ((yy - 13.5) / 13) ** 2 <= 1).astype(np.float32)
    masks = np.repeat(ellipse[None], OVERLAY_INSTANCES, axis=0)
    scores = np.linspace(1.0, 0.6, OVERLAY_INSTANCES, dtype=np.float32)
    return Detections(boxes, scores, np.arange(OVERLAY_INSTANCES) % classes, masks)
