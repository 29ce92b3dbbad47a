"""Output sinks by URI; several at once.

  out.mp4 | out.avi | out.mkv   a video file, written under a temporary name and renamed on close,
                                so a recording that exists is complete and playable
  out/frames/                   an image folder: overlays as JPEG; with --save-mask also the raw
                                class maps as PNG in masks/ (what a medical recording keeps)
  display://0                   an OpenCV window (q or Esc stops the run)
  http://127.0.0.1:8080         a live view in the browser: page, MJPEG stream, /stats.json
  udp://HOST:PORT, rtsp://...   H.264 streamed out through FFmpeg (MPEG-TS over UDP, or RTSP publish)
  none                          discard (benchmarks)
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from edgeseg.errors import EdgesegError

if TYPE_CHECKING:
    from edgeseg.runtime.pipeline import Prediction

VIDEO_CODECS = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "XVID", ".mov": "mp4v"}


class Sink:
    stop_requested = False

    def attach(self, pipeline: Any) -> None:
        """Called by the pipeline that will feed this sink (a live view reads its figures)."""

    def write(self, image: np.ndarray, prediction: Prediction) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return type(self).__name__


def check_writable(path: Path) -> None:
    """Fail before the run starts, not at the first frame, when an output cannot be written."""
    folder = path if path.is_dir() else path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".edgeseg-write-check"):
            pass
    except OSError as exc:
        raise EdgesegError(f"cannot write output '{path}': {exc.strerror or exc}; choose a writable path") from None


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
            self.writer = cv2.VideoWriter(str(self.temp_path), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, (width, height))
            if not self.writer.isOpened():
                raise EdgesegError(f"OpenCV cannot write '{self.path}' with codec {self.fourcc}; try another extension (.mp4, .avi)")
        self.writer.write(image)
        self.frames += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            os.replace(self.temp_path, self.path)
            self.writer = None

    def describe(self) -> str:
        return f"{self.path} ({self.frames} frames)"


def write_image_atomic(path: Path, image: np.ndarray) -> None:
    ok, encoded = cv2.imencode(path.suffix, image)
    if not ok:
        raise EdgesegError(f"cannot encode {path.name}")
    temp = path.with_name(f".{path.name}.partial")
    temp.write_bytes(encoded.tobytes())
    os.replace(temp, path)


class ImageFolderSink(Sink):
    def __init__(self, folder: Path, save_mask: bool = False):
        self.folder = folder
        self.save_mask = save_mask
        check_writable(folder / "x")
        if save_mask:
            (folder / "masks").mkdir(exist_ok=True)
        self.frames = 0

    def write(self, image: np.ndarray, prediction: Prediction) -> None:
        index = prediction.frame.index
        write_image_atomic(self.folder / f"{index:06d}.jpg", image)
        if self.save_mask:
            # Class ids at the frame's own resolution, so each mask lines up with its frame.
            height, width = prediction.frame.image.shape[:2]
            mask = cv2.resize(prediction.class_map, (width, height), interpolation=cv2.INTER_NEAREST)
            write_image_atomic(self.folder / "masks" / f"{index:06d}.png", mask)
        self.frames += 1

    def describe(self) -> str:
        return f"{self.folder}/ ({self.frames} frames{', with masks' if self.save_mask else ''})"


class DisplaySink(Sink):
    def __init__(self, uri: str):
        if os.name == "posix" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise EdgesegError(f"'{uri}' needs a display, and DISPLAY is not set; write a file instead (-o out.mp4) or use -o none")
        self.window = f"edgeseg {uri}"

    def write(self, image: np.ndarray, prediction: Prediction) -> None:
        cv2.imshow(self.window, image)
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.stop_requested = True

    def close(self) -> None:
        cv2.destroyWindow(self.window)


class NullSink(Sink):
    def write(self, image: np.ndarray, prediction: Prediction) -> None:
        pass

    def describe(self) -> str:
        return "none"


def open_sink(uri: str, fps: float = 30.0, save_mask: bool = False) -> Sink:
    if uri == "none":
        return NullSink()
    if uri.startswith("display://"):
        return DisplaySink(uri)
    if uri.startswith(("http://", "udp://", "rtsp://")):
        from edgeseg.runtime.live import LiveViewSink, StreamOutSink

        return LiveViewSink(uri) if uri.startswith("http://") else StreamOutSink(uri, fps)
    if "://" in uri and not uri.startswith("file://"):
        raise EdgesegError(f"unknown output '{uri}'; use a video file (.mp4/.avi/.mkv), a folder/, display://0, http://HOST:PORT, udp:// or rtsp://, or none")
    path = Path(uri.removeprefix("file://"))
    suffix = path.suffix.lower()
    if suffix in VIDEO_CODECS:
        return VideoFileSink(path, fps)
    if suffix and not path.is_dir():
        raise EdgesegError(f"cannot tell what to write for '{uri}': use {', '.join(VIDEO_CODECS)} for video, or a folder name for images")
    return ImageFolderSink(path, save_mask)


def open_sinks(uris: list[str], fps: float = 30.0, save_mask: bool = False) -> list[Sink]:
    sinks: list[Sink] = []
    try:
        for uri in uris:
            sinks.append(open_sink(uri, fps, save_mask))
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks
