"""Frame sources by URI, as Jetson users know them.

video.mp4 | file://video.mp4       a video file (never drops a frame; ends at its end)
frames/                            an image folder, sorted by name
/dev/video0 | v4l2:///dev/video0   a V4L2 camera (live: the newest frame wins)
v4l2:///dev/video0?decoder=gst&size=1280x720&fps=30&format=mjpeg|yuyv
                                   the same camera through GStreamer (JPEG decoded in hardware on a Jetson)
rtsp:// udp:// http(s)://          a network stream through OpenCV's FFmpeg backend (live)
synthetic://driving?seed=0&size=320x240&frames=300&fps=30
                                   a procedural labelled scene (edgeseg.data.synthetic);
                                   seed=A-B renders `frames` frames from each seed in turn;
                                   instances=1 adds each object's own id (driving)
                                   keypoints=1 adds each grasper's keypoints (medical)
                                   realtime=1 paces frames at fps, like a camera
dataset/ with images/ + labels/    a labelled folder (frames with ground truth)
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qsl, urlsplit

import cv2
import numpy as np

from edgeseg.data.coco import INSTANCES_FILE
from edgeseg.data.folder import IMAGE_SUFFIXES, OverBudget, is_labelled_folder, labelled_pairs, read_image, read_pair
from edgeseg.data.keypoints import KEYPOINTS_FILE, KeypointSchema, read_keypoints
from edgeseg.data.layouts import LAYOUTS, Layout, dataset_location, recognise
from edgeseg.errors import EdgesegError
from edgeseg.fileio import over_budget
from edgeseg.redact import has_secret, redact, redact_text
from edgeseg.runtime.frames import Frame
from edgeseg.runtime.gstreamer import (
    USB_FORMATS,
    csi_pipeline,
    has_gstreamer,
    is_live,
    on_jetson,
    rtsp_pipeline,
    usb_pipeline,
    with_appsink,
)
from edgeseg.runtime.rtsp_probe import describe_reason, undecodable_reason

# FFmpeg logs every undecodable packet of a stream joined mid-GOP (hundreds of lines a second);
# edgeseg reports losses and gaps itself. Set OPENCV_FFMPEG_LOGLEVEL to see FFmpeg's own lines.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

STREAM_SCHEMES = ("rtsp", "rtsps", "udp", "rtp", "http", "https")


_STDERR: list[TextIO] = []


def line_stream() -> TextIO:
    """Where a capture thread's lines (skipped files, lost streams) go: stderr, through a descriptor of its own. A
    backend loading on another thread points descriptor 2 at a scratch file for a moment (ONNX Runtime's C++
    warnings); a line written to it then would be lost."""
    stream = sys.stderr
    try:
        if stream.fileno() != 2:
            return stream
    except (AttributeError, OSError, ValueError):  # a test's captured stderr, a closed one: as it is
        return stream
    if not _STDERR:
        _STDERR.append(os.fdopen(os.dup(2), "w", buffering=1))
    return _STDERR[0]


class Source:
    """Yields frames until its end. `live` sources may drop frames to stay current; others never do."""

    live = False
    fps: float | None = None
    length: int | None = None  # frames in a finite source when known up front
    label_names: list[str] | None = None  # what each label id means, where the source says
    keypoint_schema: KeypointSchema | None = None  # what its keypoints are, where the source has them

    def __init__(self, uri: str):
        self.uri = uri  # what is opened; never shown
        self.shown = redact(uri)  # what lines, names and reports show: no user-info, no token
        self.log = line_stream()
        self.count = 0
        self.bad_frames = 0
        self.gaps: list[float] = []  # seconds a live stream was away, per loss
        self.current_name: str | None = None  # the file the last frame came from, where a frame is a file
        self.current_instances: np.ndarray | None = None  # the last frame's instance ids, where the source has them
        self.current_keypoints: np.ndarray | None = None  # the last frame's keypoints, where the source has them
        # Set to stop: a pipeline stops capture through it, and a reconnecting stream's waits end at once.
        self.stop_event = threading.Event()

    @property
    def reconnecting(self) -> bool:
        """True while a live stream is lost and being reopened."""
        return False

    def read(self) -> Frame | None:
        """The next frame, or None at the end of the source."""
        image, label = self._read()
        if image is None:
            return None
        frame = Frame(self.count, image, time.perf_counter(), label, name=self.current_name,
                      instances=self.current_instances, keypoints=self.current_keypoints)  # fmt: skip
        self.count += 1
        return frame

    def _read(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.read()) is not None:
            yield frame


class CaptureSource(Source):
    """Anything cv2.VideoCapture opens: files, cameras, network streams."""

    def __init__(
        self, uri: str, target: str | int, api: int = cv2.CAP_ANY, live: bool = False, params: list[int] | None = None
    ):
        super().__init__(uri)
        self.live = live
        self.target, self.api, self.params = target, api, params or []
        self.capture = self._open()
        if self.capture is None:
            raise EdgesegError(
                f"cannot open '{redact(uri)}': OpenCV could not open it as a video (wrong path, format or codec?)"
            )
        # A stream or file declaring frames beyond the pixel budget is refused before its first frame is read.
        width, height = (int(self.capture.get(side)) for side in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT))
        if problem := over_budget(width, height, f"'{self.shown}'"):
            self.capture.release()
            raise OverBudget(problem)
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and 0 < fps < 1000 else None
        frames = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.length = frames if frames > 0 and not live else None  # containers may over-count: a hint only

    def _open(self) -> cv2.VideoCapture | None:
        capture = cv2.VideoCapture(self.target, self.api, self.params)
        if capture.isOpened():
            return capture
        capture.release()
        return None

    def _read(self) -> tuple[np.ndarray | None, None]:
        ok, image = self.capture.read()
        return (image if ok else None), None

    def close(self) -> None:
        if self.capture is not None:
            self.capture.release()


class VideoFileSource(CaptureSource):
    """A video file: every frame, in order. A frame the decoder rejects is skipped and counted, not fatal."""

    MAX_CONSECUTIVE_FAILURES = 30  # past this many unreadable frames in a row, the file has ended

    def __init__(self, uri: str, path: str, options: StreamOptions):
        super().__init__(uri, path, cv2.CAP_FFMPEG, params=options.decoder_params())

    def _read(self) -> tuple[np.ndarray | None, None]:
        for failures in range(self.MAX_CONSECUTIVE_FAILURES):
            ok, image = self.capture.read()
            if ok:
                self.bad_frames += failures
                return image, None
        return None, None


@dataclass
class StreamOptions:
    """How video files, network streams and cameras are opened and kept alive."""

    timeout: float = 10.0  # seconds to open, and to wait for a frame before calling the stream lost
    retries: int = -1  # reconnection attempts per loss; -1: keep trying until stopped
    backoff_cap: float = 8.0  # seconds: the longest wait between attempts (they double from 0.5 s)
    transport: str | None = None  # rtsp_transport for FFmpeg: tcp or udp
    ffmpeg_options: dict[str, str] = field(default_factory=dict)  # extra FFmpeg demuxer options
    decode_threads: int | None = None  # FFmpeg decoder threads for video files; None: FFmpeg's choice

    def decoder_params(self) -> list[int]:
        # CAP_PROP_N_THREADS came with OpenCV 4.7; JetPack's and Debian's 4.5/4.6 decode with FFmpeg's own choice.
        threads = getattr(cv2, "CAP_PROP_N_THREADS", None)
        return [threads, self.decode_threads] if self.decode_threads and threads is not None else []


def quiet_opencv_warnings() -> None:
    """OpenCV's own warnings (stream timeouts, GStreamer states) repeat what edgeseg reports. The call moved
    between versions: cv2.setLogLevel in 4.x (Debian's, JetPack's), cv2.utils.logging in 5.x; 2 is ERROR in both."""
    logging = getattr(cv2.utils, "logging", None)
    if logging is not None:
        logging.setLogLevel(logging.LOG_LEVEL_ERROR)
    elif hasattr(cv2, "setLogLevel"):
        cv2.setLogLevel(2)


FFMPEG_OPTIONS_VARIABLE = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
USERS_FFMPEG_OPTIONS = os.environ.get(FFMPEG_OPTIONS_VARIABLE)


class StreamSource(CaptureSource):
    """A live stream or camera. A stall or drop is reopened with exponential backoff; each gap is recorded."""

    live = True

    def __init__(self, uri: str, target: str, api: int, options: StreamOptions):
        self.options = options
        milliseconds = int(options.timeout * 1000)
        params = (
            [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, milliseconds, cv2.CAP_PROP_READ_TIMEOUT_MSEC, milliseconds]
            if api == cv2.CAP_FFMPEG
            else []
        )
        ffmpeg = dict(options.ffmpeg_options)
        if options.transport:
            ffmpeg["rtsp_transport"] = options.transport
        if urlsplit(uri).scheme.lower() in ("rtsp", "rtsps"):
            # FFmpeg probes a stream for up to 5 s before its first frame; an RTSP session's SDP names the codec
            # and H.264 cameras repeat their SPS, so 0.5 s finds size and rate (opening gst-rtsp-server: 2.8 s
            # -> 0.6 s), which is most of the time a reconnect takes.
            ffmpeg.setdefault("analyzeduration", "500000")
        # OpenCV reads FFmpeg demuxer options from this variable when it opens a capture: set it for each
        # source, so one stream's options never carry over to the next (the user's own setting stays the base).
        if ffmpeg:
            os.environ[FFMPEG_OPTIONS_VARIABLE] = "|".join(f"{k};{v}" for k, v in ffmpeg.items())
        elif USERS_FFMPEG_OPTIONS is None:
            os.environ.pop(FFMPEG_OPTIONS_VARIABLE, None)
        else:
            os.environ[FFMPEG_OPTIONS_VARIABLE] = USERS_FFMPEG_OPTIONS
        self.lost_at: float | None = None
        self.last_frame_at = time.perf_counter()
        self.hls = urlsplit(uri).path.endswith(".m3u8")
        self.ended_check_at = 0.0
        quiet_opencv_warnings()
        try:
            super().__init__(uri, target, api, live=True, params=params)
        except OverBudget:
            raise
        except EdgesegError:
            raise EdgesegError(f"stream '{redact(uri)}' did not open{self._why_not_open()}") from None

    def _why_not_open(self) -> str:
        if urlsplit(self.uri).scheme.lower() in ("rtsp", "rtsps"):
            return ": " + describe_reason(self.uri.split("?")[0], self.options.timeout)
        if self.api == cv2.CAP_GSTREAMER:
            return ": GStreamer could not start its pipeline (a wrong address, or an element or caps it lacks)"
        return (
            f" within {self.options.timeout:g} s (nothing sending, wrong address, or a closed port); "
            "check the sender or raise --stream-timeout"
        )

    def _read(self) -> tuple[np.ndarray | None, None]:
        attempt = 0
        while not self.stop_event.is_set():
            if self.capture is not None:
                ok, image = self.capture.read()
                if ok:
                    self._recovered()
                    return image, None
                if self.hls and self._hls_ended():
                    return None, None  # the playlist was finished (#EXT-X-ENDLIST) and every segment read
                # A failed read is not yet a loss: a stream joined mid-GOP fails until its next keyframe.
                if time.perf_counter() - self.last_frame_at < self.options.timeout:
                    self.stop_event.wait(0.01)
                    continue
                if self.count == 0 and (reason := self._undecodable()):
                    # Not a loss to wait out: no frame will ever come from a stream this decoder cannot read.
                    raise EdgesegError(f"stream '{self.shown}' opened, but no frame can be decoded from it: {reason}")
                self.capture.release()
                self.capture = None
                if self.lost_at is None:
                    self.lost_at = self.last_frame_at
                    print(
                        f"edgeseg: stream {self.shown} lost (no frame for {self.options.timeout:g} s); reconnecting",
                        file=self.log,
                        flush=True,
                    )
            if 0 <= self.options.retries <= attempt:
                print(
                    f"edgeseg: stream {self.shown} did not come back after {attempt} attempts; stopping",
                    file=self.log,
                    flush=True,
                )
                return None, None
            if self.stop_event.wait(min(self.options.backoff_cap, 0.5 * 2**attempt)):
                break
            attempt += 1
            self.capture = self._open()
            self.last_frame_at = time.perf_counter()  # the new connection gets a full timeout to deliver
        return None, None

    @property
    def reconnecting(self) -> bool:
        return self.lost_at is not None

    def _hls_ended(self) -> bool:
        """Asked at most once a second, while reads fail: has the live playlist been finished?"""
        if time.perf_counter() - self.ended_check_at < 1.0:
            return False
        self.ended_check_at = time.perf_counter()
        return hls_finished(self.uri, self.options.timeout)

    def _undecodable(self) -> str | None:
        """For RTSP, the server's own description can prove that no frame will come; other streams cannot tell."""
        if urlsplit(self.uri).scheme.lower() in ("rtsp", "rtsps"):
            return undecodable_reason(self.uri.split("?")[0], self.options.timeout)
        return None

    def _recovered(self) -> None:
        self.last_frame_at = time.perf_counter()
        if self.lost_at is not None:
            gap = time.perf_counter() - self.lost_at
            self.gaps.append(gap)
            self.lost_at = None
            print(f"edgeseg: stream {self.shown} is back after a {gap:.1f} s gap", file=self.log, flush=True)


