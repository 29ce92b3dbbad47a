"""Accuracy: segmentation's from a confusion matrix (mIoU, per-class IoU, pixel accuracy), and keypoints'
(distance to the truth, PCK)."""

from __future__ import annotations

from typing import Any

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


def keypoint_distances(predicted: np.ndarray, truth: np.ndarray, min_confidence: float = 0.5) -> np.ndarray:
    """Per seen truth point (COCO visibility 2), the distance in pixels to the nearest predicted peak of the same
    keypoint with at least `min_confidence` (inf where there is none): (points, 2) rows of (keypoint, distance).

    predicted is (K, peaks, 3) of x, y, confidence; truth is (objects, K, 3) of x, y, visibility. Each object's
    point is matched to its nearest peak, so two graspers' tips are scored against the two peaks.
    """
    rows = []
    for points in truth:
        for k, (x, y, visibility) in enumerate(points):
            if visibility != 2:
                continue
            peaks = predicted[k][predicted[k][:, 2] >= min_confidence]
            distance = np.hypot(peaks[:, 0] - x, peaks[:, 1] - y).min() if len(peaks) else np.inf
            rows.append((k, distance))
    return np.array(rows, np.float64).reshape(-1, 2)


def pck(distances: np.ndarray, threshold_px: float) -> float:
    """The share of seen truth points found within threshold_px (PCK; the threshold is a fraction of the frame's
    diagonal in edgeseg's reports)."""
    return float(np.mean(distances[:, 1] <= threshold_px)) if len(distances) else 0.0


def keypoint_scores(answers: list[np.ndarray], truths: list[np.ndarray], names: tuple[str, ...] | list[str],
                    min_confidence: float, frame_size: tuple[int, int]) -> dict[str, Any]:  # fmt: skip
    """PCK at 5% and 10% of the frame's diagonal and the mean error of the points found (a peak of the same keypoint
    with at least `min_confidence` exists), over all keypoints and per keypoint: each frame's peaks (K, peaks, 3)
    against its labels (objects, K, 3), frames of one (height, width)."""
    rows = [keypoint_distances(peaks, truth, min_confidence) for peaks, truth in zip(answers, truths)]
    distances = np.concatenate(rows) if rows else np.zeros((0, 2))
    diagonal = float(np.hypot(*frame_size))

    def figures(rows: np.ndarray) -> dict[str, Any]:
        found = rows[np.isfinite(rows[:, 1]), 1]
        if not len(rows):  # a keypoint never seen in these frames: no figure rather than a zero
            return {"points": 0, "pck05": None, "pck10": None, "mean_error_px": None}
        return {"points": int(len(rows)), "pck05": pck(rows, 0.05 * diagonal), "pck10": pck(rows, 0.1 * diagonal),
                "mean_error_px": float(found.mean()) if len(found) else None}  # fmt: skip

    per_keypoint = {name: figures(distances[distances[:, 0] == k]) for k, name in enumerate(names)}
    return {**figures(distances), "diagonal_px": diagonal, "per_keypoint": per_keypoint}


def peak_shifts(reference: np.ndarray, variant: np.ndarray, min_confidence: float) -> np.ndarray:
    """How far each confident peak of `reference` (K, peaks, 3) lies from the variant's nearest confident peak of the
    same keypoint, in pixels (inf where the variant has none): what a precision change did to a model's answer."""
    return keypoint_distances(variant, peaks_as_truth(reference, min_confidence), min_confidence)[:, 1]


def peaks_as_truth(peaks: np.ndarray, min_confidence: float) -> np.ndarray:
    """A model's peaks (K, peaks, 3) as keypoint labels (peaks, K, 3): each peak rank an object, seen (COCO
    visibility 2) where confident, absent (0) elsewhere."""
    truth = peaks.transpose(1, 0, 2).copy()
    truth[..., 2] = np.where(truth[..., 2] >= min_confidence, 2, 0)
    return truth
