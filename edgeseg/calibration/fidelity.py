"""What a precision variant costs: agreement with FP32 on held-out frames, mIoU, per-class IoU, worst frames.

A fidelity measure (ClassMapFidelity here, InstanceFidelity and KeypointFidelity for the other kinds; the kind's
calibration profile, profiles.py, names it) gives calibrate three things: `value(path)`, the figure
--min-agreement's search compares with `target`; `loss(path)`, the loss that ranks layers by sensitivity (on a few
frames: it is measured once per layer); and `report(path, stem, label)`, the fidelity section of the artifact's
manifest entry.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from edgeseg.bundle import Bundle
from edgeseg.calibration.dataset import HeldOut
from edgeseg.classes import label_lookup
from edgeseg.errors import EdgesegError
from edgeseg.fileio import write_image_atomic
from edgeseg.metrics import IGNORE, confusion_matrix, scores
from edgeseg.runtime.backends import ONNXRuntimeBackend
from edgeseg.runtime.overlay import Overlay
from edgeseg.runtime.tensors import class_maps


@dataclass
class Predictions:
    maps: list[np.ndarray]  # class maps at model resolution, one per held-out frame

    def agreement(self, other: Predictions) -> np.ndarray:
        return np.array([(a == b).mean() for a, b in zip(self.maps, other.maps)])


SENSITIVITY_FRAMES = 16
# What `--precision best` runs without a --min-agreement: the calibrated demos' variants agree 99.7-100% with FP32;
# a variant below 99% changes the answer on more than one pixel in a hundred.
DEFAULT_MIN_AGREEMENT = 0.99


class FidelityMeasure(Protocol):
    """What calibrate asks of a kind of bundle's fidelity (see the module's docstring)."""

    metric: str  # the manifest's name for value(): agreement, mask_ap
    option: str  # the flag that sets target
    target: float | None  # value() must reach it; None: no search

    def value(self, path: Path) -> float: ...

    def loss(self, path: Path) -> float: ...

    def describe(self, value: float) -> str: ...

    def report(self, path: Path, stem: str, label: str) -> dict[str, Any]: ...

    def accepts(self, fidelity: dict[str, Any]) -> bool: ...

    def bar(self) -> str: ...

    def provenance(self) -> dict[str, Any]: ...


class ClassMapFidelity:
    """Semantic bundles: pixel agreement of class maps with FP32; mIoU when the frames have labels."""

    metric, option = "agreement", "--min-agreement"
    default_target = DEFAULT_MIN_AGREEMENT  # what FP16's search reaches for without a --min-agreement

    def __init__(self, bundle: Bundle, fp32_path: Path, held_out: HeldOut, threads: int | None,
                 min_agreement: float | None):  # fmt: skip
        self.bundle, self.frames, self.threads = bundle, held_out.frames, threads
        self.num_classes = len(bundle.classes)
        self.labels = comparable_labels(held_out, [c.name for c in bundle.classes])
        self.reference = predict(fp32_path, bundle, self.frames, threads)
        warn_if_one_class(self.reference, bundle)
        self.reference_accuracy = (
            accuracy(self.reference, self.labels, self.num_classes) if self.labels is not None else None
        )
        self.target = min_agreement

    def value(self, path: Path, frames: int | None = None) -> float:
        subset = self.frames[:frames] if frames else self.frames
        variant = predict(path, self.bundle, subset, self.threads)
        return float(variant.agreement(Predictions(self.reference.maps[: len(subset)])).mean())

    def loss(self, path: Path) -> float:
        return 1.0 - self.value(path, SENSITIVITY_FRAMES)

    def describe(self, value: float) -> str:
        return f"agreement {value:.4%}"

    def report(self, path: Path, stem: str, label: str) -> dict[str, Any]:
        variant = predict(path, self.bundle, self.frames, self.threads)
        result = fidelity(self.reference, variant, self.labels, self.num_classes, self.reference_accuracy)
        result["worst_frames"] = save_worst_frames(self.bundle, stem, self.frames, self.reference, variant, label)
        return result

    def accepts(self, fidelity: dict[str, Any]) -> bool:
        return fidelity["agreement"] >= (self.target or DEFAULT_MIN_AGREEMENT)

    def bar(self) -> str:
        if self.target is not None:
            return f"--min-agreement {self.target:.2%}"
        return f"the default bar of {DEFAULT_MIN_AGREEMENT:.0%} agreement (set another with --min-agreement)"

    def provenance(self) -> dict[str, Any]:
        return {"fp32_miou": self.reference_accuracy["miou"]} if self.reference_accuracy is not None else {}


def comparable_labels(held_out: HeldOut, model_names: list[str]) -> list[np.ndarray] | None:
    """The held-out labels in the model's class ids, or None (agreement only) where they mean other classes."""
    if held_out.labels is None:
        return None
    labels = labels_as_model_classes(held_out.labels, held_out.label_names, model_names)
    if isinstance(labels, str):
        print(f"edgeseg: note: mIoU not measured: {labels}; fidelity is agreement with FP32 only", file=sys.stderr)
        return None
    return labels


