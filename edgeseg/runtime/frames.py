"""What flows through the runtime: a captured frame, and the model's answer for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Frame:
    index: int
    image: np.ndarray  # uint8 HxWx3 BGR
    timestamp: float  # time.perf_counter() when it was captured
    label: np.ndarray | None = None  # class map, when the source knows the truth
    tensor: Any = None  # the graph inputs made from `image`, one per model the loop runs (set by the loop)
    stream: int = 0  # which input it came from, in a run with several
    name: str | None = None  # the file it was read from, for sources of single images (a folder)
    instances: np.ndarray | None = None  # uint16 instance ids (0: none), when the source knows them
    keypoints: np.ndarray | None = None  # float32 (objects, K, 3): x, y, COCO visibility, when the source knows them


@dataclass
class Prediction:
    """What the sinks take for one frame: the frame, the plane --save-mask writes, and its records."""

    frame: Frame
    # The ids --save-mask writes as PNG, at model or frame resolution (the sink resizes it to the frame): classes
    # (a semantic bundle, or the one drawn under a keypoint bundle's points) or instances (an instance bundle); None
    # where the kind has none.
    class_map: np.ndarray | None
    logits: np.ndarray | None  # kept only when the overlay upsamples logits
    records: dict | None = None  # --save-mask's JSON: {"detections": [...]} or {"keypoints": [...]}
    answer: Any = None  # the head's Result for this frame (runtime.heads), where the loop made one