class ImageFolderSource(Source):
    def __init__(self, uri: str, folder: Path):
        super().__init__(uri)
        self.paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self.paths:
            raise EdgesegError(
                f"image folder '{folder}' has no images ({', '.join(sorted(IMAGE_SUFFIXES))}); point -i at a folder "
                "of frames"
            )
        self.position = 0
        self.length = len(self.paths)
        self.skipped = ""  # the first file that could not be decoded

    def _read(self) -> tuple[np.ndarray | None, None]:
        while self.position < len(self.paths):
            path = self.paths[self.position]
            self.position += 1
            try:
                image = read_image(path, cv2.IMREAD_COLOR)
            except OverBudget as refused:  # one line, then skipped and counted like a file OpenCV cannot read
                print(f"edgeseg: skipped {refused}", file=self.log, flush=True)
                image = None
            if image is not None:
                self.current_name = path.name
                return image, None
            self.bad_frames += 1  # an unreadable file is counted and skipped, not fatal
            self.skipped = self.skipped or path.name
        if self.count == 0:  # not one file decoded: the user pointed at the wrong folder
            raise EdgesegError(
                f"no image in '{self.shown}' could be read (0 decodable frames): {self.bad_frames} file(s) skipped "
                f"because OpenCV cannot decode them or they are over the pixel budget (e.g. {self.skipped}); point "
                "-i at a folder of frames"
            )
        return None, None


