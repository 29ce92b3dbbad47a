"""What training a heatmap model needs: the target heatmaps of labelled keypoints, and the loss over every stack.

Targets follow the stacked hourglass paper: per keypoint, a 2-D Gaussian (sigma in heatmap cells) at each
labelled point of every object, the maximum where two overlap, at the heatmap's resolution. A point that
is hidden (COCO visibility 1) is still a target: the scene says where it is, and the network learns to
infer it; a point outside the field (visibility 0) is none. The loss is the squared error of every
stack's heatmaps (intermediate supervision), summed, weighted towards the targets' peaks.
"""

from __future__ import annotations

import numpy as np
import torch


def heatmap_targets(
    keypoints: np.ndarray, size: tuple[int, int], stride: int = 4, sigma: float = 1.5
) -> np.ndarray:
    """(objects, K, 3) keypoints in input pixels -> (K, H / stride, W / stride) float32 target heatmaps."""
    height, width = size[0] // stride, size[1] // stride
    targets = np.zeros((keypoints.shape[1], height, width), np.float32)
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]
    for points in keypoints:
        for k, (x, y, visibility) in enumerate(points):
            if visibility <= 0:
                continue
            # Input pixel -> heatmap cell: the inverse of decode_peaks' (i + 0.5) * stride - 0.5.
            cx, cy = (x + 0.5) / stride - 0.5, (y + 0.5) / stride - 0.5
            gaussian = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma * sigma))
            np.maximum(targets[k], gaussian, out=targets[k])
    return targets


def heatmap_loss(
    predictions: list[torch.Tensor] | torch.Tensor, targets: torch.Tensor, foreground_weight: float = 20.0
) -> torch.Tensor:
    """Squared error of each stack's heatmaps against the targets, summed over the stacks. Each cell's error is
    weighted by 1 + foreground_weight * target: a few grasper points cover well under 1% of a heatmap, and
    with plain MSE an all-zero answer is so close to optimal that training sits there for thousands of steps."""
    stacks = predictions if isinstance(predictions, list) else [predictions]
    weight = 1 + foreground_weight * targets
    return sum(torch.mean(weight * (heatmaps - targets) ** 2) for heatmaps in stacks)
