"""`edgeseg eval`: mIoU, per-class IoU, pixel accuracy and a confusion matrix against labelled frames."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeseg.bundle import Bundle
from edgeseg.classes import label_lookup
from edgeseg.errors import EdgesegError
from edgeseg.fileio import write_text_atomic
from edgeseg.metrics import IGNORE, confusion_matrix, scores
from edgeseg.progress import Progress
from edgeseg.redact import redact
from edgeseg.runtime.backends import open_backend
from edgeseg.runtime.frames import Frame
from edgeseg.runtime.sources import open_source
from edgeseg.runtime.tensors import class_maps
from edgeseg.tables import format_table


@dataclass
class EvalResult:
    """What `edgeseg eval` measured; `to_dict()` is the `--json` form."""

    miou: float
    pixel_accuracy: float
    per_class_iou: list[float | None]
    classes: list[str]
    frames: int
    data: str
    backend: str
    precision: str
    confusion_matrix: list[list[int]]
    foreground: dict[str, float] | None = None  # two-class (binary) bundles: Dice and IoU of class 1

    def to_dict(self) -> dict[str, Any]:
        # The --json schema is pinned (scripts read its keys): `foreground` is there only for a two-class bundle.
        return {key: value for key, value in asdict(self).items() if key != "foreground" or value is not None}


def labelled_batches(uri: str, batch: int, model_names: list[str], limit: int | None) -> Iterator[list[Frame]]:
    """The source's labelled frames in batches, each label in the model's class ids."""
    num_classes = len(model_names)
    source = open_source(uri)
    pending: list[Frame] = []
    try:
        try:
            lookup = label_lookup(source.label_names, model_names)
        except EdgesegError as reason:
            raise EdgesegError(f"cannot score this bundle on '{redact(uri)}': {reason}") from None
        for frame in source:
            if frame.label is None:
                raise EdgesegError(
                    f"'{redact(uri)}' has no labels; evaluate on synthetic://... or a folder with images/ and labels/"
                )
            frame.label = lookup[frame.label].astype(np.uint8)
            scored = frame.label[frame.label != IGNORE]
            if scored.size and int(scored.max()) >= num_classes:
                raise EdgesegError(
                    f"'{redact(uri)}' frame {frame.index} has class {int(scored.max())} but the bundle has "
                    f"{num_classes} classes; evaluate on data labelled for this model"
                )
            pending.append(frame)
            if len(pending) == batch or (limit is not None and frame.index + 1 >= limit):
                yield pending
                pending = []
            if limit is not None and frame.index + 1 >= limit:
                return
        if pending:
            yield pending
    finally:
        source.close()


def evaluate(
    bundle_dir: Path,
    data: str,
    backend: str = "auto",
    precision: str = "best",
    frames: int | None = None,
    progress: bool = True,
) -> EvalResult:
    """Run the bundle over labelled frames; class maps are compared at label resolution (nearest upsampling)."""
    bundle = Bundle.load(bundle_dir)
    classes = bundle.classes
    confusion = np.zeros((len(classes), len(classes)), np.int64)
    net = open_backend(bundle, backend, precision)
    count = 0
    bar = Progress(frames or 0, "eval", enabled=progress and frames is not None)
    with net:
        for batch in labelled_batches(data, net.batch_size, [c.name for c in classes], frames):
            maps = class_maps(net, [f.image for f in batch], bundle.input, bundle.output)
            for frame, class_map in zip(batch, maps):
                height, width = frame.label.shape
                predicted = cv2.resize(class_map, (width, height), interpolation=cv2.INTER_NEAREST)
                confusion += confusion_matrix(predicted, frame.label, len(classes))
            count += len(batch)
            bar.advance(steps=len(batch))
    return EvalResult(
        **scores(confusion),
        classes=[c.name for c in classes],
        frames=count,
        data=redact(data),  # --json and the table are shared: a camera's password never goes in them
        backend=net.describe(),
        precision=precision,
        confusion_matrix=confusion.tolist(),
        foreground=foreground_scores(confusion) if len(classes) == 2 else None,
    )


def foreground_scores(confusion: np.ndarray) -> dict[str, float]:
    """A binary model's figures, as medical papers give them: Dice (F1) and IoU of the foreground (class 1), over
    every pixel of every frame (not a mean of per-frame figures: a frame without foreground would be 0 or 1)."""
    true_positive = float(confusion[1, 1])
    false_positive, false_negative = float(confusion[0, 1]), float(confusion[1, 0])
    found = 2 * true_positive + false_positive + false_negative
    return {
        "dice": 2 * true_positive / found if found else 1.0,
        "iou": true_positive / (true_positive + false_positive + false_negative) if found else 1.0,
    }


def format_report(result: EvalResult) -> str:
    names = result.classes
    rows = [[name, "-" if iou is None else f"{iou:.4f}"] for name, iou in zip(names, result.per_class_iou)]
    confusion = np.asarray(result.confusion_matrix, np.float64)
    row_share = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
    matrix = [[name] + [f"{100 * v:.1f}" for v in row] for name, row in zip(names, row_share)]
    return "\n".join(
        [
            f"{result.frames} frames of {result.data} on {result.backend}",
            format_table(["class", "IoU"], rows),
            f"mIoU {result.miou:.4f}   pixel accuracy {result.pixel_accuracy:.4f}",
            *(
                [f"{names[1]}: Dice {result.foreground['dice']:.4f}   IoU {result.foreground['iou']:.4f}"]
                if result.foreground
                else []
            ),
            "",
            "confusion matrix (% of each true class, rows = truth, columns = prediction)",
            format_table(["truth \\ predicted"] + [n[:8] for n in names], matrix),
        ]
    )


def write_json(result: EvalResult, path: Path) -> None:
    write_text_atomic(Path(path), json.dumps(result.to_dict(), indent=2) + "\n")
