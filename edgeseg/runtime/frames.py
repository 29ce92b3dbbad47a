"""What flows through the runtime: a captured frame, and the model's answer for it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Frame:
    index: int
    image: np.ndarray  # uint8 HxWx3 BGR
    timestamp: float  # time.perf_counter() when it was captured
    label: np.ndarray | None = None  # class map, when the source knows the truth
    tensor: np.ndarray | None = None  # the graph input made from `image` (set by the pipeline)
    stream: int = 0  # which input it came from, in a run with several
    name: str | None = None  # the file it was read from, for sources of single images (a folder)
    instances: np.ndarray | None = None  # uint16 instance ids (0: none), when the source knows them
    keypoints: np.ndarray | None = None  # float32 (objects, K, 3): x, y, COCO visibility, when the source knows them


@dataclass
class Prediction:
    frame: Frame
    class_map: np.ndarray | None  # uint8 at model resolution; None where the model gives none (keypoints alone)
    logits: np.ndarray | None  # kept only when the overlay upsamples logits
    # Instance bundles: class_map holds instance ids at frame resolution, and this is {"detections": one record per
    # id (id, class, score, box)}; keypoint bundles: {"keypoints": one record per peak drawn}. --save-mask's JSON.
    records: dict | None = None
