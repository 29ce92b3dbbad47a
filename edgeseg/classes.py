"""Class names and colours: from a names file, a count, or a scene."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.bundle import ClassInfo
from edgeseg.errors import EdgesegError


def default_color(index: int) -> tuple[int, int, int]:
    """The PASCAL VOC colour map: distinct, stable colours for any class index."""
    r = g = b = 0
    for bit in range(8):
        r |= ((index >> 0) & 1) << (7 - bit)
        g |= ((index >> 1) & 1) << (7 - bit)
        b |= ((index >> 2) & 1) << (7 - bit)
        index >>= 3
    return (r, g, b)


# The fused argmax hands the class map out as uint8 (what TensorRT, DeepStream and the overlay's lookup take).
MAX_CLASSES = 256


@lru_cache(maxsize=None)
def presets_data() -> dict[str, Any]:
    """Standard class sets (cityscapes, camvid, voc, ade20k, kvasir): class_presets.json says where each is from."""
    return json.loads(Path(__file__).with_name("class_presets.json").read_text())


def preset(name: str) -> tuple[list[str], list[tuple[int, int, int]]]:
    """A standard class set's names and RGB colours."""
    entry = presets_data()["presets"][name]
    return list(entry["names"]), [tuple(c) for c in entry["palette"]]


def numbered_classes(count: int) -> list[ClassInfo]:
    return [ClassInfo(f"class{i}", default_color(i)) for i in range(count)]


def read_names_file(path: Path) -> list[ClassInfo]:
    """One class per line: `name` or `name R G B` (spaces or commas); '#' starts a comment."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgesegError(f"cannot read class names file '{path}': {exc}") from None
    classes = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"(.+?)(?:[\s,]+(\d{1,3})[\s,]+(\d{1,3})[\s,]+(\d{1,3}))?", line)
        name, *rgb = match.groups()  # type: ignore[union-attr]
        color = tuple(int(v) for v in rgb) if rgb[0] is not None else default_color(len(classes))
        if any(v > 255 for v in color):
            raise EdgesegError(f"{path}:{number}: colour values must be 0-255, got {color}")
        name = name.strip(" ,")
        if not name:
            raise EdgesegError(f"{path}:{number}: a class needs a name before its colour")
        if name in (c.name for c in classes):
            raise EdgesegError(f"{path}:{number}: class '{name}' is listed twice; each class once, in index order")
        classes.append(ClassInfo(name, color))  # type: ignore[arg-type]
    if len(classes) < 2:
        raise EdgesegError(
            f"class names file '{path}' lists {len(classes)} class(es); a segmentation model needs at least 2"
        )
    if len(classes) > MAX_CLASSES:
        raise EdgesegError(
            f"class names file '{path}' lists {len(classes)} classes; the uint8 class map holds at most {MAX_CLASSES}"
        )
    return classes


def classes_from_option(value: str | None) -> list[ClassInfo] | None:
    """--classes takes a count, a standard class set (cityscapes, camvid, voc, ade20k, kvasir) or a names file."""
    if value is None:
        return None
    if value in presets_data()["presets"]:
        names, palette = preset(value)
        return [ClassInfo(name, colour) for name, colour in zip(names, palette)]
    if value.isascii() and value.isdigit():  # str.isdigit() is also true of '²', which int() refuses
        if int(value) < 2:
            raise EdgesegError(f"--classes {value}: a segmentation model needs at least 2 classes")
        if int(value) > MAX_CLASSES:  # a list of that many classes would be built first (and fill the memory)
            raise EdgesegError(f"--classes {value}: the uint8 class map holds at most {MAX_CLASSES} classes")
        return numbered_classes(int(value))
    return read_names_file(Path(value))


NUMBERED = re.compile(r"class\d+")


def label_lookup(label_names: list[str] | None, model_names: list[str]) -> np.ndarray:
    """Label id -> the model's class id, so that labels are scored against the classes they mean: by id where the
    source names no classes or the model's are only numbered (class0, class1...) and the counts agree; by name where
    the source names them. Raises, saying why, where the two class sets cannot be compared."""
    identity = np.arange(MAX_CLASSES, dtype=np.int64)
    if label_names is None or label_names == model_names:
        return identity
    if all(NUMBERED.fullmatch(name) for name in model_names):
        if len(label_names) == len(model_names):
            return identity
        raise EdgesegError(
            f"the labels have {len(label_names)} classes and the model {len(model_names)} numbered ones; they are not "
            "the same class set"
        )
    missing = [name for name in label_names if name not in model_names]
    if missing:
        raise EdgesegError(
            f"the labels' classes ({', '.join(label_names)}) are not the model's ({', '.join(model_names)}): "
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not among the model's"
        )
    lookup = identity.copy()
    lookup[: len(label_names)] = [model_names.index(name) for name in label_names]
    return lookup
