"""Labelled folders: images/ and labels/ (class-index PNG with the same stem), for eval, calibrate and users."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edgeseg.errors import EdgesegError
from edgeseg.fileio import image_budget_problem

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


class OverBudget(EdgesegError):
    """An image beyond the pixel budget, refused from its header before any decode (or refused by OpenCV's own
    limits on a format whose header edgeseg does not read)."""


def read_image(path: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray | None:
    """Decode an image file, or None when OpenCV cannot. One over the pixel budget raises OverBudget, read from
    its header: a 1 MB PNG can declare 32000x32000 pixels (3 GB decoded)."""
    try:
        problem = image_budget_problem(path)
    except OSError:
        return None  # unreadable: what OpenCV would answer too
    if problem:
        raise OverBudget(problem)
    try:
        return cv2.imread(str(path), flags)
    except cv2.error as exc:  # OpenCV's own limit (CV_IO_MAX_IMAGE_PIXELS) on a format sized by OpenCV alone
        text = " ".join(str(exc).split())
        reason = (
            "over OpenCV's own size limit, OPENCV_IO_MAX_IMAGE_PIXELS"
            if "CV_IO_MAX_IMAGE" in text
            else text.rsplit("error: ", 1)[-1] or type(exc).__name__
        )
        raise OverBudget(f"'{path}': OpenCV refused to decode it ({reason})") from None


def is_labelled_folder(path: Path) -> bool:
    return (path / "images").is_dir() and (path / "labels").is_dir()


def labelled_pairs(root: Path) -> list[tuple[Path, Path]]:
    """(image, label) paths matched by stem; any unpaired file is an error naming it."""
    images = {p.stem: p for p in sorted((root / "images").iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    labels = {p.stem: p for p in sorted((root / "labels").iterdir()) if p.suffix.lower() == ".png"}
    if not images:
        raise EdgesegError(f"labelled folder '{root}' has no images in images/")
    unpaired = sorted(set(images) ^ set(labels))
    if unpaired:
        side = "labels/" if unpaired[0] in images else "images/"
        raise EdgesegError(
            f"labelled folder '{root}': '{unpaired[0]}' has no partner in {side} ({len(unpaired)} unpaired); images "
            "and labels must share stems"
        )
    return [(images[stem], labels[stem]) for stem in sorted(images)]


def read_pair(image_path: Path, label_path: Path, num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    image = read_image(image_path, cv2.IMREAD_COLOR)
    label = read_image(label_path, cv2.IMREAD_UNCHANGED)
    if image is None or label is None:
        raise EdgesegError(f"cannot decode '{image_path if image is None else label_path}'")
    if label.ndim != 2:
        raise EdgesegError(
            f"label '{label_path}' has {label.shape[2]} channels; labels are single-channel class-index PNGs"
        )
    if label.shape != image.shape[:2]:
        raise EdgesegError(
            f"label '{label_path}' is {label.shape[1]}x{label.shape[0]} but its image is "
            f"{image.shape[1]}x{image.shape[0]}; they must match"
        )
    if num_classes is not None and int(label.max()) >= num_classes:
        raise EdgesegError(
            f"label '{label_path}' holds class {int(label.max())}, outside 0..{num_classes - 1}; wrong labels or "
            "wrong --classes?"
        )
    return image, label
