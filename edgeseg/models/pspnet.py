"""PSPNet (Zhao et al. 2017): dilated backbone and a pyramid pooling module at 1, 2, 3 and 6 bins."""

from __future__ import annotations

import torch
from torch import nn

from edgeseg.models.common import Backbone, conv_bn_relu, resize_to


class PyramidPooling(nn.Module):
    # Adaptive pooling exports to ONNX only when each bin count divides the feature size, so the
    # graph is fixed to the exported input size (the zoo declares size multiple 8 * 6 = 48).
    def __init__(self, cin: int, bins: tuple[int, ...] = (1, 2, 3, 6)):
        super().__init__()
        branch_channels = cin // len(bins)
        self.branches = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b), conv_bn_relu(cin, branch_channels, 1)) for b in bins
        )
        self.out_channels = cin + branch_channels * len(bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x] + [resize_to(branch(x), x.shape[-2:]) for branch in self.branches], dim=1)


class PSPNet(nn.Module):
    def __init__(self, num_classes: int, width: int = 16, bins: tuple[int, ...] = (1, 2, 3, 6)):
        super().__init__()
        self.backbone = Backbone(width, output_stride=8)
        self.ppm = PyramidPooling(self.backbone.channels[-1], bins)
        self.head = nn.Sequential(
            conv_bn_relu(self.ppm.out_channels, width * 4), nn.Dropout2d(0.1), nn.Conv2d(width * 4, num_classes, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x)[-1]
        return resize_to(self.head(self.ppm(features)), x.shape[-2:])
