"""Frame sources by URI, as Jetson users know them.

  video.mp4 | file://video.mp4       a video file (never drops a frame; ends at its end)
  frames/                            an image folder, sorted by name
  /dev/video0 | v4l2:///dev/video0   a V4L2 camera (live: the newest frame wins)
  rtsp:// udp:// http(s)://          a network stream through OpenCV's FFmpeg backend (live)
  synthetic://driving?seed=0&size=320x240&frames=300&fps=30
                                     a procedural labelled scene (edgeseg.data.synthetic);
                                     seed=A-B renders `frames` frames from each seed in turn
  dataset/ with images/ + labels/    a labelled folder (frames with ground truth)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import cv2
import numpy as np

from edgeseg.errors import EdgesegError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
STREAM_SCHEMES = ("rtsp", "rtsps", "udp", "rtp", "http", "https")


@dataclass
class Frame:
    index: int
    image: np.ndarray  # uint8 HxWx3 BGR
    timestamp: float  # time.perf_counter() when it was captured
    label: np.ndarray | None = None  # class map, when the source knows the truth


class Source:
    """Yields frames until its end. `live` sources may drop frames to stay current; others never do."""

    live = False
    fps: float | None = None
    length: int | None = None  # frames in a finite source when known up front

    def __init__(self, uri: str):
        self.uri = uri
        self.count = 0
        self.bad_frames = 0

    def read(self) -> Frame | None:
        """The next frame, or None at the end of the source."""
        image, label = self._read()
        if image is None:
            return None
        frame = Frame(self.count, image, time.perf_counter(), label)
        self.count += 1
        return frame

    def _read(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __iter__(self):
        while (frame := self.read()) is not None:
            yield frame


class CaptureSource(Source):
    """Anything cv2.VideoCapture opens: files, cameras, network streams."""

    def __init__(self, uri: str, target: str | int, api: int = cv2.CAP_ANY, live: bool = False):
        super().__init__(uri)
        self.live = live
        self.capture = cv2.VideoCapture(target, api)
        if not self.capture.isOpened():
            self.capture.release()
            raise EdgesegError(f"cannot open '{uri}': OpenCV could not open it as a video (wrong path, format or codec?)")
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and 0 < fps < 1000 else None
        frames = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.length = frames if frames > 0 and not live else None  # containers may over-count: a hint only

    def _read(self) -> tuple[np.ndarray | None, None]:
        ok, image = self.capture.read()
        return (image if ok else None), None

    def close(self) -> None:
        self.capture.release()


class ImageFolderSource(Source):
    def __init__(self, uri: str, folder: Path):
        super().__init__(uri)
        self.paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self.paths:
            raise EdgesegError(f"image folder '{folder}' has no images ({', '.join(sorted(IMAGE_SUFFIXES))}); point -i at a folder of frames")
        self.position = 0
        self.length = len(self.paths)

    def _read(self) -> tuple[np.ndarray | None, None]:
        while self.position < len(self.paths):
            path = self.paths[self.position]
            self.position += 1
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None:
                return image, None
            self.bad_frames += 1  # an unreadable file is counted and skipped, not fatal
        return None, None


class SyntheticSource(Source):
    """A procedural scene with labels. Deterministic, so it never drops frames (like a file).

    `seed` is one seed or a range `A-B`: `frames` frames are rendered from each seed in turn.
    """

    OPTIONS = {"seed", "size", "frames", "fps"}

    def __init__(self, uri: str):
        super().__init__(uri)
        from edgeseg.data.synthetic import make_scene

        parts = urlsplit(uri)
        options = dict(parse_qsl(parts.query, keep_blank_values=True))
        unknown = set(options) - self.OPTIONS
        if unknown:
            raise EdgesegError(f"unknown option(s) {', '.join(sorted(unknown))} in '{uri}'; synthetic:// takes {', '.join(sorted(self.OPTIONS))}")
        try:
            width, height = (int(v) for v in options.get("size", "320x240").lower().split("x"))
            self.per_seed = int(options.get("frames", 300))
            self.fps = float(options.get("fps", 30))
            first, _, last = options.get("seed", "0").partition("-")
            self.seeds = list(range(int(first), int(last or first) + 1))
        except ValueError:
            raise EdgesegError(f"bad option value in '{uri}': size is WxH, frames an integer, seed an integer or A-B, fps a number") from None
        if width < 16 or height < 16 or self.per_seed < 1 or not self.seeds:
            raise EdgesegError(f"'{uri}': size must be at least 16x16, frames at least 1, and a seed range A-B needs A <= B")
        self.length = self.per_seed * len(self.seeds)
        self.scene_args = (parts.netloc or parts.path.strip("/"), width, height)
        self.scene = make_scene(*self.scene_args, seed=self.seeds[0])  # an unknown name fails here, at open
        self.classes = self.scene.classes

    def _read(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        seed_index, frame_index = divmod(self.count, self.per_seed)
        if seed_index >= len(self.seeds):
            return None, None
        if self.scene.seed != self.seeds[seed_index]:
            from edgeseg.data.synthetic import make_scene

            self.scene = make_scene(*self.scene_args, seed=self.seeds[seed_index])
        rendered = self.scene.render(frame_index)
        return rendered.image, rendered.label


class LabelledFolderSource(Source):
    """images/ + labels/ with matching stems: frames with their ground truth."""

    def __init__(self, uri: str, root: Path):
        super().__init__(uri)
        from edgeseg.data.folder import labelled_pairs

        self.pairs = labelled_pairs(root)
        self.length = len(self.pairs)

    def _read(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        from edgeseg.data.folder import read_pair

        if self.count >= len(self.pairs):
            return None, None
        return read_pair(*self.pairs[self.count])


def _camera(uri: str, device: str) -> Source:
    if not Path(device).exists():
        found = sorted(str(p) for p in Path("/dev").glob("video*"))
        raise EdgesegError(f"camera {device} does not exist (cameras here: {', '.join(found) or 'none'}); check the cable or the device number")
    return CaptureSource(uri, device, cv2.CAP_V4L2, live=True)


def open_source(uri: str) -> Source:
    """Open a source URI; every failure is one EdgesegError line."""
    scheme = urlsplit(uri).scheme.lower() if "://" in uri else ""
    if scheme == "synthetic":
        return SyntheticSource(uri)
    if scheme == "v4l2":
        return _camera(uri, uri[len("v4l2://") :])
    if uri.startswith("/dev/video"):
        return _camera(uri, uri)
    if scheme in STREAM_SCHEMES:
        return CaptureSource(uri, uri, cv2.CAP_FFMPEG, live=True)
    if scheme == "csi":
        raise EdgesegError("csi:// cameras need a Jetson with GStreamer-enabled OpenCV (nvarguscamerasrc); not available on this machine")
    if scheme and scheme != "file":
        raise EdgesegError(f"unknown source scheme '{scheme}://' in '{uri}'; use a file, a folder, /dev/videoN, v4l2://, rtsp://, udp://, http://, or synthetic://")
    path = Path(uri[len("file://") :] if scheme == "file" else uri)
    if not path.exists():
        raise EdgesegError(f"input '{path}' does not exist; check the path")
    if path.is_dir():
        from edgeseg.data.folder import is_labelled_folder

        return LabelledFolderSource(uri, path) if is_labelled_folder(path) else ImageFolderSource(uri, path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        source = ImageFolderSource(uri, path.parent)
        source.paths, source.length = [path], 1
        return source
    return CaptureSource(uri, str(path), cv2.CAP_FFMPEG)