class SyntheticSource(Source):
    """A procedural scene with labels. Deterministic, so it never drops frames (like a file).

    `seed` is one seed or a range `A-B`: `frames` frames are rendered from each seed in turn.
    """

    OPTIONS = {"seed", "size", "frames", "fps", "realtime", "instances", "keypoints"}

    def __init__(self, uri: str):
        super().__init__(uri)
        from edgeseg.data.synthetic import make_scene

        parts = urlsplit(uri)
        options = dict(parse_qsl(parts.query, keep_blank_values=True))
        unknown = set(options) - self.OPTIONS
        if unknown:
            raise EdgesegError(
                f"unknown option(s) {', '.join(sorted(unknown))} in '{redact(uri)}'; synthetic:// takes "
                f"{', '.join(sorted(self.OPTIONS))}"
            )
        try:
            width, height = (int(v) for v in options.get("size", "320x240").lower().split("x"))
            self.per_seed = int(options.get("frames", 300))
            self.fps = float(options.get("fps", 30))
            first, _, last = options.get("seed", "0").partition("-")
            self.seeds = list(range(int(first), int(last or first) + 1))
            self.realtime = options.get("realtime", "0") in ("1", "true", "yes")  # pace frames at fps, like a camera
            self.instances = options.get("instances", "0") in ("1", "true", "yes")  # each object's id as well
            self.keypoints = options.get("keypoints", "0") in ("1", "true", "yes")  # each grasper's points as well
        except ValueError:
            raise EdgesegError(
                f"bad option value in '{redact(uri)}': size is WxH, frames an integer, seed an integer or A-B, fps a "
                "number"
            ) from None
        if width < 16 or height < 16 or self.per_seed < 1 or not self.seeds:
            raise EdgesegError(
                f"'{redact(uri)}': size must be at least 16x16, frames at least 1, and a seed range A-B needs A <= B"
            )
        self.length = self.per_seed * len(self.seeds)
        self.started = time.perf_counter()
        self.scene_args = (parts.netloc or parts.path.strip("/"), width, height)
        self.scene = make_scene(*self.scene_args, seed=self.seeds[0])  # an unknown name fails here, at open
        self.classes = self.scene.classes
        self.label_names = [name for name, _ in self.classes]
        if self.instances and not self.scene.has_instances:
            raise EdgesegError(f"'{redact(uri)}': instances=1 needs a scene with countable objects (driving)")
        if self.keypoints and self.scene.keypoint_schema is None:
            raise EdgesegError(f"'{redact(uri)}': keypoints=1 needs a scene with keypoint labels (medical)")
        self.keypoint_schema = self.scene.keypoint_schema if self.keypoints else None

    def _read(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        seed_index, frame_index = divmod(self.count, self.per_seed)
        if seed_index >= len(self.seeds):
            return None, None
        if self.scene.seed != self.seeds[seed_index]:
            from edgeseg.data.synthetic import make_scene

            self.scene = make_scene(*self.scene_args, seed=self.seeds[seed_index])
        if self.realtime:
            due = self.started + self.count / self.fps
            self.stop_event.wait(max(0.0, due - time.perf_counter()))
        rendered = self.scene.render(frame_index)
        self.current_instances = rendered.instances if self.instances else None
        self.current_keypoints = rendered.keypoints if self.keypoints else None
        return rendered.image, rendered.label


class LabelledFolderSource(Source):
    """images/ + labels/ with matching stems: frames with their ground truth (and instances.json's objects)."""

    def __init__(self, uri: str, root: Path):
        super().__init__(uri)
        self.pairs = labelled_pairs(root)
        self.length = len(self.pairs)
        self.instances = None
        if (root / INSTANCES_FILE).is_file():
            from edgeseg.data.coco import read_instances

            self.instances = read_instances(root / INSTANCES_FILE, root / "images")
        self.keypoints = None
        if (root / KEYPOINTS_FILE).is_file():
            self.keypoint_schema, self.keypoints = read_keypoints(root / KEYPOINTS_FILE, root / "images")

    def _read(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        if self.count >= len(self.pairs):
            return None, None
        image_path, label_path = self.pairs[self.count]
        image, label = read_pair(image_path, label_path)
        if self.instances is not None:
            plane = self.instances.get(image_path.name, (np.zeros(label.shape, np.uint16), {}))[0]
            if plane.shape != label.shape:
                raise EdgesegError(
                    f"{INSTANCES_FILE} says {image_path.name} is {plane.shape[1]}x{plane.shape[0]} but it is "
                    f"{label.shape[1]}x{label.shape[0]}"
                )
            self.current_instances = plane
        if self.keypoints is not None:
            self.current_keypoints = self.keypoints.get(image_path.name)
        return image, label


class DatasetSource(Source):
    """A dataset in the layout it ships in (edgeseg.data.layouts): frames with their labels, in the layout's class
    ids. Images and labels are decoded on worker threads a few frames ahead (cv2 releases the GIL): a 2048x1024 PNG
    pair costs tens of milliseconds to decode."""

    def __init__(self, uri: str, layout: Layout, root: Path, split: str):
        from concurrent.futures import ThreadPoolExecutor

        super().__init__(uri)
        if not root.is_dir():
            raise EdgesegError(f"dataset folder '{root}' does not exist; check the path in '{redact(uri)}'")
        self.layout, self.root = layout, root
        self.pairs = layout.find(root, split)
        if not self.pairs:
            raise EdgesegError(f"'{redact(uri)}': no images in split '{split}' of this {layout.name} copy")
        self.length = len(self.pairs)
        self.label_names = [name for name, _ in layout.classes(root)]
        threads = max(2, min(8, os.cpu_count() or 2))
        self.workers, self.lookahead = ThreadPoolExecutor(max_workers=threads), 2 * threads
        self.ahead: deque[Any] = deque()
        self.submitted = 0

    def _decode(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image_path, label_path = self.pairs[index]
        image = read_image(image_path, cv2.IMREAD_COLOR)
        if image is None:
            raise EdgesegError(f"cannot decode the image '{image_path}'")
        return image, self.layout.decode(self.root, label_path)

    def _read(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        while self.submitted < len(self.pairs) and len(self.ahead) < self.lookahead:
            self.ahead.append(self.workers.submit(self._decode, self.submitted))
            self.submitted += 1
        if not self.ahead:
            return None, None
        self.current_name = self.pairs[self.count][0].name
        return self.ahead.popleft().result()

    def close(self) -> None:
        for pending in self.ahead:  # shutdown(cancel_futures=) is Python 3.9+
            pending.cancel()
        self.workers.shutdown(wait=True)


def require_camera(device: str, shown: str | None = None) -> None:
    """`shown`: the device as lines may show it, where its URI held user-info."""
    if not Path(device).exists():
        found = sorted(str(p) for p in Path("/dev").glob("video*"))
        raise EdgesegError(
            f"camera {shown or device} does not exist (cameras here: {', '.join(found) or 'none'}); check the cable or "
            "the device number"
        )


def _camera(uri: str, device: str, options: StreamOptions) -> Source:
    require_camera(device, redact(uri) if has_secret(uri) else None)
    return StreamSource(uri, device, cv2.CAP_V4L2, options)


def camera_mode(query: dict[str, str], usage: str) -> tuple[int, int, int]:
    """A camera URI's size=WxH (default 1280x720) and fps=N (default 30); `usage` is the one line when they are bad."""
    try:
        width, height = (int(v) for v in query.get("size", "1280x720").split("x"))
        return width, height, int(query.get("fps", 30))
    except ValueError:
        raise EdgesegError(usage) from None


def _usb_gst(uri: str, options: StreamOptions) -> Source:
    """`v4l2:///dev/videoN?decoder=gst&size=WxH&fps=N&format=mjpeg|yuyv`: a USB camera through GStreamer."""
    parts = urlsplit(uri)
    query = dict(parse_qsl(parts.query))
    if not has_gstreamer():
        raise EdgesegError(
            "v4l2://...?decoder=gst needs OpenCV built with GStreamer; this one has none: use /dev/videoN"
        )
    usage = f"'{redact(uri)}': use v4l2:///dev/videoN?decoder=gst&size=WxH&fps=N&format=mjpeg|yuyv"
    width, height, fps = camera_mode(query, usage)
    pixel_format = query.get("format", "mjpeg")
    if pixel_format not in USB_FORMATS:
        raise EdgesegError(usage)
    require_camera(parts.path)
    pipeline = usb_pipeline(parts.path, width, height, fps, pixel_format)
    return StreamSource(uri, pipeline, cv2.CAP_GSTREAMER, options)


def _csi(uri: str, options: StreamOptions) -> Source:
    parts = urlsplit(uri)
    query = dict(parse_qsl(parts.query))
    if not has_gstreamer():
        raise EdgesegError(
            "csi:// cameras need OpenCV built with GStreamer (JetPack's python3-opencv, venv with "
            "--system-site-packages); this OpenCV has none"
        )
    if not on_jetson():
        raise EdgesegError(
            "csi:// cameras need a Jetson (nvarguscamerasrc); this machine is not one: use /dev/videoN for a USB camera"
        )
    usage = f"'{redact(uri)}': use csi://SENSOR?size=WxH&fps=N"
    width, height, fps = camera_mode(query, usage)
    try:
        sensor = int(parts.netloc or 0)
    except ValueError:
        raise EdgesegError(usage) from None
    try:
        return StreamSource(uri, csi_pipeline(sensor, width, height, fps), cv2.CAP_GSTREAMER, options)
    except OverBudget:
        raise
    except EdgesegError:
        raise EdgesegError(
            f"no CSI camera answered on sensor {sensor}; check the ribbon cable and run: sudo systemctl restart "
            "nvargus-daemon"
        ) from None


def _gst(uri: str, options: StreamOptions) -> Source:
    """`gst://PIPELINE`: a user's own GStreamer pipeline (an appsink is added when it has none)."""
    if not has_gstreamer():
        raise EdgesegError(
            "gst:// needs OpenCV built with GStreamer, and this one has none (pip's opencv-python never has): on a "
            "Jetson use JetPack's python3-opencv, elsewhere your distribution's, from a venv made with "
            "--system-site-packages"
        )
    pipeline = with_appsink(uri[len("gst://") :])
    quiet_opencv_warnings()
    if is_live(pipeline):
        return StreamSource(uri, pipeline, cv2.CAP_GSTREAMER, options)
    try:
        return CaptureSource(uri, pipeline, cv2.CAP_GSTREAMER)
    except OverBudget:
        raise
    except EdgesegError:
        raise EdgesegError(
            f"GStreamer could not start '{redact_text(uri[len('gst://') :])}' (an element that does not exist, a typo "
            "in the caps, or a file that is not there); try it with: gst-launch-1.0 PIPELINE ! fakesink"
        ) from None


def hls_finished(url: str, timeout: float) -> bool:
    """True when an HLS playlist is complete (#EXT-X-ENDLIST): a recording, not a live stream."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            text = answer.read(1 << 20).decode(errors="replace")
        if "#EXT-X-STREAM-INF" in text:  # a master playlist: ask its first variant
            variant = next(line for line in text.splitlines() if line and not line.startswith("#"))
            return hls_finished(urllib.parse.urljoin(url, variant), timeout)
    except (OSError, ValueError, StopIteration):
        return False
    return "#EXT-X-ENDLIST" in text


def _hls(uri: str, options: StreamOptions) -> Source:
    """An HLS playlist. Finished, it is read like a file (every frame); live, like a stream, from its first
    listed segment (FFmpeg would start three from the end), ending when the playlist is finished."""
    options = dataclasses.replace(options, ffmpeg_options={"live_start_index": "0", **options.ffmpeg_options})
    if hls_finished(uri, options.timeout):
        return VideoFileSource(uri, uri, options)
    return StreamSource(uri, uri, cv2.CAP_FFMPEG, options)


def _stream(uri: str, options: StreamOptions) -> Source:
    """A network stream through FFmpeg, or for `rtsp://...?decoder=gst` through GStreamer (hardware on a Jetson)."""
    parts = urlsplit(uri)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    decoder = query.pop("decoder", "ffmpeg")
    if decoder == "ffmpeg" and parts.path.endswith(".m3u8") and parts.scheme.lower() in ("http", "https"):
        return _hls(uri, options)
    if decoder == "ffmpeg":
        return StreamSource(uri, uri, cv2.CAP_FFMPEG, options)
    if decoder != "gst" or parts.scheme.lower() != "rtsp":
        raise EdgesegError(f"'{redact(uri)}': decoder= takes ffmpeg (the default) or, for rtsp://, gst")
    if not has_gstreamer():
        raise EdgesegError("rtsp://...?decoder=gst needs OpenCV built with GStreamer; this one has none")
    url = parts._replace(query="&".join(f"{k}={v}" for k, v in query.items())).geturl()
    return StreamSource(uri, rtsp_pipeline(url, options.transport), cv2.CAP_GSTREAMER, options)


def open_source(uri: str, options: StreamOptions | None = None) -> Source:
    """Open a source URI; every failure is one EdgesegError line."""
    options = options or StreamOptions()
    try:
        scheme = urlsplit(uri).scheme.lower() if "://" in uri else ""
    except ValueError as exc:  # e.g. an unclosed [ of an IPv6 address
        raise EdgesegError(f"'{redact(uri)}' is not a valid URI ({exc}); check its host part") from None
    if scheme == "synthetic":
        return SyntheticSource(uri)
    if scheme in LAYOUTS:
        return DatasetSource(uri, *dataset_location(uri))
    if scheme == "v4l2":
        parts = urlsplit(uri)
        if dict(parse_qsl(parts.query)).get("decoder") == "gst":
            return _usb_gst(uri, options)
        return _camera(uri, parts.path if parts.query else uri[len("v4l2://") :], options)
    if uri.startswith("/dev/video"):
        return _camera(uri, uri, options)
    if scheme in STREAM_SCHEMES:
        return _stream(uri, options)
    if scheme == "csi":
        return _csi(uri, options)
    if scheme == "gst":
        return _gst(uri, options)
    if scheme and scheme != "file":
        raise EdgesegError(
            f"unknown source scheme '{scheme}://' in '{redact(uri)}'; use a file, a folder, /dev/videoN, v4l2://, "
            "csi://, rtsp://, udp://, http://, gst://, synthetic://, or a dataset: "
            + ", ".join(f"{n}://" for n in LAYOUTS)
        )
    path = Path(uri[len("file://") :] if scheme == "file" else uri)
    if not path.exists():
        raise EdgesegError(f"input '{path}' does not exist; check the path")
    if path.is_dir():
        if is_labelled_folder(path):
            return LabelledFolderSource(uri, path)
        layout = recognise(path)
        return DatasetSource(uri, layout, path, layout.default_split) if layout else ImageFolderSource(uri, path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        source = ImageFolderSource(uri, path.parent)
        source.paths, source.length = [path], 1
        return source
    return VideoFileSource(uri, str(path), options)
