"""Instance labels as COCO JSON with RLE masks (what pycocotools, Detectron2 and mmdetection read).

A labelled folder with instances holds `instances.json` beside images/ and labels/: `images` (file names
relative to images/), `categories` (the scene's class index as id, and its name) and `annotations` (one
per object: compressed RLE `segmentation`, `bbox` [x, y, w, h], `area`, `iscrowd` 0). In memory an image's
instances are one uint16 plane of ids (0: none) and the class of each id.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Tuple  # typing's Tuple: the alias below is evaluated on Python 3.8

import numpy as np

from edgeseg.bundle import Bundle
from edgeseg.errors import EdgesegError, require
from edgeseg.fileio import atomic_path, over_budget
from edgeseg.tables import printable

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
    """file name -> (instance id plane, id -> category), checked against the images it names. Every annotation
    is checked before any is used (labels come from other tools): the first bad one is one line naming the file,
    its id and what is wrong, with how many more are bad."""
    try:
        document = json.loads(path.read_text())
        images = {image["id"]: image for image in document["images"]}
        annotations = document["annotations"]
        categories = {category["id"] for category in document["categories"]}
        if not isinstance(annotations, list):
            raise TypeError("'annotations' is not a list")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        reason = f"{type(exc).__name__}: {exc}"
        raise EdgesegError(f"{path} is not COCO instance JSON ({reason}); fix or remove it") from None
    for image in images.values():
        problem = image_problem(image)
        if problem:
            raise EdgesegError(f"{path}: image {printable(repr(image.get('id')))} {problem}; fix or remove it")
    refuse_bad_annotations(path, [annotation_problem(a, images, categories) for a in annotations], annotations)
    masks = mask_api()
    planes: dict[str, tuple[np.ndarray, dict[int, int]]] = {}
    for image in images.values():
        if not (images_dir / image["file_name"]).is_file():
            raise EdgesegError(f"{path} lists {image['file_name']}, which is not in {images_dir}")
        planes[image["file_name"]] = (np.zeros((image["height"], image["width"]), np.uint16), {})
    for annotation in annotations:
        image = images[annotation["image_id"]]
        plane, classes = planes[image["file_name"]]
        mask = decode_segmentation(masks, annotation["segmentation"], image["height"], image["width"])
        number = len(classes) + 1  # ids 1..K within each image, in the file's order
        plane[mask] = number
        classes[number] = int(annotation["category_id"])
    return planes


def image_problem(image: Any, needs_size: bool = True) -> str | None:
    """What is wrong with one entry of `images` (None when nothing is): its name and a size within the budget.
    Keypoints need no size (instance masks do): there a missing height and width are no problem."""
    if not isinstance(image.get("file_name"), str) or not image["file_name"]:
        return "has no file_name"
    height, width = image.get("height"), image.get("width")
    if not needs_size and height is None and width is None:
        return None
    if not (_is_count(height) and _is_count(width)):
        return f"has no positive integer height and width (height {height!r}, width {width!r})"
    return over_budget(width, height, "is declared as")


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _shown_id(annotation: Any, index: int) -> str:
    given = annotation.get("id") if isinstance(annotation, dict) else None
    return printable(repr(given)) if given is not None else f"#{index + 1} (it has no id)"


def refuse_bad_annotations(path: Path, problems: list[str | None], annotations: list[Any]) -> None:
    """One line for the first bad annotation (the file, its id, what is wrong) and the count of the others."""
    bad = [(index, problem) for index, problem in enumerate(problems) if problem]
    if bad:
        index, problem = bad[0]
        more = f" ({len(bad) - 1} more bad annotation(s) after it)" if len(bad) > 1 else ""
        shown = _shown_id(annotations[index], index)
        raise EdgesegError(f"{path}: annotation {shown} {problem}{more}; fix or remove it")


def box_problem(box: Any) -> str | None:
    if not isinstance(box, list) or len(box) != 4 or not all(_is_number(v) for v in box):
        return f"has bbox {printable(repr(box))[:60]}, not [x, y, width, height] as four numbers"
    if box[2] < 0 or box[3] < 0:
        return f"has a bbox of negative size {box[2]}x{box[3]}"
    return None


def annotation_problem(annotation: Any, images: dict[Any, Any], categories: set[Any]) -> str | None:
    """What is wrong with one COCO instance annotation (None when nothing is): checked before pycocotools sees it."""
    if not isinstance(annotation, dict):
        return "is not a JSON object"
    image_id = annotation.get("image_id")
    if not isinstance(image_id, (int, str)) or image_id not in images:
        return f"names image_id {printable(repr(image_id))}, which no image in the file has"
    category = annotation.get("category_id")
    if not isinstance(category, int) or isinstance(category, bool) or category not in categories:
        return f"names category_id {printable(repr(category))}, which the file's categories do not list"
    if "bbox" in annotation and (problem := box_problem(annotation["bbox"])):
        return problem
    image = images[image_id]
    return segmentation_problem(annotation.get("segmentation"), image["height"], image["width"])


def segmentation_problem(segmentation: Any, height: int, width: int) -> str | None:
    """An RLE (compressed or not) of the image's size, or polygons of x, y pairs (at least three points each)."""
    if isinstance(segmentation, list):
        if not segmentation:
            return "has an empty polygon list"
        for polygon in segmentation:
            if not isinstance(polygon, list) or not all(_is_number(v) for v in polygon):
                return "has a polygon that is not a list of numbers"
            if len(polygon) % 2:
                return f"has a polygon with an odd number of coordinates ({len(polygon)}); polygons are x, y pairs"
            if len(polygon) < 6:
                return f"has a polygon of {len(polygon) // 2} point(s); a polygon needs at least 3"
        return None
    if not isinstance(segmentation, dict):
        return "has no segmentation (an RLE object or a list of polygons)"
    size = segmentation.get("size")
    if not isinstance(size, list) or len(size) != 2 or not all(_is_count(v) for v in size):
        return f"has RLE size {printable(repr(size))[:40]}, not [height, width]"
    if size != [height, width]:
        return f"is an RLE of {size[1]}x{size[0]} but its image is {width}x{height}"
    counts = segmentation.get("counts")
    if isinstance(counts, str):
        try:
            counts = rle_string_counts(counts)
        except ValueError as exc:
            return f"has invalid RLE counts ({exc})"
    elif not isinstance(counts, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in counts):
        return "has RLE counts that are neither a compressed string nor a list of integers"
    if any(v < 0 for v in counts):
        return "has invalid RLE counts (a negative run)"
    if sum(counts) != height * width:
        return f"has invalid RLE counts: its runs cover {sum(counts)} pixels, but the image has {height * width}"
    return None


