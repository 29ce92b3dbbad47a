"""Keypoint bundles at run time, by the names bench, calibration and tools import: the head is
runtime/heads/keypoints.py, the model on its backend runtime/detector.py, the loop
runtime/pipeline.py."""

from edgeseg.runtime.detector import KeypointDetector
from edgeseg.runtime.heads.keypoints import (
    KEYPOINT_COLOURS,
    KeypointSpec,
    bones_between,
    decode_heatmaps,
    draw_keypoints,
    keypoint_records,
    to_frame_pixels,
)

__all__ = [
    "KEYPOINT_COLOURS",
    "KeypointDetector",
    "KeypointSpec",
    "bones_between",
    "decode_heatmaps",
    "draw_keypoints",
    "keypoint_records",
    "to_frame_pixels",
]
