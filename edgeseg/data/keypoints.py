"""Keypoint labels as COCO keypoints JSON (what pycocotools, mmpose and Ultralytics' converters read).

A labelled folder with keypoints holds `keypoints.json` beside images/ and labels/: `images` (file names
relative to images/), one category with its `keypoints` (names) and `skeleton` (1-based index pairs, COCO's
convention), and one annotation per object: `keypoints` as [x, y, v] * K in pixels with COCO's visibility
(0 not labelled: outside the field; 1 labelled but hidden; 2 seen), `num_keypoints` (those with v > 0),
and `bbox` [x, y, w, h] and `area` around its labelled points. In memory an image's keypoints are one
float32 array (objects, K, 3).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.data.coco import box_problem, image_problem, refuse_bad_annotations
from edgeseg.errors import EdgesegError
from edgeseg.fileio import atomic_path

KEYPOINTS_FILE = "keypoints.json"


@dataclass(frozen=True)
class KeypointSchema:
    """What a source's keypoints are: their names, the bones to draw between them, and the class (index, name)
    of the objects that have them."""

    names: tuple[str, ...]
    skeleton: tuple[tuple[str, str], ...]
    category: tuple[int, str]


def annotation_for(points: np.ndarray, image_id: int, annotation_id: int, category_id: int) -> dict[str, Any]:
    """One object's COCO keypoint annotation; its box spans the points that are labelled (v > 0)."""
    labelled = points[points[:, 2] > 0]
    if len(labelled):
        x0, y0 = labelled[:, :2].min(0)
        x1, y1 = labelled[:, :2].max(0)
        box = [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]
    else:
        box = [0.0, 0.0, 0.0, 0.0]
    flat = [round(float(v), 2) if i % 3 < 2 else int(v) for i, v in enumerate(points.reshape(-1))]
    return {
        "id": annotation_id,
        "image_id": image_id,
        "category_id": category_id,
        "keypoints": flat,
        "num_keypoints": int(len(labelled)),
        "bbox": [round(v, 2) for v in box],
        "area": round(box[2] * box[3], 2),
        "iscrowd": 0,
    }


class KeypointWriter:
    """Collects images and keypoint annotations while a dataset is written; `save` writes the JSON atomically."""

    def __init__(self, schema: KeypointSchema):
        names = schema.names
        bones = [[names.index(a) + 1, names.index(b) + 1] for a, b in schema.skeleton]
        self.category = {"id": schema.category[0], "name": schema.category[1], "keypoints": list(names),
                         "skeleton": bones}  # fmt: skip
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []

    def add(self, file_name: str, keypoints: np.ndarray, height: int, width: int) -> None:
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "file_name": file_name, "height": height, "width": width})
        for points in keypoints:
            self.annotations.append(annotation_for(points, image_id, len(self.annotations) + 1, self.category["id"]))

    def save(self, path: Path) -> None:
        document = {"images": self.images, "annotations": self.annotations, "categories": [self.category]}
        with atomic_path(path) as temp:
            temp.write_text(json.dumps(document))


def read_keypoints(path: Path, images_dir: Path) -> tuple[KeypointSchema, dict[str, np.ndarray]]:
    """What the keypoints are, and file name -> (objects, K, 3) keypoints, checked against the images it names.
    Every annotation is checked before any is used: the first bad one is one line naming the file, its id and
    what is wrong, with how many more are bad."""
    try:
        document = json.loads(path.read_text())
        images = {image["id"]: image for image in document["images"]}
        (category,) = document["categories"]
        names = tuple(category["keypoints"])
        if not names or not all(isinstance(name, str) for name in names):
            raise ValueError("the category's keypoints are not a list of names")
        bones = category.get("skeleton", [])
        if not isinstance(bones, list) or not all(
            isinstance(bone, list) and len(bone) == 2 and all(_is_index(end, len(names)) for end in bone)
            for bone in bones
        ):
            raise ValueError(f"the skeleton is not a list of pairs of keypoint numbers 1..{len(names)}")
        skeleton = tuple((names[a - 1], names[b - 1]) for a, b in bones)
        schema = KeypointSchema(names, skeleton, (int(category["id"]), str(category["name"])))
        annotations = document["annotations"]
        if not isinstance(annotations, list):
            raise TypeError("'annotations' is not a list")
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        reason = f"{type(exc).__name__}: {exc}"
        raise EdgesegError(f"{path} is not COCO keypoints JSON of one category ({reason}); fix or remove it") from None
    for image in images.values():
        problem = image_problem(image, needs_size=False)
        if problem:
            raise EdgesegError(f"{path}: image {image.get('id')!r} {problem}; fix or remove it")
    problems = [keypoint_problem(a, images, schema.category[0], len(names)) for a in annotations]
    refuse_bad_annotations(path, problems, annotations)
    found: dict[str, list[np.ndarray]] = {}
    for image in images.values():
        if not (images_dir / image["file_name"]).is_file():
            raise EdgesegError(f"{path} lists {image['file_name']}, which is not in {images_dir}")
        found[image["file_name"]] = []
    for annotation in annotations:
        points = np.asarray(annotation["keypoints"], np.float32).reshape(len(names), 3)
        found[images[annotation["image_id"]]["file_name"]].append(points)
    empty = np.zeros((0, len(names), 3), np.float32)
    return schema, {name: np.stack(points) if points else empty for name, points in found.items()}


def _is_index(value: Any, count: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= count


def keypoint_problem(annotation: Any, images: dict[Any, Any], category: int, count: int) -> str | None:
    """What is wrong with one COCO keypoint annotation (None when nothing is)."""
    if not isinstance(annotation, dict):
        return "is not a JSON object"
    image_id = annotation.get("image_id")
    if not isinstance(image_id, (int, str)) or image_id not in images:
        return f"names image_id {image_id!r}, which no image in the file has"
    if "category_id" in annotation and annotation["category_id"] != category:
        return f"names category_id {annotation['category_id']!r}; the file's one category is {category}"
    flat = annotation.get("keypoints")
    if not isinstance(flat, list) or len(flat) != 3 * count:
        size = len(flat) if isinstance(flat, list) else "no list"
        return f"does not hold {count} keypoints as x, y, v ({size} values)"
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in flat)
    if not numbers:
        return "has a keypoint value that is not a finite number"
    if any(v not in (0, 1, 2) for v in flat[2::3]):
        return "has a visibility that is not 0, 1 or 2"
    if "bbox" in annotation and (problem := box_problem(annotation["bbox"])):
        return problem
    return None
