"""U-Net (Ronneberger et al. 2015): symmetric encoder-decoder with concatenated skips."""

from __future__ import annotations

import torch
from torch import nn

from edgeseg.models.common import conv_bn_relu, resize_to


def double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(conv_bn_relu(cin, cout), conv_bn_relu(cout, cout))


class UNet(nn.Module):
    def __init__(self, num_classes: int, width: int = 16, depth: int = 4, upsample: str = "transposed"):
        super().__init__()
        if upsample not in ("transposed", "bilinear"):
            raise ValueError(f"upsample must be 'transposed' or 'bilinear', not {upsample!r}")
        widths = [width * 2**i for i in range(depth + 1)]
        self.encoders = nn.ModuleList(
            [double_conv(3, widths[0])] + [double_conv(a, b) for a, b in zip(widths[:-1], widths[1:])]
        )
        self.pool = nn.MaxPool2d(2)
        self.ups = nn.ModuleList(
            nn.ConvTranspose2d(b, a, 2, stride=2) if upsample == "transposed" else nn.Conv2d(b, a, 1)
            for a, b in zip(widths[:-1], widths[1:])
        )
        self.bilinear = upsample == "bilinear"
        self.decoders = nn.ModuleList(double_conv(2 * a, a) for a in widths[:-1])
        self.classifier = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for index, encoder in enumerate(self.encoders):
            x = encoder(x if index == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for up, decoder in zip(reversed(self.ups), reversed(self.decoders)):
            skip = skips.pop()
            x = up(resize_to(x, skip.shape[-2:])) if self.bilinear else up(x)
            x = decoder(torch.cat([x, skip], dim=1))
        return self.classifier(x)
