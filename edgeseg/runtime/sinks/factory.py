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

import collections
import re
from pathlib import Path

from edgeseg.errors import EdgesegError
from edgeseg.redact import redact, split_uri
from edgeseg.runtime.sinks.base import NullSink, Sink
from edgeseg.runtime.sinks.display import DisplaySink
from edgeseg.runtime.sinks.files import VIDEO_CODECS, ImageFolderSink, VideoFileSink
from edgeseg.runtime.sinks.live import LiveViewSink, StreamOutSink, ViewAccess
from edgeseg.runtime.sinks.tiled import TiledSink


def open_sink(uri: str, fps: float = 30.0, save_mask: bool = False, access: ViewAccess | None = None) -> Sink:
    if uri == "none":
        return NullSink()
    if uri.startswith("display://"):
        return DisplaySink(uri)
    if uri.startswith(("http://", "udp://", "rtsp://")):
        return LiveViewSink(uri, access) if uri.startswith("http://") else StreamOutSink(uri, fps)
    if "://" in uri and not uri.startswith("file://"):
        raise EdgesegError(
            f"unknown output '{redact(uri)}'; use a video file (.mp4/.avi/.mkv), a folder/, display://0, "
            "http://HOST:PORT, udp:// or rtsp://, or none"
        )
    path = Path(uri[len("file://") :] if uri.startswith("file://") else uri)
    suffix = path.suffix.lower()
    if suffix in VIDEO_CODECS:
        return VideoFileSink(path, fps)
    if suffix and not path.is_dir():
        raise EdgesegError(
            f"cannot tell what to write for '{redact(uri)}': use {', '.join(VIDEO_CODECS)} for video, or a folder "
            "name for images"
        )
    return ImageFolderSink(path, save_mask)


def open_sinks(
    uris: list[str], fps: float = 30.0, save_mask: bool = False, access: ViewAccess | None = None
) -> list[Sink]:
    sinks: list[Sink] = []
    try:
        for uri in uris:
            sinks.append(open_sink(uri, fps, save_mask, access))
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks


def stream_names(uris: list[str]) -> list[str]:
    """A short name per input for `{stream}` in output paths: the file stem, or the URL's last path part or else
    its host; never its user-info (rtsp://admin:PASSWORD@cam1/ is named cam1) nor its query."""
    names = []
    for uri in uris:
        parts = split_uri(uri)
        if parts is None:
            last = uri
        else:
            _, _, host, rest = parts
            path = rest.split("?", 1)[0].split("#", 1)[0]
            hostname = host[1:].split("]", 1)[0] if host.startswith("[") else host.split(":", 1)[0]  # no port
            last = path.rstrip("/").rsplit("/", 1)[-1] or hostname
        stem = re.sub(r"\.[A-Za-z0-9]+$", "", last.rstrip("/").rsplit("/", 1)[-1])
        names.append(re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-") or "stream")
    # The same name twice (two files called front.mp4) gets the input's index appended.
    counts = collections.Counter(names)
    return [f"{name}-{index}" if counts[name] > 1 else name for index, name in enumerate(names)]


TEMPLATE = re.compile(r"\{(stream|index)\}")
SHARED_SCHEMES = ("display://", "http://", "none")  # one picture for all streams: tiled


def open_stream_sinks(
    uris: list[str], names: list[str], fps: float = 30.0, save_mask: bool = False, access: ViewAccess | None = None
) -> tuple[list[list[Sink]], list[Sink]]:
    """Sinks for a run with several inputs: per stream for outputs with {stream} or {index} in them,
    shared (tiled) for a window or the live view. An output that would take every stream into one file is refused."""
    per_stream: list[list[Sink]] = [[] for _ in names]
    shared: list[Sink] = []
    try:
        for uri in uris:
            shares = uri.startswith(SHARED_SCHEMES)
            if TEMPLATE.search(uri):
                if shares:
                    raise EdgesegError(
                        f"'{redact(uri)}': {{stream}} and {{index}} go in file, folder and stream-out outputs; "
                        "a window or the live view shows every stream, tiled"
                    )
                for index, name in enumerate(names):
                    path = uri.replace("{stream}", name).replace("{index}", str(index))
                    per_stream[index].append(open_sink(path, fps, save_mask))
            elif shares:
                sink = open_sink(uri, fps, save_mask, access)
                shared.append(sink if uri == "none" else TiledSink(sink, names))
            else:
                raise EdgesegError(
                    f"-o {redact(uri)} would get all {len(names)} inputs in one output; put {{stream}} or {{index}} in "
                    "it, e.g. -o out/{stream}.mp4"
                )
    except BaseException:
        for sink in [s for sinks in per_stream for s in sinks] + shared:
            sink.close()
        raise
    return per_stream, shared
