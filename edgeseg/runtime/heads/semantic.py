"""Semantic bundles (output kinds `class_map` and `logits`): a class per pixel, drawn by the Overlay.

The graph answers a class map (argmax fused) or logits at model resolution. The class map stays at model resolution
through the loop: the overlay colours it there and resizes the colours (cheaper than a lookup at frame size), and
--save-mask's sink resizes it to the frame, nearest. `Result.class_map` is that same nearest resize, made on first
use, so the API's answer is the PNG `run --save-mask` writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from edgeseg.bundle import Bundle
from edgeseg.runtime.heads.base import Head, Result
from edgeseg.runtime.overlay import Overlay
from edgeseg.runtime.tensors import output_to_class_maps


@dataclass
class ClassMaps:
    """A semantic answer as the graph gave it: the class map at model resolution, and its logits where the overlay
    upsamples them (--filter-mode linear on a logits graph)."""

    class_map: np.ndarray  # uint8 (h, w)
    logits: np.ndarray | None = None  # float (C, h, w)


class SemanticHead(Head):
    kinds = ("class_map", "logits")
    what = "a semantic segmentation model"

    def __init__(self, bundle: Bundle, options: Any = None):
        super().__init__(bundle, options)
        o = self.options
        self.overlay = Overlay(bundle.classes, o.alpha, o.filter_mode, o.visualize, o.legend)
        self.keep_logits = bundle.output.kind == "logits" and self.overlay.filter_mode == "linear"

    def decode(self, outputs: Any, frame_sizes: list[tuple[int, int]]) -> list[Result]:
        maps = output_to_class_maps(outputs, self.bundle.output)
        return [
            Result(self, size, ClassMaps(maps[i], outputs[i] if self.keep_logits else None))
            for i, size in enumerate(frame_sizes)
        ]

    def draw(self, image: np.ndarray, result: Result, readout: str = "") -> np.ndarray:
        return self.overlay.render(self.under_drawn(image, result), result.answer.class_map, result.answer.logits,
                                   readout)  # fmt: skip

    def class_map(self, result: Result) -> np.ndarray | None:
        if "class_map" not in result.cache:
            small = result.answer.class_map
            height, width = result.frame_size
            result.cache["class_map"] = (
                small if small.shape[:2] == (height, width)
                else cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)
            )  # fmt: skip
        return result.cache["class_map"]

    def mask_plane(self, result: Result) -> np.ndarray | None:
        return result.answer.class_map
