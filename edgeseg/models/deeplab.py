"""DeepLabV3 (Chen et al. 2017) and DeepLabV3+ (Chen et al. 2018): atrous backbone, ASPP, light decoder."""

from __future__ import annotations

import torch
from torch import nn

from edgeseg.models.common import Backbone, conv_bn_relu, resize_to, separable_conv


class ImagePooling(nn.Module):
    """ASPP's image-level branch: global context, broadcast back to the feature map."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.project = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resize_to(self.project(self.pool(x)), x.shape[-2:])


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: a 1x1 branch, three atrous branches and image pooling."""

    def __init__(self, cin: int, cout: int, rates: tuple[int, ...] = (6, 12, 18), separable: bool = False):
        super().__init__()
        atrous = (
            (lambda r: separable_conv(cin, cout, dilation=r))
            if separable
            else (lambda r: conv_bn_relu(cin, cout, 3, dilation=r))
        )
        self.branches = nn.ModuleList(
            [conv_bn_relu(cin, cout, 1)] + [atrous(r) for r in rates] + [ImagePooling(cin, cout)]
        )
        self.project = nn.Sequential(conv_bn_relu(cout * len(self.branches), cout, 1), nn.Dropout2d(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.branches], dim=1))


class DeepLabV3(nn.Module):
    def __init__(
        self, num_classes: int, width: int = 16, output_stride: int = 16, rates: tuple[int, ...] = (6, 12, 18)
    ):
        super().__init__()
        self.backbone = Backbone(width, output_stride)
        self.aspp = ASPP(self.backbone.channels[-1], width * 8, rates)
        self.classifier = nn.Conv2d(width * 8, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x)[-1]
        return resize_to(self.classifier(self.aspp(features)), x.shape[-2:])


class DeepLabV3Plus(nn.Module):
    """Separable backbone and ASPP, plus a decoder that refines with stride-4 low-level features."""

    def __init__(
        self, num_classes: int, width: int = 16, output_stride: int = 16, rates: tuple[int, ...] = (6, 12, 18)
    ):
        super().__init__()
        self.backbone = Backbone(width, output_stride, separable=True)
        aspp_channels = width * 8
        self.aspp = ASPP(self.backbone.channels[-1], aspp_channels, rates, separable=True)
        low_channels = width * 3
        self.low_level = conv_bn_relu(self.backbone.channels[1], low_channels, 1)
        self.decoder = nn.Sequential(
            separable_conv(aspp_channels + low_channels, aspp_channels),
            separable_conv(aspp_channels, aspp_channels),
        )
        self.classifier = nn.Conv2d(aspp_channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x)
        low = self.low_level(features[1])
        high = resize_to(self.aspp(features[-1]), low.shape[-2:])
        logits = self.classifier(self.decoder(torch.cat([high, low], dim=1)))
        return resize_to(logits, x.shape[-2:])
