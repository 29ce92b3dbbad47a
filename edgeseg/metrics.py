"""Segmentation accuracy from a confusion matrix: mIoU, per-class IoU, pixel accuracy."""

from __future__ import annotations

import numpy as np

IGNORE = 255  # the label of a pixel a dataset leaves unscored (edgeseg.data.layouts uses it too)


def confusion_matrix(predicted: np.ndarray, truth: np.ndarray, num_classes: int) -> np.ndarray:
    """counts[t, p]: pixels of true class t predicted as p (one bincount, no Python loop); pixels labelled IGNORE
    (255: a dataset's void, border or unlabelled) count nowhere."""
    scored = truth.ravel() != IGNORE
    index = truth.ravel()[scored].astype(np.int64) * num_classes + predicted.ravel()[scored].astype(np.int64)
    return np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def scores(confusion: np.ndarray) -> dict[str, object]:
    """mIoU over classes present in the truth or the prediction; classes absent from both are NaN and skipped."""
    confusion = confusion.astype(np.float64)
    true_positive = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - true_positive
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, true_positive / union, np.nan)
    total = confusion.sum()
    return {
        "miou": float(np.nanmean(iou)) if np.isfinite(iou).any() else 0.0,
        "pixel_accuracy": float(true_positive.sum() / total) if total else 0.0,
        "per_class_iou": [None if np.isnan(v) else float(v) for v in iou],
    }
