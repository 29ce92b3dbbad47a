"""`edgeseg bench` on an instance bundle: detections scored by agreement with the FP32 row's and COCO box and mask AP
where the frames carry instance labels; the drawing of 30 instances at the source resolution and at 1080p against one
cv2.addWeighted; the baseline is the detector in PyTorch eager (baseline.py).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from edgeseg.bench.baseline import GraphBaseline, rebuilt_model
from edgeseg.bench.kind import BenchKind
from edgeseg.bench.rows import DEFAULT_SOURCE
from edgeseg.bundle import Bundle
from edgeseg.data.coco import (
    as_coco_detections,
    categories_of,
    detection_agreement,
    evaluate_coco,
    instance_classes,
)
from edgeseg.runtime.instances import Detections, draw_instances
from edgeseg.timing import timed

OVERLAY_INSTANCES = 30


class InstanceKind(BenchKind):
    name = "instances"
    default_source = DEFAULT_SOURCE + "&instances=1"

    def __init__(self, bundle: Bundle, frames: list[Any], label_names: list[str] | None):
        super().__init__(bundle, frames, label_names)
        self.categories = categories_of(bundle)
        self.truths = None
        if all(f.instances is not None and f.label is not None for f in frames):
            self.truths = [(f.instances, instance_classes(f.instances, f.label)) for f in frames]

    def accuracy(self, answers: list[Any]) -> dict[str, Any]:
        found = [as_coco_detections(a.boxes, a.scores, a.classes, a.masks, self.categories, *image.shape[:2])
                 for a, image in zip(answers, self.images)]  # fmt: skip
        return super().accuracy(found)

    def score(self, found: list[Any], reference: list[Any]) -> dict[str, Any]:
        """Detection agreement with the FP32 row; COCO box and mask AP when the frames carry instance labels."""
        result: dict[str, Any] = {"agreement": float(np.mean([detection_agreement(a, b)
                                                               for a, b in zip(reference, found)]))}  # fmt: skip
        if self.truths is not None:
            figures = evaluate_coco(self.truths, found, dict(self.categories))
            result.update({key: figures[key] for key in ("box_ap", "box_ap50", "mask_ap", "mask_ap50")})
        return result

    def overlay_costs(self, frame: np.ndarray) -> list[dict[str, Any]]:
        return instance_overlay_costs(self.bundle, frame)

    def baseline(self) -> tuple[Any, str]:
        return GraphBaseline.of(self.bundle, torch_graph)


def torch_graph(bundle: Bundle) -> Any:
    """The detector in PyTorch as export wrapped it: a uint8 frame in, the five outputs out."""
    from edgeseg.export.instances import instance_graph

    size, detections = tuple(bundle.input.size), bundle.manifest["instances"]["max_detections"]
    model = rebuilt_model(bundle, len(bundle.classes), image_size=size, max_detections=detections)
    return instance_graph(model, bundle.input.mean, bundle.input.std)


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
