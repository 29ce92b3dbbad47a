"""Models a user might point `edgeseg export package.module:function` at."""

import torch
from torch import nn


class TorchvisionStyle(nn.Module):
    """Returns {'out': logits} like torchvision's segmentation models."""

    def __init__(self, num_classes: int = 4):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, num_classes, 1))

    def forward(self, x):
        return {"out": self.body(x), "aux": self.body(x) * 0.5}


def tiny_net(num_classes: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return TorchvisionStyle(num_classes)


def random_net(num_classes: int = 4) -> nn.Module:
    """Initialised randomly at every call, as a user's untrained architecture is."""
    return TorchvisionStyle(num_classes)


def not_a_model():
    return 42


def broken():
    raise RuntimeError("weights server unreachable")
