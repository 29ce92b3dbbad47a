"""Keypoint bundles at run time, by the names bench, calibration and tools import: the head is
runtime/heads/keypoints.py, the model on its backend (and the --also segmentation) runtime/detector.py, the loop
runtime/pipeline.py."""

from edgeseg.runtime.detector import KeypointDetector, Segmentation
from edgeseg.runtime.heads.keypoints import (
    KEYPOINT_COLOURS,
    KeypointSpec,
    bones_between,
    check_also,
    decode_heatmaps,
    draw_keypoints,
    keypoint_records,
    to_frame_pixels,
)

__all__ = [
    "KEYPOINT_COLOURS",
    "KeypointDetector",
    "KeypointSpec",
    "Segmentation",
    "bones_between",
    "check_also",
    "decode_heatmaps",
    "draw_keypoints",
    "keypoint_records",
    "to_frame_pixels",
]
