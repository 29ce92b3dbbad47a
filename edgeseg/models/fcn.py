"""FCN-32s/16s/8s (Long, Shelhamer, Darrell 2015): 1x1 conv score layers and skip fusion."""

from __future__ import annotations

import torch
from torch import nn

from edgeseg.models.common import Backbone, conv_bn_relu, resize_to


def bilinear_kernel(channels: int, kernel: int) -> torch.Tensor:
    """Weights that make a per-channel ConvTranspose2d an exact bilinear upsampler (FCN's initialisation)."""
    factor = (kernel + 1) // 2
    center = factor - 1 if kernel % 2 == 1 else factor - 0.5
    grid = torch.arange(kernel, dtype=torch.float32)
    line = 1 - (grid - center).abs() / factor
    weight = torch.zeros(channels, channels, kernel, kernel)
    for c in range(channels):
        weight[c, c] = line[:, None] * line[None, :]
    return weight


class Upsample(nn.Module):
    """Upsample by an integer factor: learnable transposed convolution (bilinear init) or a fixed bilinear resize."""

    def __init__(self, channels: int, factor: int, mode: str):
        super().__init__()
        if mode not in ("transposed", "bilinear"):
            raise ValueError(f"upsample must be 'transposed' or 'bilinear', not {mode!r}")
        self.factor = factor
        self.deconv = None
        if mode == "transposed":
            # kernel 2f, stride f, padding f/2 maps n pixels to exactly n*f.
            self.deconv = nn.ConvTranspose2d(channels, channels, 2 * factor, factor, factor // 2, bias=False)
            with torch.no_grad():
                self.deconv.weight.copy_(bilinear_kernel(channels, 2 * factor))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.deconv is not None:
            return self.deconv(x)
        return resize_to(x, (x.shape[-2] * self.factor, x.shape[-1] * self.factor))


class FCN(nn.Module):
    """`variant` 32, 16 or 8: the stride of the finest skip fused into the prediction."""

    def __init__(self, num_classes: int, width: int = 16, variant: int = 8, upsample: str = "transposed"):
        super().__init__()
        if variant not in (32, 16, 8):
            raise ValueError(f"FCN variant must be 32, 16 or 8, not {variant}")
        self.variant = variant
        self.backbone = Backbone(width)
        c8, c16, c32 = self.backbone.channels[2:]
        # fc6/fc7 of the classifier become convolutions; a 1x1 conv scores each class.
        self.head = nn.Sequential(conv_bn_relu(c32, c32 * 2, 3), conv_bn_relu(c32 * 2, c32 * 2, 1), nn.Dropout2d(0.1))
        self.score32 = nn.Conv2d(c32 * 2, num_classes, 1)
        self.score16 = nn.Conv2d(c16, num_classes, 1) if variant <= 16 else None
        self.score8 = nn.Conv2d(c8, num_classes, 1) if variant == 8 else None
        self.up2_32 = Upsample(num_classes, 2, upsample) if variant <= 16 else None
        self.up2_16 = Upsample(num_classes, 2, upsample) if variant == 8 else None
        self.up_final = Upsample(num_classes, variant, upsample)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, s8, s16, s32 = self.backbone(x)
        score = self.score32(self.head(s32))
        if self.score16 is not None:
            score = self.up2_32(score) + self.score16(s16)
        if self.score8 is not None:
            score = self.up2_16(score) + self.score8(s8)
        return self.up_final(score)
