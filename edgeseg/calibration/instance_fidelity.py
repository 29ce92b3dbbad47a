"""What a precision variant of an instance bundle costs: the change in COCO box and mask AP on held-out frames.

AP is measured by pycocotools against the frames' instance labels. A source without them is scored against
the FP32 graph's own detections (score >= 0.5) as ground truth, and the manifest says so.

--max-ap-drop's search ranks layers by detection agreement with FP32 rather than by AP: on the few frames a
per-layer probe runs, AP moves in coarse steps and most layers tie. Detection agreement is, for each FP32
detection above 0.5, the mask IoU of the variant's best-matching detection of the same class (0 when there
is none), and the same from the variant's side, averaged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.bundle import Bundle
from edgeseg.calibration.dataset import HeldOut
from edgeseg.calibration.fidelity import SENSITIVITY_FRAMES, write_panels
from edgeseg.data.coco import (
    Detection,
    as_coco_detections,
    categories_of,
    detection_agreement,
    detections_as_truth,
    evaluate_coco,
    instance_classes,
)
from edgeseg.runtime.instances import Detections, InstanceDetector, draw_instances
from edgeseg.runtime.pipeline import StageTimes

SHOWN_SCORE = 0.5  # the detections drawn: those run's default --score-threshold shows
DEFAULT_MAX_AP_DROP = 1.0  # mask AP points `--precision best` accepts losing without a --max-ap-drop


class InstanceFidelity:
    """Instance bundles: mask and box AP of each variant against FP32's, on held-out frames."""

    metric, option = "mask_ap", "--max-ap-drop"

    def __init__(self, bundle: Bundle, fp32_path: Path, held_out: HeldOut, threads: int | None,
                 max_ap_drop: float | None):  # fmt: skip
        self.bundle, self.frames, self.threads = bundle, held_out.frames, threads
        self.categories = categories_of(bundle)
        self.raw_reference = self.detect(fp32_path)
        self.reference = self.as_coco(self.raw_reference)
        if held_out.instances is not None and held_out.labels is not None:
            self.truth = "instance labels"
            pairs = zip(held_out.instances, held_out.labels)
            self.truths = [(plane, instance_classes(plane, label)) for plane, label in pairs]
        else:
            self.truth = "FP32 detections (the frames have no instance labels)"
            pairs = zip(self.reference, self.frames)
            self.truths = [detections_as_truth(found, *frame.shape[:2]) for found, frame in pairs]
        self.reference_ap = evaluate_coco(self.truths, self.reference, dict(self.categories))
        self.max_ap_drop = max_ap_drop
        self.target = None if max_ap_drop is None else self.reference_ap["mask_ap"] - max_ap_drop / 100

    def detect(self, path: Path, frames: int | None = None) -> list[Detections]:
        detector, times = InstanceDetector.for_file(self.bundle, path, self.threads), StageTimes()
        try:
            return [detector.detect(image, times) for image in self.frames[:frames]]
        finally:
            detector.close()

    def as_coco(self, answers: list[Detections]) -> list[list[Detection]]:
        return [
            as_coco_detections(a.boxes, a.scores, a.classes, a.masks, self.categories, *image.shape[:2])
            for a, image in zip(answers, self.frames)
        ]

    def value(self, path: Path) -> float:
        return float(evaluate_coco(self.truths, self.as_coco(self.detect(path)), dict(self.categories))["mask_ap"])

    def loss(self, path: Path) -> float:
        variant = self.as_coco(self.detect(path, SENSITIVITY_FRAMES))
        return 1.0 - float(np.mean([detection_agreement(a, b) for a, b in zip(self.reference, variant)]))

    def describe(self, value: float) -> str:
        reference = self.reference_ap["mask_ap"]
        return f"mask AP {value:.4f} ({100 * (value - reference):+.2f} points against FP32's {reference:.4f})"

    def report(self, path: Path, stem: str, label: str) -> dict[str, Any]:
        raw = self.detect(path)
        variant = self.as_coco(raw)
        mine = evaluate_coco(self.truths, variant, dict(self.categories))
        per_frame = np.array([detection_agreement(a, b) for a, b in zip(self.reference, variant)])
        result: dict[str, Any] = {
            "frames": len(self.frames),
            "truth": self.truth,
            "agreement": float(per_frame.mean()),
            "worst_frame_agreement": float(per_frame.min()),
        }
        for key in ("box_ap", "box_ap50", "box_ap75", "mask_ap", "mask_ap50", "mask_ap75"):
            result[key], result[f"fp32_{key}"] = mine[key], self.reference_ap[key]
            result[f"{key}_change"] = mine[key] - self.reference_ap[key]
        result["mask_ap_per_class"] = mine["mask_ap_per_class"]
        result["worst_frames"] = self.save_worst_frames(stem, label, raw, per_frame)
        return result

    def accepts(self, fidelity: dict[str, Any]) -> bool:
        allowed = DEFAULT_MAX_AP_DROP if self.max_ap_drop is None else self.max_ap_drop
        return fidelity["mask_ap_change"] >= -allowed / 100

    def bar(self) -> str:
        if self.max_ap_drop is not None:
            return f"--max-ap-drop {self.max_ap_drop:.2f} points of mask AP"
        return f"the default bar of {DEFAULT_MAX_AP_DROP:.1f} point of mask AP lost (set another with --max-ap-drop)"

    def provenance(self) -> dict[str, Any]:
        return {"truth": self.truth, "fp32_box_ap": self.reference_ap["box_ap"],
                "fp32_mask_ap": self.reference_ap["mask_ap"]}  # fmt: skip

    def save_worst_frames(self, stem: str, label: str, variant: list[Detections], per_frame: np.ndarray,
                          count: int = 2) -> list[str]:  # fmt: skip
        """Side by side, where the variant agrees least with FP32: the frame drawn with FP32's detections | the
        variant's."""
        names = [c.name for c in self.bundle.classes]
        written = []
        for rank, index in enumerate(np.argsort(per_frame)[:count]):
            panels = [(draw_instances(self.frames[index], found, names, threshold=SHOWN_SCORE)[0], caption)
                      for found, caption in ((self.raw_reference[index], "FP32"), (variant[index], label))]  # fmt: skip
            written.append(write_panels(self.bundle, f"{stem}-worst{rank + 1}.png", panels))
        return written