def rle_string_counts(text: str) -> list[int]:
    """The runs of a compressed RLE string (COCO's LEB128-like form: 5 bits a character from '0', the sixth bit
    for more, run k > 2 stored as a difference from run k - 2), as pycocotools' rleFrString reads it."""
    counts: list[int] = []
    position = 0
    while position < len(text):
        value, shift, more = 0, 0, True
        while more:
            if position >= len(text):
                raise ValueError("the string ends inside a run")
            code = ord(text[position]) - 48
            if not 0 <= code < 64:
                raise ValueError(f"character {text[position]!r} is outside the RLE alphabet")
            value |= (code & 0x1F) << shift
            more = bool(code & 0x20)
            position += 1
            shift += 5
            if not more and code & 0x10:
                value |= -1 << shift
            if shift > 70:
                raise ValueError("a run is too long")
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def decode_segmentation(masks: Any, segmentation: Any, height: int, width: int) -> np.ndarray:
    """A checked segmentation (segmentation_problem said nothing) as a boolean mask of the image."""
    if isinstance(segmentation, list):
        rle = masks.merge(masks.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation["counts"], list):
        rle = masks.frPyObjects(segmentation, height, width)
    else:
        rle = {"size": segmentation["size"], "counts": segmentation["counts"].encode("ascii")}
    return masks.decode(rle).astype(bool)


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
