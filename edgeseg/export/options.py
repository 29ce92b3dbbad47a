"""What `edgeseg export` is asked for."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeseg.bundle import IMAGENET_MEAN, IMAGENET_STD, ClassInfo

MODEL_FILE = "model.onnx"
DEFAULT_SIZE = (256, 256)
EXTERNAL_DATA_LIMIT = 1_800_000_000  # protobuf's 2 GB cap, with headroom for the graph itself


@dataclass
class ExportOptions:
    size: tuple[int, int] | None = None  # height, width; None: the zoo entry's size, else DEFAULT_SIZE
    classes: list[ClassInfo] | None = None
    weights: Path | None = None
    opset: int = 17
    batch: int = 1
    dynamic_batch: bool = False
    dynamic_size: bool = False
    fuse_preprocess: bool = True
    fuse_argmax: bool = True
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    model_options: dict[str, Any] = field(default_factory=dict)
    force: bool = False
    progress: bool = True
    threshold: float | None = None  # binary (one-channel) models: foreground where sigmoid > this (None: 0.5)
    max_detections: int = 50  # instance models: the fixed number of detections the graph answers with
