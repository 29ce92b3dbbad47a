"""LR-ASPP (Howard et al. 2019, MobileNetV3): a gated 1x1 branch on stride-16 features plus a stride-8 skip."""

from __future__ import annotations

import torch
from torch import nn

from edgeseg.models.common import Backbone, conv_bn_relu, resize_to


class LRASPP(nn.Module):
    def __init__(self, num_classes: int, width: int = 16, inter_channels: int | None = None):
        super().__init__()
        self.backbone = Backbone(width, output_stride=16, separable=True)
        high_channels, low_channels = self.backbone.channels[-1], self.backbone.channels[2]
        inter = inter_channels or width * 8
        self.context = conv_bn_relu(high_channels, inter, 1)
        # Squeeze-and-excite style gate from global context; replaces the atrous pyramid cheaply.
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(high_channels, inter, 1), nn.Sigmoid())
        self.high_classifier = nn.Conv2d(inter, num_classes, 1)
        self.low_classifier = nn.Conv2d(low_channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x)
        low, high = features[2], features[-1]
        gated = self.context(high) * self.gate(high)
        logits = self.high_classifier(resize_to(gated, low.shape[-2:])) + self.low_classifier(low)
        return resize_to(logits, x.shape[-2:])
