"""Stacked hourglass network (Newell, Yang and Deng, 2016) for keypoint heatmaps, and the peak decoder that can
be fused into its graph.

Each hourglass pools down to 1/64 of the input and back up with nearest-neighbour upsampling, adding a
residual skip at every resolution; stacks are chained, each with its own heatmap head (intermediate
supervision while training) whose heatmaps and features are merged back into the trunk for the next
stack. Heatmaps come out at 1/4 of the input size, one per keypoint.

The decoder takes each heatmap's highest local maxima (one per object it may show) and moves each a
quarter cell towards the higher of its two neighbours along each axis (Newell et al.'s refinement),
rather than a soft-argmax: the medical scene can show two graspers, whose tips are two peaks in one
heatmap, and a soft-argmax would average them into a point between the two, where neither tip is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.models.common import conv_bn_relu


class Residual(nn.Module):
    """The hourglass' bottleneck block: 1x1 down to half the channels, 3x3, 1x1 back up, plus the input
    (through a 1x1 where the channel count changes)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        half = max(cout // 2, 1)
        self.body = nn.Sequential(
            conv_bn_relu(cin, half, 1),
            conv_bn_relu(half, half, 3),
            nn.Conv2d(half, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.skip(x))


class Hourglass(nn.Module):
    """One hourglass of `depth` levels: at each, a skip at this resolution plus the level below, pooled down
    and upsampled back (nearest, to the skip's size, so odd sizes line up)."""

    def __init__(self, depth: int, channels: int):
        super().__init__()
        self.skip = Residual(channels, channels)
        self.down = Residual(channels, channels)
        self.inner = Hourglass(depth - 1, channels) if depth > 1 else Residual(channels, channels)
        self.up = Residual(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.up(self.inner(self.down(F.max_pool2d(x, 2))))
        return self.skip(x) + F.interpolate(low, size=x.shape[-2:], mode="nearest")


class StackedHourglass(nn.Module):
    """Stem to 1/4 resolution, then `stacks` hourglasses, each followed by a heatmap head; every stack but the
    last merges its features and heatmaps back into the trunk. Training returns every stack's heatmaps
    (intermediate supervision); evaluation and export return the last stack's."""

    def __init__(self, num_keypoints: int, stacks: int = 2, width: int = 32, depth: int = 4):
        super().__init__()
        if stacks < 1 or depth < 1:
            raise ValueError("stacks and depth are at least 1")
        self.stem = nn.Sequential(
            conv_bn_relu(3, width // 2, 7, stride=2),
            Residual(width // 2, width),
            nn.MaxPool2d(2),
            Residual(width, width),
        )
        self.hourglasses = nn.ModuleList(Hourglass(depth, width) for _ in range(stacks))
        self.features = nn.ModuleList(
            nn.Sequential(Residual(width, width), conv_bn_relu(width, width, 1)) for _ in range(stacks)
        )
        self.heads = nn.ModuleList(nn.Conv2d(width, num_keypoints, 1) for _ in range(stacks))
        self.merge_features = nn.ModuleList(nn.Conv2d(width, width, 1) for _ in range(stacks - 1))
        self.merge_heatmaps = nn.ModuleList(nn.Conv2d(num_keypoints, width, 1) for _ in range(stacks - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        trunk = self.stem(x)
        heatmaps = []
        for index, hourglass in enumerate(self.hourglasses):
            features = self.features[index](hourglass(trunk))
            heatmaps.append(self.heads[index](features))
            if index < len(self.merge_features):
                trunk = trunk + self.merge_features[index](features) + self.merge_heatmaps[index](heatmaps[-1])
        return heatmaps if self.training else heatmaps[-1]


def decode_peaks(heatmaps: torch.Tensor, stride: int = 4, peaks: int = 1) -> torch.Tensor:
    """The `peaks` highest local maxima of each heatmap as (x, y, confidence) in input pixels:
    (N, K, H, W) -> (N, K, peaks, 3), highest first.

    A local maximum is a cell no lower than its 3x3 neighbourhood (a max-pool compares them), so two
    graspers' tips are two peaks and a tip's shoulder is none. Each is moved a quarter cell towards the higher
    neighbour along x and along y, then mapped from heatmap cells to input pixels (a cell's centre is at
    (i + 0.5) * stride - 0.5). Confidence is the peak's height, clamped to 0..1 (0 where fewer peaks exist). The
    neighbours are read from the heatmap padded with a low value, so a peak on the border moves inwards and
    the indices need no clamping
    (TensorRT's Clip takes no integers). MaxPool, TopK, Pad, Gather and arithmetic only: what TensorRT parses
    on every JetPack.
    """
    batch, keypoints, height, width = heatmaps.shape
    flat = heatmaps.reshape(batch, keypoints, height * width)
    neighbourhood = F.max_pool2d(heatmaps, 3, stride=1, padding=1)
    not_peak = (heatmaps < neighbourhood).to(heatmaps.dtype).reshape(batch, keypoints, height * width)
    # A cell that is not a local maximum scores 1e4 lower, so it comes after every peak with confidence ~0.
    value, peak = (flat - 1e4 * not_peak).topk(peaks, dim=2)
    y, x = peak // width, peak % width
    padded = F.pad(heatmaps, (1, 1, 1, 1), value=-1e4).reshape(batch, keypoints, (height + 2) * (width + 2))
    centre = (y + 1) * (width + 2) + (x + 1)

    def neighbour(offset: int) -> torch.Tensor:
        return padded.gather(2, centre + offset)

    shift_x = 0.25 * torch.sign(neighbour(1) - neighbour(-1))
    shift_y = 0.25 * torch.sign(neighbour(width + 2) - neighbour(-(width + 2)))
    px = (x.to(heatmaps.dtype) + shift_x + 0.5) * stride - 0.5
    py = (y.to(heatmaps.dtype) + shift_y + 0.5) * stride - 0.5
    # Heatmaps are trained towards Gaussians of height 1 (keypoint_train): the peak's height is its confidence.
    return torch.stack([px, py, value.clamp(0, 1)], dim=3)
