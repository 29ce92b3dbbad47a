"""The exported graph: optional fused preprocessing in front of the model and a fused argmax behind it."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def select_logits(output: Any) -> torch.Tensor:
    """Models return a tensor, a dict (torchvision: {'out': ...}) or a tuple (aux heads): take the main logits."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict):
        return output["out"] if "out" in output else next(iter(output.values()))
    if isinstance(output, (tuple, list)) and output:
        return select_logits(output[0])
    raise TypeError(f"model returned {type(output).__name__}, not a tensor of logits")


class SegmentationGraph(nn.Module):
    """uint8 NHWC BGR frames -> model -> uint8 class map, with either end switchable to float tensors."""

    def __init__(
        self,
        model: nn.Module,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        fuse_preprocess: bool = True,
        fuse_argmax: bool = True,
    ):
        super().__init__()
        self.model = model
        self.fuse_preprocess = fuse_preprocess
        self.fuse_argmax = fuse_argmax
        # (x / 255 - mean) / std folded into (x - 255 mean) * 1 / (255 std): one Sub, one Mul.
        self.register_buffer("offset", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("scale", 1.0 / (torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0))

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC BGR frames -> the normalised NCHW RGB tensor the model was trained on."""
        # The Cast comes first: TensorRT requires a UINT8 network input to feed a Cast directly.
        x = x.to(torch.float32).permute(0, 3, 1, 2)[:, [2, 1, 0]]
        return (x - self.offset) * self.scale

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return select_logits(self.model(self.preprocess(x) if self.fuse_preprocess else x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.logits(x)
        if not self.fuse_argmax:
            return logits
        # ArgMax -> float -> uint8: TensorRT converts UINT8 only to and from floating-point types.
        return logits.argmax(dim=1).to(torch.float32).to(torch.uint8)