def labels_as_model_classes(
    labels: list[np.ndarray], label_names: list[str] | None, model_names: list[str]
) -> list[np.ndarray] | str:
    """Labels in the model's class ids, or why they cannot be scored against it (another class set, or a class past
    the model's): the one rule calibrate, eval and bench score mIoU by."""
    try:
        lookup = label_lookup(label_names, model_names)
        highest = max(int(label[label != IGNORE].max(initial=0)) for label in labels)
        if lookup[highest] >= len(model_names):
            raise EdgesegError(f"the labels hold class {highest}, past the model's {len(model_names)} classes")
    except EdgesegError as reason:
        return str(reason)
    return [lookup[label].astype(np.uint8) for label in labels]


# Where FP32 gives one class to this share of the held-out pixels, agreement with it measures little.
ONE_CLASS_SHARE = 0.99


def warn_if_one_class(reference: Predictions, bundle: Bundle) -> None:
    counts = np.bincount(np.concatenate([m.ravel() for m in reference.maps]), minlength=len(bundle.classes))
    share = counts.max() / max(counts.sum(), 1)
    if share >= ONE_CLASS_SHARE:
        name = bundle.classes[int(counts.argmax())].name
        print(
            f"edgeseg: warning: FP32 predicts '{name}' on {share:.2%} of the held-out pixels: agreement with it says "
            "little about INT8 or FP16; calibrate and measure on frames where the model sees several classes",
            file=sys.stderr,
        )


def predict(model_path: Path, bundle: Bundle, frames: list[np.ndarray], threads: int | None = None) -> Predictions:
    with ONNXRuntimeBackend(model_path, providers=["CPUExecutionProvider"], threads=threads) as backend:
        return Predictions(class_maps(backend, frames, bundle.input, bundle.output))


def accuracy(predictions: Predictions, labels: list[np.ndarray], num_classes: int) -> dict[str, Any]:
    confusion = np.zeros((num_classes, num_classes), np.int64)
    for class_map, label in zip(predictions.maps, labels):
        upsampled = cv2.resize(class_map, label.shape[::-1], interpolation=cv2.INTER_NEAREST)
        confusion += confusion_matrix(upsampled, label, num_classes)
    return scores(confusion)


def fidelity(
    reference: Predictions,
    variant: Predictions,
    labels: list[np.ndarray] | None,
    num_classes: int,
    reference_accuracy: dict[str, Any] | None,
) -> dict[str, Any]:
    per_frame = variant.agreement(reference)
    result: dict[str, Any] = {
        "frames": len(per_frame),
        "agreement": float(per_frame.mean()),
        "worst_frame_agreement": float(per_frame.min()),
    }
    if labels is not None and reference_accuracy is not None:
        mine = accuracy(variant, labels, num_classes)
        result.update(
            miou=mine["miou"],
            fp32_miou=reference_accuracy["miou"],
            miou_change=mine["miou"] - reference_accuracy["miou"],
            per_class_iou=mine["per_class_iou"],
            per_class_iou_change=[
                None if a is None or b is None else a - b
                for a, b in zip(mine["per_class_iou"], reference_accuracy["per_class_iou"])
            ],
        )
    return result


def save_worst_frames(
    bundle: Bundle,
    stem: str,
    frames: list[np.ndarray],
    reference: Predictions,
    variant: Predictions,
    label: str,
    count: int = 4,
) -> list[str]:
    """Side-by-side PNGs of the frames where the variant disagrees most: frame | FP32 | variant | difference."""
    overlay = Overlay(bundle.classes, alpha=1.0, filter_mode="point", visualize="mask", legend=False)
    per_frame = variant.agreement(reference)
    written = []
    for rank, index in enumerate(np.argsort(per_frame)[:count]):
        frame = frames[index].copy()  # captions are drawn on the panels
        size = frame.shape[:2]
        # colorize reuses its output buffer: copy each mask before drawing the next.
        fp32_mask, variant_mask = (overlay.colorize(p.maps[index], size).copy() for p in (reference, variant))
        differs = cv2.resize(
            (reference.maps[index] != variant.maps[index]).astype(np.uint8), size[::-1], interpolation=cv2.INTER_NEAREST
        ).astype(bool)
        difference = (cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR) // 3).astype(np.uint8)
        difference[differs] = (0, 0, 255)
        panels = [(frame, "frame"), (fp32_mask, "FP32"), (variant_mask, label),
                  (difference, f"differs: {100 * (1 - per_frame[index]):.2f}%")]  # fmt: skip
        written.append(write_panels(bundle, f"{stem}-worst{rank + 1}.png", panels))
    return written


def write_panels(bundle: Bundle, name: str, panels: list[tuple[np.ndarray, str]]) -> str:
    """One PNG in the bundle's fidelity/ folder: the panels side by side, each captioned (drawn into it); its path
    relative to the bundle."""
    folder = bundle.root / "fidelity"
    folder.mkdir(exist_ok=True)
    for panel, caption in panels:
        cv2.putText(panel, caption, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    path = folder / name
    write_image_atomic(path, np.hstack([panel for panel, _ in panels]))
    return str(path.relative_to(bundle.root))
