"""Outputs that are files: a video (written under a temporary name, renamed when closed, so a recording
that exists is complete and playable) and an image folder (overlays as JPEG; with --save-mask also the raw
class maps as PNG in masks/, what a medical recording keeps; for an instance bundle the instance ids, with a
JSON of the detections beside each; for a keypoint bundle a JSON of the points found, and the class map of the
segmentation drawn under them, if any).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np

from edgeseg.errors import EdgesegError
from edgeseg.fileio import check_writable, write_image_atomic, write_text_atomic
from edgeseg.runtime.frames import Prediction
from edgeseg.runtime.sinks.base import Sink

# Room kept free on the recording's disk: enough for the container's closing index after the last frame.
RESERVE_BYTES = 256 * 1024
VIDEO_CODECS = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "XVID", ".mov": "mp4v"}


class VideoFileSink(Sink):
    def __init__(self, path: Path, fps: float):
        self.path = path
        self.fps = fps
        self.fourcc = VIDEO_CODECS[path.suffix.lower()]
        check_writable(path)
        self.temp_path = path.with_name(f".{path.stem}.partial{path.suffix}")
        self.writer: cv2.VideoWriter | None = None
        self.frames = 0

    def write(self, image: np.ndarray, prediction: Prediction) -> None:
        if self.writer is None:  # the frame size is known only now
            height, width = image.shape[:2]
            self.writer = cv2.VideoWriter(
                str(self.temp_path), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, (width, height)
            )
            if not self.writer.isOpened():
                raise EdgesegError(
                    f"OpenCV cannot write '{self.path}' with codec {self.fourcc}; try another extension (.mp4, .avi)"
                )
        self._check_room()
        self.writer.write(image)
        self.frames += 1

    def _check_room(self) -> None:
        """OpenCV's writer fails silently on a full disk, and an MP4 without its closing index plays nothing.
        So a recording stops, closed and playable, while the disk still has room for its index."""
        written = self.temp_path.stat().st_size if self.temp_path.exists() else 0
        needed = max(RESERVE_BYTES, 8 * written // max(self.frames, 1))
        free = shutil.disk_usage(self.temp_path.parent).free
        if free >= needed:
            return
        self.close()
        raise EdgesegError(
            f"the disk holding '{self.path}' is full ({free / 2**20:.2f} MiB left, {needed / 2**20:.2f} MiB needed "
            f"to go on): the recording stops at {self.frames} frames, closed and playable; free space or record "
            "elsewhere"
        )

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            os.replace(self.temp_path, self.path)
            self.writer = None

    def describe(self) -> str:
        return f"{self.path} ({self.frames} frames)"


class ImageFolderSink(Sink):
    def __init__(self, folder: Path, save_mask: bool = False):
        self.folder = folder
        self.save_mask = save_mask
        check_writable(folder / "x")
        if save_mask:
            (folder / "masks").mkdir(exist_ok=True)
        self.frames = 0

    def write(self, image: np.ndarray, prediction: Prediction) -> None:
        # A frame read from a file keeps its name (and format): a.jpg -> a.jpg, b.png -> b.png; video frames
        # are numbered.
        name = prediction.frame.name or f"{prediction.frame.index:06d}.jpg"
        write_image_atomic(self.folder / name, image)
        if self.save_mask:
            # Class ids (instance ids for an instance bundle) at the frame's own resolution, so each mask lines up
            # with its frame.
            height, width = prediction.frame.image.shape[:2]
            stem = self.folder / "masks" / Path(name).stem
            if prediction.class_map is not None:
                mask = cv2.resize(prediction.class_map, (width, height), interpolation=cv2.INTER_NEAREST)
                write_image_atomic(stem.with_suffix(".png"), mask)
            if prediction.records is not None:
                write_text_atomic(stem.with_suffix(".json"), json.dumps(prediction.records) + "\n")
        self.frames += 1

    def describe(self) -> str:
        return f"{self.folder}/ ({self.frames} frames{', with masks' if self.save_mask else ''})"
