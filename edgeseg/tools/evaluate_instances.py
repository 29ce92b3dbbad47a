"""`edgeseg eval` on an instance bundle: COCO box and mask AP through pycocotools' own COCOeval.

pycocotools is the reference implementation of the COCO metrics (the one the COCO benchmark, Detectron2 and
mmdetection report with) and installs from PyPI as a binary wheel; AP is never computed by hand here.
Frames are resized to the model's input and its boxes scaled back, so AP is measured at label resolution.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeseg.bundle import Bundle
from edgeseg.data.coco import as_coco_detections, categories_of, evaluate_coco, instance_classes
from edgeseg.errors import EdgesegError
from edgeseg.progress import Progress
from edgeseg.redact import redact
from edgeseg.runtime.instances import InstanceDetector
from edgeseg.runtime.pipeline import StageTimes
from edgeseg.runtime.sources import open_source


def evaluate_instances(bundle_dir: Path, data: str, backend: str = "auto", precision: str = "best",
                       frames: int | None = None, progress: bool = True) -> dict[str, Any]:  # fmt: skip
    bundle = Bundle.load(bundle_dir)
    detector = InstanceDetector.for_bundle(bundle, backend, precision)
    try:
        truths, detections = detect_labelled(bundle, detector, data, frames, progress)
    finally:
        detector.close()
    figures = evaluate_coco(truths, detections, dict(categories_of(bundle)))
    artifact = detector.artifact
    return {"frames": len(truths), "data": redact(data), "precision": artifact.precision, "artifact": artifact.path,
            **figures}  # fmt: skip


def detect_labelled(bundle: Bundle, detector: InstanceDetector, data: str, frames: int | None, progress: bool
                    ) -> tuple[list[Any], list[Any]]:  # fmt: skip
    """Each labelled frame's truth (instance plane, id -> category) and the detector's COCO-form detections."""
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
    from edgeseg.tables import format_table

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
