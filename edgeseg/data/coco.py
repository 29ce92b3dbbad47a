"""Instance labels as COCO JSON with RLE masks (what pycocotools, Detectron2 and mmdetection read).

A labelled folder with instances holds `instances.json` beside images/ and labels/: `images` (file names
relative to images/), `categories` (the scene's class index as id, and its name) and `annotations` (one
per object: compressed RLE `segmentation`, `bbox` [x, y, w, h], `area`, `iscrowd` 0). In memory an image's
instances are one uint16 plane of ids (0: none) and the class of each id.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Tuple  # typing's Tuple: the alias below is evaluated on Python 3.8

import numpy as np

from edgeseg.bundle import Bundle
from edgeseg.errors import EdgesegError, require
from edgeseg.fileio import atomic_path

INSTANCES_FILE = "instances.json"


def mask_api() -> Any:
    return require("pycocotools.mask", "instances")


def instance_classes(instances: np.ndarray, label: np.ndarray) -> dict[int, int]:
    """Each instance id's class: the class the label plane gives its pixels."""
    classes = {}
    for number in np.unique(instances):
        if number:
            classes[int(number)] = int(np.bincount(label[instances == number]).argmax())
    return classes


def annotations_for(instances: np.ndarray, label: np.ndarray, image_id: int, first_id: int) -> list[dict[str, Any]]:
    masks = mask_api()
    found = []
    for offset, (number, category) in enumerate(sorted(instance_classes(instances, label).items())):
        rle = masks.encode(np.asfortranarray((instances == number).astype(np.uint8)))
        box = [float(v) for v in masks.toBbox(rle)]
        found.append(
            {
                "id": first_id + offset,
                "image_id": image_id,
                "category_id": category,
                "segmentation": {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")},
                "bbox": box,
                "area": float(masks.area(rle)),
                "iscrowd": 0,
            }
        )
    return found


class CocoWriter:
    """Collects images and annotations while a dataset is written; `save` writes the JSON atomically."""

    def __init__(self, classes: list[tuple[str, tuple[int, int, int]]], instance_classes: tuple[int, ...]):
        self.categories = [{"id": index, "name": classes[index][0]} for index in instance_classes]
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []

    def add(self, file_name: str, instances: np.ndarray, label: np.ndarray) -> None:
        image_id = len(self.images) + 1
        height, width = instances.shape
        self.images.append({"id": image_id, "file_name": file_name, "height": height, "width": width})
        self.annotations += annotations_for(instances, label, image_id, len(self.annotations) + 1)

    def document(self) -> dict[str, Any]:
        return {"images": self.images, "annotations": self.annotations, "categories": self.categories}

    def save(self, path: Path) -> None:
        with atomic_path(path) as temp:
            temp.write_text(json.dumps(self.document()))


def read_instances(path: Path, images_dir: Path) -> dict[str, tuple[np.ndarray, dict[int, int]]]:
    """file name -> (instance id plane, id -> category), checked against the images it names."""
    try:
        document = json.loads(path.read_text())
        images = {image["id"]: image for image in document["images"]}
        annotations = document["annotations"]
        categories = {category["id"] for category in document["categories"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        reason = f"{type(exc).__name__}: {exc}"
        raise EdgesegError(f"{path} is not COCO instance JSON ({reason}); fix or remove it") from None
    masks = mask_api()
    planes: dict[str, tuple[np.ndarray, dict[int, int]]] = {}
    for image in images.values():
        if not (images_dir / image["file_name"]).is_file():
            raise EdgesegError(f"{path} lists {image['file_name']}, which is not in {images_dir}")
        planes[image["file_name"]] = (np.zeros((image["height"], image["width"]), np.uint16), {})
    for annotation in annotations:
        image = images.get(annotation.get("image_id"))
        if image is None or annotation.get("category_id") not in categories:
            raise EdgesegError(f"{path}: annotation {annotation.get('id')} names an image or category it does not list")
        plane, classes = planes[image["file_name"]]
        mask = masks.decode(annotation["segmentation"]).astype(bool)
        if mask.shape != plane.shape:
            raise EdgesegError(
                f"{path}: annotation {annotation.get('id')} is {mask.shape[1]}x{mask.shape[0]} but "
                f"{image['file_name']} is {plane.shape[1]}x{plane.shape[0]}"
            )
        number = len(classes) + 1  # ids 1..K within each image, in the file's order
        plane[mask] = number
        classes[number] = int(annotation["category_id"])
    return planes


def paste_mask(box: np.ndarray, mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """A box's mask (probabilities, any square size) resized into the box at frame resolution, thresholded at 0.5."""
    import cv2

    x0, y0 = int(np.floor(box[0])), int(np.floor(box[1]))
    x1, y1 = int(np.ceil(box[2])), int(np.ceil(box[3]))
    full = np.zeros((height, width), bool)
    if x1 <= x0 or y1 <= y0:
        return full
    resized = cv2.resize(mask.astype(np.float32), (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR) >= 0.5
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    full[cy0:cy1, cx0:cx1] = resized[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    return full


def categories_of(bundle: Bundle) -> list[tuple[int, str]]:
    """(COCO category id, name) per model class, in the model's class order."""
    return [(int(c.get("category_id", index + 1)), c["name"]) for index, c in enumerate(bundle.manifest["classes"])]


Detection = Tuple[np.ndarray, float, int, np.ndarray]  # box x1 y1 x2 y2, score, category id, full-frame mask


def as_coco_detections(
    boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, masks: np.ndarray, categories: list[tuple[int, str]],
    height: int, width: int,
) -> list[Detection]:  # fmt: skip
    """A detector's answer at frame resolution (class indices, box-sized mask probabilities) as evaluate_coco's
    detections: COCO category ids and masks pasted into the frame."""
    return [
        (box, float(score), categories[int(cls)][0], paste_mask(box, mask, height, width))
        for box, score, cls, mask in zip(boxes, scores, classes, masks)
    ]


def detections_as_truth(found: list[Detection], height: int, width: int, threshold: float = 0.5
                        ) -> tuple[np.ndarray, dict[int, int]]:  # fmt: skip
    """Detections above `threshold` as an instance plane and its classes (the higher score keeps a shared pixel):
    ground truth made from a reference model, for data without instance labels."""
    plane = np.zeros((height, width), np.uint16)
    classes = {}
    for _, score, category, mask in sorted(found, key=lambda d: -d[1]):
        fresh = mask & (plane == 0)
        if score < threshold or not fresh.any():
            continue
        number = len(classes) + 1
        plane[fresh], classes[number] = number, category
    return plane, classes


def detection_agreement(reference: list[Detection], variant: list[Detection], threshold: float = 0.5) -> float:
    """Mean best same-class mask IoU of each shown detection in one set with the other set's, both ways (1.0 when
    neither shows anything)."""
    shown = [[d for d in found if d[1] >= threshold] for found in (reference, variant)]
    if not shown[0] and not shown[1]:
        return 1.0
    matches = []
    for mine, theirs in (shown, shown[::-1]):
        for _, _, category, mask in mine:
            matches.append(max((mask_iou(mask, other) for _, _, c, other in theirs if c == category), default=0.0))
    return float(np.mean(matches))


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0


def evaluate_coco(
    truths: list[tuple[np.ndarray, dict[int, int]]],
    detections: list[list[Detection]],
    categories: dict[int, str],
) -> dict[str, Any]:
    """COCO box and mask AP (pycocotools' COCOeval) for frames of (instance plane, id -> category) and their
    detections (box x1 y1 x2 y2, score, category, full-frame boolean mask)."""
    masks = mask_api()
    cocoeval = require("pycocotools.cocoeval", "instances")
    coco_api = require("pycocotools.coco", "instances")
    images, annotations, results = [], [], []
    for image_id, ((plane, classes), found) in enumerate(zip(truths, detections), start=1):
        height, width = plane.shape
        images.append({"id": image_id, "height": height, "width": width})
        for number, category in classes.items():
            rle = masks.encode(np.asfortranarray((plane == number).astype(np.uint8)))
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category,
                                "segmentation": rle, "area": float(masks.area(rle)),
                                "bbox": [float(v) for v in masks.toBbox(rle)], "iscrowd": 0})  # fmt: skip
        for box, score, category, mask in found:
            rle = masks.encode(np.asfortranarray(mask.astype(np.uint8)))
            xywh = [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])]
            results.append({"image_id": image_id, "category_id": category, "score": float(score),
                            "segmentation": rle, "bbox": xywh})  # fmt: skip
    truth = coco_api.COCO()
    truth.dataset = {"images": images, "annotations": annotations,
                     "categories": [{"id": i, "name": n} for i, n in categories.items()]}  # fmt: skip
    with _quiet():  # pycocotools prints as it indexes and loads
        truth.createIndex()
        found_api = truth.loadRes(results) if results else None
    figures: dict[str, Any] = {}
    for kind, prefix in (("bbox", "box"), ("segm", "mask")):
        if found_api is None:
            figures.update({f"{prefix}_ap": 0.0, f"{prefix}_ap50": 0.0, f"{prefix}_ap75": 0.0})
            continue
        evaluation = cocoeval.COCOeval(truth, found_api, kind)
        with _quiet():
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
        figures[f"{prefix}_ap"], figures[f"{prefix}_ap50"], figures[f"{prefix}_ap75"] = (
            max(float(v), 0.0) for v in evaluation.stats[:3]
        )
        precision = evaluation.eval["precision"]  # (iou, recall, class, area, max dets)
        per_class = {}
        for index, category in enumerate(evaluation.params.catIds):
            values = precision[:, :, index, 0, -1]
            values = values[values > -1]
            per_class[categories[category]] = float(values.mean()) if values.size else None
        figures[f"{prefix}_ap_per_class"] = per_class
    return figures


def _quiet() -> Any:
    import contextlib
    import io

    return contextlib.redirect_stdout(io.StringIO())  # COCOeval prints its summary table
