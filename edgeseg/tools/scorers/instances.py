"""Instance bundles: COCO box and mask AP through pycocotools' own COCOeval.

pycocotools is the reference implementation of the COCO metrics (the one the COCO benchmark, Detectron2 and
mmdetection report with) and installs from PyPI as a binary wheel; AP is never computed by hand here.
Frames are resized to the model's input and its boxes scaled back, so AP is measured at label resolution.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgeseg.bundle import Bundle
from edgeseg.errors import EdgesegError
from edgeseg.progress import Progress
from edgeseg.redact import redact
from edgeseg.tables import format_table, printable
from edgeseg.tools.figures import figure, points
from edgeseg.tools.scorers.base import FiguresDict

if TYPE_CHECKING:
    from edgeseg.runtime.instances import InstanceDetector

# The runtime and pycocotools are imported by evaluate only: info uses this scorer too, and stays light.


class InstanceFigures(FiguresDict):
    def report(self) -> str:
        return instance_table(self)


def detect_labelled(bundle: Bundle, detector: InstanceDetector, data: str, frames: int | None, progress: bool
                    ) -> tuple[list[Any], list[Any]]:  # fmt: skip
    """Each labelled frame's truth (instance plane, id -> category) and the detector's COCO-form detections."""
    from edgeseg.data.coco import as_coco_detections, categories_of, instance_classes
    from edgeseg.runtime.pipeline import StageTimes
    from edgeseg.runtime.sources import open_source

    times, categories = StageTimes(), categories_of(bundle)
    source = open_source(data)
    truths, detections = [], []
    bar = Progress(frames or source.length or 0, "eval", enabled=progress and bool(frames or source.length))
    try:
        for frame in source:
            if frames is not None and len(truths) >= frames:
                break
            if frame.instances is None or frame.label is None:
                raise EdgesegError(
                    f"'{redact(data)}' has no instance labels: use synthetic://driving?...&instances=1 or a labelled "
                    "folder with instances.json (COCO)"
                )
            truths.append((frame.instances, instance_classes(frame.instances, frame.label)))
            found = detector.detect(frame.image, times)
            height, width = frame.image.shape[:2]
            detections.append(
                as_coco_detections(found.boxes, found.scores, found.classes, found.masks, categories, height, width)
            )
            bar.advance()
    finally:
        source.close()
    if not truths:
        raise EdgesegError(f"'{redact(data)}' gave no frames to evaluate")
    return truths, detections


def instance_table(result: dict[str, Any]) -> str:
    rows = [[kind, f"{result[f'{kind}_ap']:.3f}", f"{result[f'{kind}_ap50']:.3f}", f"{result[f'{kind}_ap75']:.3f}"]
            for kind in ("box", "mask")]  # fmt: skip
    per_class = [[name, *(f"{result[f'{kind}_ap_per_class'][name]:.3f}"
                          if result[f"{kind}_ap_per_class"].get(name) is not None else "-" for kind in ("box", "mask"))]
                 for name in result["box_ap_per_class"]]  # fmt: skip
    return "\n".join([
        f"{result['artifact']} ({result['precision']}) on {result['frames']} frames of {result['data']}",
        format_table(["", "AP", "AP50", "AP75"], rows),
        format_table(["class", "box AP", "mask AP"], per_class),
    ])  # fmt: skip


class InstanceScorer:
    """Boxes, classes and masks per object from an in-graph detector (Mask R-CNN)."""

    kinds = ("instances",)
    agreement_columns = ("detection agreement", "worst frame")
    accuracy_columns = ("box AP", "mask AP", "mask AP change")
    parity_key = "mean_mask_iou"

    def evaluate(self, bundle: Bundle, data: str, backend: str, precision: str, frames: int | None,
                 progress: bool) -> InstanceFigures:  # fmt: skip
        from edgeseg.data.coco import categories_of, evaluate_coco
        from edgeseg.runtime.instances import InstanceDetector

        detector = InstanceDetector.for_bundle(bundle, backend, precision)
        try:
            truths, detections = detect_labelled(bundle, detector, data, frames, progress)
        finally:
            detector.close()
        figures = evaluate_coco(truths, detections, dict(categories_of(bundle)))
        artifact = detector.artifact
        return InstanceFigures(frames=len(truths), data=redact(data), precision=artifact.precision,
                               artifact=artifact.path, **figures)  # fmt: skip

    def output_line(self, bundle: Bundle) -> str:
        details = bundle.manifest.get("instances", {})
        outputs = details.get("outputs", [])
        return (
            f"output   instances: {', '.join(printable(str(o)) for o in outputs)}; up to "
            f"{figure(details.get('max_detections'), 'd')} detections, "
            f"{figure(details.get('mask_size'), 'd')}x{figure(details.get('mask_size'), 'd')} masks"
        )

    def fidelity_cells(self, fidelity: dict[str, Any]) -> list[str]:
        return [figure(fidelity.get("box_ap"), ".4f"), figure(fidelity.get("mask_ap"), ".4f"),
                points(fidelity.get("mask_ap_change"))]  # fmt: skip

    def calibration_figures(self, calibration: dict[str, Any]) -> str:
        if "fp32_mask_ap" not in calibration:
            return ""
        return (
            f"; FP32 box AP {figure(calibration.get('fp32_box_ap'), '.4f')}, mask AP "
            f"{figure(calibration['fp32_mask_ap'], '.4f')} against {calibration.get('truth', '?')}"
        )

    def parity_figures(self, parity: dict[str, Any]) -> str:
        return (
            f"{figure(parity.get('detections'), 'd')} detections, boxes within "
            f"{figure(parity.get('max_box_diff_px'), '.2g')} px, mask IoU {figure(parity['mean_mask_iou'], '.4f')}"
        )
