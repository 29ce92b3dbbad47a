"""`edgeseg bench` on a semantic bundle: class maps scored by agreement with FP32's and mIoU against the frames'
labels (calibrate's class-set rule), and the overlay's cost, point and linear, at the source resolution and at 1080p."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from edgeseg.bench.baseline import Baseline
from edgeseg.bench.kind import BenchKind
from edgeseg.bundle import Bundle
from edgeseg.metrics import confusion_matrix, scores
from edgeseg.runtime.overlay import Overlay
from edgeseg.timing import timed


class SemanticKind(BenchKind):
    def __init__(self, bundle: Bundle, frames: list[Any], label_names: list[str] | None):
        super().__init__(bundle, frames, label_names)
        self.labels = self._labels(frames, label_names)

    def _labels(self, frames: list[Any], names: list[str] | None) -> list[np.ndarray]:
        """The frames' labels in the model's class ids, or none (and why, in `note`): mIoU is scored by calibrate's
        class-set rule (labels_as_model_classes), never of one class set against another."""
        from edgeseg.calibration.fidelity import labels_as_model_classes

        labels = [frame.label for frame in frames if frame.label is not None]
        if not labels or len(labels) != len(frames):
            return []
        comparable = labels_as_model_classes(labels, names, [c.name for c in self.bundle.classes])
        if isinstance(comparable, str):
            self.note = f"mIoU not measured: {comparable}"
            return []
        return list(comparable)

    def score(self, answers: list[Any], reference: list[Any]) -> dict[str, Any]:
        maps = [answer.class_map for answer in answers]  # at model resolution, as the graph answers them
        result: dict[str, Any] = {
            "agreement": float(np.mean([(a == b.class_map).mean() for a, b in zip(maps, reference)]))
        }
        if self.labels:
            classes = len(self.bundle.classes)
            confusion = sum(
                confusion_matrix(cv2.resize(m, label.shape[::-1], interpolation=cv2.INTER_NEAREST), label, classes)
                for m, label in zip(maps, self.labels)
            )
            result["miou"] = scores(confusion)["miou"]
        return result

    def overlay_costs(self, frame: np.ndarray) -> list[dict[str, Any]]:
        return overlay_costs(self.bundle, frame)

    def baseline(self) -> tuple[Any, str]:
        return Baseline.of(self.bundle)


def overlay_costs(bundle: Bundle, frame: np.ndarray, runs: int = 50) -> list[dict[str, Any]]:
    """Overlay time at the source resolution and at 1080p, point and linear, against one cv2.addWeighted."""
    height, width = bundle.input.size
    class_map = np.random.default_rng(0).integers(0, len(bundle.classes), (height, width), dtype=np.uint8)
    rows = []
    for label, size in (("source", frame.shape[:2]), ("1080p", (1080, 1920))):
        image = cv2.resize(frame, size[::-1])
        blend = lambda image=image: cv2.addWeighted(image, 0.5, image, 0.5, 0.0)  # noqa: E731 - timed() calls it
        reference = float(np.median(timed(blend, runs)) * 1000)
        for mode in ("point", "linear"):
            overlay = Overlay(bundle.classes, filter_mode=mode)
            draw = lambda overlay=overlay, image=image: overlay.render(image, class_map)  # noqa: E731 - timed() calls it
            cost = float(np.median(timed(draw, runs)) * 1000)
            rows.append(
                {
                    "resolution": f"{size[1]}x{size[0]}",
                    "at": label,
                    "filter": mode,
                    "overlay_ms": cost,
                    "addweighted_ms": reference,
                    "ratio": cost / reference,
                }
            )
    return rows
