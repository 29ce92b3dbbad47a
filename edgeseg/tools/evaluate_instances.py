"""`edgeseg eval` on an instance bundle: COCO box and mask AP through pycocotools' own COCOeval.

pycocotools is the reference implementation of the COCO metrics (the one the COCO benchmark, Detectron2 and
mmdetection report with) and installs from PyPI as a binary wheel; AP is never computed by hand here.
Frames are resized to the model's input and its boxes scaled back, so AP is measured at label resolution.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeseg.bundle import Bundle
from edgeseg.data.coco import evaluate_coco, instance_classes, paste_mask
from edgeseg.errors import EdgesegError, require
from edgeseg.progress import Progress
from edgeseg.runtime.sources import open_source
from edgeseg.runtime.tensors import frames_to_input


def categories_of(bundle: Bundle) -> list[tuple[int, str]]:
    """(COCO category id, name) per model class, in the model's class order."""
    return [(int(c.get("category_id", index + 1)), c["name"]) for index, c in enumerate(bundle.manifest["classes"])]


def detect(session: Any, bundle: Bundle, image: np.ndarray) -> list[tuple[np.ndarray, float, int, np.ndarray]]:
    """One frame's detections at the frame's own resolution: (box, score, model class, full-frame mask)."""
    height, width = image.shape[:2]
    model_height, model_width = bundle.input.size
    resized = (
        image if (height, width) == (model_height, model_width) else cv2.resize(image, (model_width, model_height))
    )
    feed = {bundle.input.name: frames_to_input([resized], bundle.input)}
    boxes, scores, classes, masks, count = session.run(None, feed)
    scale = np.array([width / model_width, height / model_height] * 2, np.float32)
    found = []
    for i in range(int(count)):
        box = boxes[i] * scale
        found.append((box, float(scores[i]), int(classes[i]), paste_mask(box, masks[i], height, width)))
    return found


def evaluate_instances(bundle_dir: Path, data: str, precision: str = "fp32", frames: int | None = None,
                       progress: bool = True) -> dict[str, Any]:  # fmt: skip
    bundle = Bundle.load(bundle_dir)
    ort = require("onnxruntime", "calibrate")
    artifact = bundle.select("onnx", precision, targets=("cpu", "any"))
    session = ort.InferenceSession(str(bundle.artifact_path(artifact)), providers=["CPUExecutionProvider"])
    categories = categories_of(bundle)
    source = open_source(data)
    truths, detections = [], []
    bar = Progress(frames or source.length or 0, "eval", enabled=progress and bool(frames or source.length))
    for frame in source:
        if frames is not None and len(truths) >= frames:
            break
        if frame.instances is None or frame.label is None:
            raise EdgesegError(
                f"'{data}' has no instance labels: use synthetic://driving?...&instances=1 or a labelled folder with "
                "instances.json (COCO)"
            )
        truths.append((frame.instances, instance_classes(frame.instances, frame.label)))
        found = detect(session, bundle, frame.image)
        detections.append([(box, score, categories[cls][0], mask) for box, score, cls, mask in found])
        bar.advance()
    if not truths:
        raise EdgesegError(f"'{data}' gave no frames to evaluate")
    figures = evaluate_coco(truths, detections, dict(categories))
    return {"frames": len(truths), "data": data, "precision": artifact.precision, "artifact": artifact.path,
            **figures}  # fmt: skip


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
