"""The exported graph: optional fused preprocessing in front of the model and a fused argmax behind it."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def select_logits(output: Any, threshold_logit: float = 0.0) -> torch.Tensor:
    """Models return a tensor, a dict (torchvision: {'out': ...}) or a tuple (aux heads): take the main logits.

    A binary model's one channel z (N x 1 x H x W, or N x H x W) becomes two, [threshold, z]: the argmax of every
    multi-class model is then the binary one's z > threshold (logit > 0 is sigmoid > 0.5), ties to background, and
    parity, fidelity, overlay and deploy treat it as the two-class model it is."""
    if isinstance(output, dict) and output:
        return select_logits(output["out"] if "out" in output else next(iter(output.values())), threshold_logit)
    if isinstance(output, (tuple, list)) and output:
        return select_logits(output[0], threshold_logit)
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"model returned {type(output).__name__}, not a tensor of logits")
    if output.dim() == 3:
        output = output.unsqueeze(1)
    if output.dim() == 4 and output.shape[1] == 1:
        return torch.cat([torch.full_like(output, threshold_logit), output], 1)
    return output


class SegmentationGraph(nn.Module):
    """uint8 NHWC BGR frames -> model -> uint8 class map, with either end switchable to float tensors."""

    def __init__(
        self,
        model: nn.Module,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        fuse_preprocess: bool = True,
        fuse_argmax: bool = True,
        threshold_logit: float = 0.0,
    ):
        super().__init__()
        self.model = model
        self.threshold_logit = threshold_logit  # binary models: foreground where the one logit is above it
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
        return select_logits(self.model(self.preprocess(x) if self.fuse_preprocess else x), self.threshold_logit)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.logits(x)
        if not self.fuse_argmax:
            return logits
        # ArgMax -> float -> uint8: TensorRT converts UINT8 only to and from floating-point types.
        return logits.argmax(dim=1).to(torch.float32).to(torch.uint8)
