"""Sinks that leave the machine: a browser live view (MJPEG over HTTP) and a stream out through FFmpeg.

The live view never slows the pipeline: `write` stores the newest JPEG and returns; each viewer
has its own thread that sends whatever is newest when its socket is ready, so a slow viewer just
sees fewer frames. Nobody watching means no JPEG is encoded at all.
"""

from __future__ import annotations

import errno
import hmac
import json
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from edgeseg.errors import EdgesegError
from edgeseg.redact import has_secret, redact, redact_text, without_credentials
from edgeseg.runtime.frames import Prediction
from edgeseg.runtime.sinks.base import LiveStats, Sink

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>edgeseg live</title>
<style>body{margin:0;background:#111;color:#ddd;font:14px monospace}
img{display:block;max-width:100vw;max-height:90vh;margin:auto}
#stats{padding:8px;text-align:center}</style></head>
<body><img id="live" alt="live segmentation"><div id="stats">connecting...</div>
<script>
// A guarded view is opened as /?token=T: every request of the page carries it on.
const token = new URLSearchParams(location.search).get('token');
const withToken = (path) => token ? `${path}?token=${encodeURIComponent(token)}` : path;
document.getElementById('live').src = withToken('/stream.mjpg');
async function poll() {
  try {
    const s = await (await fetch(withToken('/stats.json'), {cache: 'no-store'})).json();
    const stages = Object.entries(s.stages_ms).map(([k, v]) => `${k} ${v} ms`).join(' | ');
    const gaps = s.gaps_s.length ? ` | gaps ${s.gaps_s.join(', ')} s` : '';
    const state = s.reconnecting ? ' | RECONNECTING' : '';
    document.getElementById('stats').textContent = `${s.fps} FPS | ${s.frames} frames | ${stages}${gaps}${state}`;
  } catch (e) { document.getElementById('stats').textContent = 'stream ended'; }
}
setInterval(poll, 1000); poll();
</script></body></html>
"""


MAX_VIEWERS = 8  # MJPEG streams at once; each costs a JPEG send per frame, so a flood is turned away (503)
REQUEST_TIMEOUT = 10.0  # seconds a connection may take to send its request: idle sockets do not pile up


@dataclass(frozen=True)
class ViewAccess:
    """Who may watch a live view bound beyond loopback: the holders of a token, or (explicitly) anyone."""

    token: str | None = None
    public: bool = False


VIEW_TOKEN_VARIABLE = "EDGESEG_VIEW_TOKEN"


def view_access(token: str | None, token_file: str | None, public: bool) -> ViewAccess:
    """The live view's access from --view-token, --view-token-file or $EDGESEG_VIEW_TOKEN (in that order). A
    token on the command line is visible to every user of the machine in `ps`; a file or the environment is not."""
    given = [(where, value) for where, value in (("--view-token", token), ("--view-token-file", token_file)) if value]
    if len(given) > 1:
        raise EdgesegError("--view-token and --view-token-file contradict each other: give one")
    where = given[0][0] if given else VIEW_TOKEN_VARIABLE
    if token_file:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise EdgesegError(f"--view-token-file '{token_file}' cannot be read ({reason}); check the path") from None
        if not token:
            raise EdgesegError(f"--view-token-file '{token_file}' is empty; write the token into it")
    elif not token:
        token = os.environ.get(VIEW_TOKEN_VARIABLE) or None
    if token and public:
        raise EdgesegError(f"--view-public and a view token ({where}) contradict each other: choose who may watch")
    return ViewAccess(token=token, public=public)


def is_loopback(host: str) -> bool:
    return host == "localhost" or host.startswith("127.") or host == "::1"


def access_line(host: str, port: int, access: ViewAccess) -> str:
    """The one line that says who can watch; a view open to the network without a token or --view-public is refused."""
    if access.token:
        return f"edgeseg: live view at http://{host}:{port}/?token=... (only for ?token= or X-Edgeseg-Token)"
    if is_loopback(host):
        return f"edgeseg: live view at http://{host}:{port}/ (this machine only)"
    if access.public:
        return f"edgeseg: live view at http://{host}:{port}/ open to anyone who can reach it (--view-public)"
    raise EdgesegError(
        f"-o http://{host}:{port} shows the cameras to the network: give --view-token TOKEN (viewers open "
        f"http://HOST:{port}/?token=TOKEN), or --view-public to serve it to anyone, or bind 127.0.0.1"
    )


class LiveViewSink(Sink):
    """`-o http://HOST:PORT`: an HTML page, the overlay as MJPEG, and /stats.json. Binds 127.0.0.1 unless told;
    beyond loopback it needs a token (or --view-public)."""

    def __init__(self, uri: str, access: ViewAccess | None = None, quality: int = 80):
        parts = urlsplit(uri)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 8080
        self.access = access or ViewAccess()
        announcement = access_line(self.host, self.port, self.access)
        self.quality = quality
        self.condition = threading.Condition()
        self.jpeg: bytes | None = None
        self.sequence = 0
        self.viewers = 0
        self.closed = False
        self.stats: LiveStats = lambda: {
            "fps": 0,
            "frames": 0,
            "dropped": 0,
            "stages_ms": {},
            "gaps_s": [],
            "reconnecting": False,
        }
        try:
            self.server = ThreadingHTTPServer((self.host, self.port), _handler(self))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise EdgesegError(
                    f"port {self.port} on {self.host} is already in use; choose another: -o "
                    f"http://{self.host}:{self.port + 1}"
                ) from None
            raise EdgesegError(f"cannot serve the live view on {self.host}:{self.port}: {exc.strerror}") from None
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="live-view", daemon=True)
        self.thread.start()
        print(announcement.replace(f":{self.port}/", f":{self.server.server_address[1]}/"), file=sys.stderr, flush=True)

    def show_stats(self, stats: LiveStats) -> None:
        self.stats = stats

    def write(self, image: np.ndarray, prediction: Prediction) -> None:
        if self.viewers == 0:
            return  # nobody is watching: skip the JPEG encode
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if ok:
            with self.condition:
                self.jpeg, self.sequence = encoded.tobytes(), self.sequence + 1
                self.condition.notify_all()

    def admit_viewer(self) -> bool:
        """Count a new MJPEG viewer in if there is room; the check and the count are one step, so a burst of
        requests cannot slip past the limit."""
        with self.condition:
            if self.viewers >= MAX_VIEWERS:
                return False
            self.viewers += 1
            return True

    def newest_after(self, sequence: int, timeout: float = 1.0) -> tuple[int, bytes | None]:
        with self.condition:
            self.condition.wait_for(lambda: self.sequence != sequence or self.closed, timeout)
            return self.sequence, self.jpeg

    def close(self) -> None:
        with self.condition:
            self.closed = True
            self.condition.notify_all()
        self.server.shutdown()
        self.server.server_close()

    def describe(self) -> str:
        return f"http://{self.host}:{self.port}/"


def _handler(sink: LiveViewSink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = REQUEST_TIMEOUT

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path, _, query = self.path.partition("?")
            if not self._allowed(query):
                self._send(403, "text/plain", b"this live view needs its token: open /?token=TOKEN\n")
            elif path in ("/", "/index.html"):
                self._send(200, "text/html; charset=utf-8", PAGE.encode())
            elif path == "/stats.json":
                self._send(200, "application/json", json.dumps(sink.stats()).encode())
            elif path == "/stream.mjpg":
                if sink.admit_viewer():
                    self._stream()
                else:
                    self._send(503, "text/plain", f"at most {MAX_VIEWERS} viewers at once\n".encode())
            else:
                self._send(404, "text/plain", b"not found\n")

        def _allowed(self, query: str) -> bool:
            if not sink.access.token:
                return True
            given = parse_qs(query).get("token", [""])[0] or self.headers.get("X-Edgeseg-Token", "")
            return hmac.compare_digest(given.encode(), sink.access.token.encode())

        def _send(self, status: int, kind: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _stream(self) -> None:
            """Send the newest overlay as MJPEG until the viewer leaves; the viewer was counted in by admit_viewer."""
            try:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                sequence = -1
                while not sink.closed:
                    sequence, jpeg = sink.newest_after(sequence)
                    if jpeg is None:
                        continue
                    self.wfile.write(
                        b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                        + jpeg
                        + b"\r\n"
                    )
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the viewer left
            finally:
                with sink.condition:
                    sink.viewers -= 1

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep the terminal for edgeseg
            pass

    return Handler


class StreamOutSink(Sink):
    """`-o udp://HOST:PORT` (MPEG-TS) or `-o rtsp://SERVER/path` (published to an RTSP server), H.264 through FFmpeg."""

    def __init__(self, uri: str, fps: float):
        if shutil.which("ffmpeg") is None:
            raise EdgesegError(f"streaming to {redact(uri)} needs the ffmpeg program: apt install ffmpeg")
        self.uri, self.fps = uri, fps
        self.process: subprocess.Popen | None = None
        self.frames = 0
        if has_secret(stream_out_target(uri)):
            print(
                f"edgeseg: warning: ffmpeg takes the credentials of {redact(uri)} on its command line (it reads RTSP "
                "credentials from the URL only), where every user of this machine sees them (ps); publish to a "
                "server on this machine or one that needs none to keep them private",
                file=sys.stderr,
            )

    def _start(self, width: int, height: int) -> subprocess.Popen:
        return subprocess.Popen(stream_out_command(self.uri, self.fps, width, height), stdin=subprocess.PIPE,
                                stderr=subprocess.PIPE)  # fmt: skip

    def write(self, image: np.ndarray, prediction: Prediction) -> None:
        if self.process is None:
            self.process = self._start(image.shape[1], image.shape[0])
        try:
            self.process.stdin.write(np.ascontiguousarray(image).tobytes())
        except BrokenPipeError:
            error = self.process.stderr.read().decode(errors="replace").strip().splitlines()
            raise EdgesegError(
                f"ffmpeg stopped streaming to {redact(self.uri)}: "
                f"{redact_text(error[-1]) if error else 'no reason given'}"
            ) from None
        self.frames += 1

    def close(self) -> None:
        if self.process is not None:
            try:
                self.process.stdin.close()
            except BrokenPipeError:
                pass
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def describe(self) -> str:
        return f"{redact(self.uri)} ({self.frames} frames)"


def stream_out_target(uri: str) -> str:
    """The output URL ffmpeg is given. Its command line is readable by every user of the machine (ps,
    /proc/PID/cmdline), so what the protocol does not use leaves the URL: FFmpeg's udp:// ignores user-info and
    knows no token= or password= (its options are pkt_size, ttl, ...). rtsp:// keeps them: FFmpeg's RTSP muxer reads
    credentials from the URL alone (libavformat/rtsp.c splits them out of it; there is no option or file to
    pass them by, and -/option files hold option values, not the output URL), so there they stay visible in ps and
    the sink warns once."""
    if uri.lower().startswith("rtsp"):
        return uri
    target, hash_mark, fragment = without_credentials(uri).partition("#")
    if "pkt_size" not in target:  # one MPEG-TS packet group per datagram: 7 x 188 bytes fits any MTU
        target += f"{'&' if '?' in target else '?'}pkt_size=1316"
    return f"{target}{hash_mark}{fragment}"


def stream_out_command(uri: str, fps: float, width: int, height: int) -> list[str]:
    """ffmpeg's argv for H.264 raw BGR frames from stdin to `uri`: MPEG-TS over UDP, or published over RTSP/TCP."""
    container = ["-f", "rtsp", "-rtsp_transport", "tcp"] if uri.lower().startswith("rtsp") else ["-f", "mpegts"]
    return [
        "ffmpeg", "-hide_banner", "-loglevel", "error",
        "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}", "-r", f"{fps:g}", "-i", "-",
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
        "-g", str(max(1, round(fps))),
        *container, stream_out_target(uri),
    ]  # fmt: skip
