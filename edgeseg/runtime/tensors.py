"""Frames to graph input and graph output to class maps: the one definition every stage uses.

Calibration and parity checks call these same functions, so a calibrated graph sees exactly the
tensors the runtime feeds it.
"""

from __future__ import annotations

from typing import TypeVar

import cv2
import numpy as np

from edgeseg.bundle import InputContract, OutputContract
from edgeseg.runtime.backends.base import Backend

T = TypeVar("T")


def resize_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a BGR frame to the graph's (height, width); a no-op at the right size."""
    height, width = size
    if frame.shape[:2] == (height, width):
        return frame
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR)


def frames_to_input(frames: list[np.ndarray], contract: InputContract) -> np.ndarray:
    """uint8 BGR frames -> the graph's input batch (fused: uint8 NHWC; else normalised float32 NCHW)."""
    batch = np.stack([resize_frame(f, contract.size) for f in frames])
    if contract.color_order == "RGB":
        batch = batch[..., ::-1]
    if contract.fused_preprocess:
        return np.ascontiguousarray(batch)
    # (x / 255 - mean) / std, folded into one multiply-add.
    mean = np.asarray(contract.mean, np.float32) * 255.0
    scale = 1.0 / (np.asarray(contract.std, np.float32) * 255.0)
    tensor = (batch.astype(np.float32) - mean) * scale
    return np.ascontiguousarray(tensor.transpose(0, 3, 1, 2))


def output_to_class_maps(output: np.ndarray, contract: OutputContract) -> np.ndarray:
    """Graph output -> uint8 class maps [N, H, W]: the fused argmax passes through, logits get one here."""
    if contract.kind == "class_map":
        maps = output[:, 0] if output.ndim == 4 else output
        return maps.astype(np.uint8, copy=False)
    return output.argmax(axis=1).astype(np.uint8)


def pad_batch(items: list[T], size: int) -> list[T]:
    """A short last batch padded with copies of its last item: a fixed-batch graph takes exactly `size`."""
    return items + [items[-1]] * (size - len(items))


def class_maps(
    backend: Backend, images: list[np.ndarray], input_contract: InputContract, output_contract: OutputContract
) -> list[np.ndarray]:
    """uint8 class maps for BGR frames through an open backend, in batches of its size (the last padded)."""
    size = backend.batch_size
    maps: list[np.ndarray] = []
    for start in range(0, len(images), size):
        chunk = images[start : start + size]
        output = backend.infer(frames_to_input(pad_batch(chunk, size), input_contract))
        maps.extend(output_to_class_maps(output, output_contract)[: len(chunk)])
    return maps
