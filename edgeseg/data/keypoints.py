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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

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
    """What the keypoints are, and file name -> (objects, K, 3) keypoints, checked against the images it names."""
    try:
        document = json.loads(path.read_text())
        images = {image["id"]: image["file_name"] for image in document["images"]}
        (category,) = document["categories"]
        names = tuple(str(name) for name in category["keypoints"])
        skeleton = tuple((names[a - 1], names[b - 1]) for a, b in category.get("skeleton", []))
        schema = KeypointSchema(names, skeleton, (int(category["id"]), str(category["name"])))
        annotations = [(a["id"], a["image_id"], a["keypoints"]) for a in document["annotations"]]
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        reason = f"{type(exc).__name__}: {exc}"
        raise EdgesegError(f"{path} is not COCO keypoints JSON of one category ({reason}); fix or remove it") from None
    found: dict[str, list[np.ndarray]] = {}
    for name in images.values():
        if not (images_dir / name).is_file():
            raise EdgesegError(f"{path} lists {name}, which is not in {images_dir}")
        found[name] = []
    for annotation_id, image_id, flat in annotations:
        if image_id not in images or len(flat) != 3 * len(names):
            raise EdgesegError(
                f"{path}: annotation {annotation_id} names an image it does not list or does not hold "
                f"{len(names)} keypoints as x, y, v"
            )
        found[images[image_id]].append(np.asarray(flat, np.float32).reshape(len(names), 3))
    empty = np.zeros((0, len(names), 3), np.float32)
    return schema, {name: np.stack(points) if points else empty for name, points in found.items()}
