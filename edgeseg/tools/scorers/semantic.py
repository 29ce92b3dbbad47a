"""Semantic bundles: mIoU, per-class IoU, pixel accuracy and a confusion matrix against labelled frames."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeseg.bundle import Bundle
from edgeseg.classes import label_lookup
from edgeseg.errors import EdgesegError
from edgeseg.metrics import IGNORE, confusion_matrix, scores
from edgeseg.progress import Progress
from edgeseg.redact import redact
from edgeseg.tables import format_table
from edgeseg.tools.figures import figure, points

if TYPE_CHECKING:
    from edgeseg.runtime.frames import Frame

# The runtime (OpenCV, a backend) is imported by evaluate only: info uses these scorers too, and stays light.


@dataclass
class EvalResult:
    """What `edgeseg eval` measured on a semantic bundle; `to_dict()` is the `--json` form."""

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

    def report(self) -> str:
        names = self.classes
        rows = [[name, "-" if iou is None else f"{iou:.4f}"] for name, iou in zip(names, self.per_class_iou)]
        confusion = np.asarray(self.confusion_matrix, np.float64)
        row_share = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
        matrix = [[name] + [f"{100 * v:.1f}" for v in row] for name, row in zip(names, row_share)]
        foreground = self.foreground
        return "\n".join(
            [
                f"{self.frames} frames of {self.data} on {self.backend}",
                format_table(["class", "IoU"], rows),
                f"mIoU {self.miou:.4f}   pixel accuracy {self.pixel_accuracy:.4f}",
                *([f"{names[1]}: Dice {foreground['dice']:.4f}   IoU {foreground['iou']:.4f}"] if foreground else []),
                "",
                "confusion matrix (% of each true class, rows = truth, columns = prediction)",
                format_table(["truth \\ predicted"] + [n[:8] for n in names], matrix),
            ]
        )


def labelled_batches(uri: str, batch: int, model_names: list[str], limit: int | None) -> Iterator[list[Frame]]:
    """The source's labelled frames in batches, each label in the model's class ids."""
    from edgeseg.runtime.sources import open_source

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


class SemanticScorer:
    """A class map per pixel (fused argmax or logits), scored at label resolution (nearest upsampling)."""

    kinds = ("class_map", "logits")
    agreement_columns = ("agreement", "worst frame")
    accuracy_columns = ("mIoU", "mIoU change")
    parity_key = "class_map_agreement"

    def evaluate(self, bundle: Bundle, data: str, backend: str, precision: str, frames: int | None,
                 progress: bool) -> EvalResult:  # fmt: skip
        import cv2

        from edgeseg.runtime.backends import open_backend
        from edgeseg.runtime.tensors import class_maps

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

    def output_line(self, bundle: Bundle) -> str:
        contract = bundle.output
        return (
            f"output   {contract.name}: {contract.kind} ({contract.dtype}), argmax "
            f"{'fused into the graph' if contract.fused_argmax else 'done by the runtime'}"
        )

    def fidelity_cells(self, fidelity: dict[str, Any]) -> list[str]:
        return [figure(fidelity.get("miou"), ".4f"), points(fidelity.get("miou_change"))]

    def calibration_figures(self, calibration: dict[str, Any]) -> str:
        if "fp32_miou" not in calibration:
            return ""
        return f"; FP32 mIoU {figure(calibration['fp32_miou'], '.4f')}"

    def parity_figures(self, parity: dict[str, Any]) -> str:
        return (
            f"{figure(parity['class_map_agreement'], '.4%')} class-map agreement, "
            f"max |logit diff| {figure(parity.get('max_abs_logit_diff'), '.2e')}"
        )
