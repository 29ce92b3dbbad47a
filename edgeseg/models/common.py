"""Building blocks shared by the seed families: conv-BN-ReLU, separable convs, a small dilatable backbone."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(
    cin: int, cout: int, kernel: int = 3, stride: int = 1, dilation: int = 1, groups: int = 1
) -> nn.Sequential:
    padding = dilation * (kernel - 1) // 2
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, padding, dilation=dilation, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def separable_conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """Depthwise 3x3 (optionally atrous) then pointwise 1x1: the DeepLabV3+/MobileNet factorisation."""
    return nn.Sequential(
        conv_bn_relu(cin, cin, 3, stride, dilation, groups=cin),
        conv_bn_relu(cin, cout, 1),
    )


def resize_to(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    # align_corners=False exports as Resize(linear, half_pixel), which every TensorRT version parses.
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def plain_conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return conv_bn_relu(cin, cout, 3, stride, dilation)


class Backbone(nn.Module):
    """Five stages at strides 2, 4, 8, 16, 32.

    `output_stride` 8 or 16 turns the later strides into dilation (atrous convolution), keeping
    resolution while growing the receptive field, as DeepLab and PSPNet do.
    """

    def __init__(self, width: int = 16, output_stride: int = 32, separable: bool = False):
        super().__init__()
        self.channels = [width, width * 2, width * 4, width * 8, width * 8]
        block = separable_conv if separable else plain_conv
        self.stem = conv_bn_relu(3, width, 3, stride=2)
        stages, stride, dilation = [], 2, 1
        for cin, cout in zip(self.channels[:-1], self.channels[1:]):
            if stride < output_stride:
                stride *= 2
                first = block(cin, cout, stride=2, dilation=dilation)
            else:
                # Past the output stride: keep resolution, widen the receptive field instead.
                first = block(cin, cout, stride=1, dilation=dilation)
                dilation *= 2
            stages.append(nn.Sequential(first, block(cout, cout, dilation=dilation)))
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = [self.stem(x)]
        for stage in self.stages:
            features.append(stage(features[-1]))
        return features
