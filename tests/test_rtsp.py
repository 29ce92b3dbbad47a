"""RTSP against a real server: GStreamer's gst-rtsp-server (tests/rtsp_server.py) on loopback."""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import cv2
import pytest
from conftest import SAMPLE_VIDEOS, TESTS, assert_one_line_error, free_ports, run_cli
from test_streams import edgeseg, needs_ffmpeg, stop, wait_for

DEBIAN_PYTHON = Path("/usr/bin/python3")
VIDEO = SAMPLE_VIDEOS / "vtest.avi"  # 768x576, 795 frames at 10 FPS: 80 s of street scene


def rtsp_server_available() -> bool:
    check = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    return DEBIAN_PYTHON.is_file() and subprocess.run([DEBIAN_PYTHON, "-c", check], capture_output=True).returncode == 0


needs_rtsp_server = pytest.mark.skipif(
    not rtsp_server_available() or not VIDEO.is_file(),
    reason="needs Debian's python3-gi, gir1.2-gst-rtsp-server-1.0 and opencv-doc (make test installs them)",
)


class RtspServer:
    """tests/rtsp_server.py in its own process; `restart()` kills it and starts it again on the same port."""

    def __init__(self, mode: str, path: Path, port: int | None = None):
        self.mode, self.path, self.port = mode, path, port or free_ports(1)[0]
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> float:
        """Start and wait until it listens; return the moment it did."""
        argv = [str(DEBIAN_PYTHON), str(TESTS / "rtsp_server.py"), str(self.port), self.mode, str(self.path)]
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.process.stdout.readline().strip() == "ready", "the RTSP server did not start"
        return time.monotonic()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def url(self, path: str = "/stream") -> str:
        return f"rtsp://127.0.0.1:{self.port}{path}"


@pytest.fixture()
def player():
    server = RtspServer("play", VIDEO)
    yield server
    server.kill()


def frame_count(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


@needs_rtsp_server
@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_frames_arrive_over_each_transport(tiny_bundle, player, transport, tmp_path, capsys):
    video = tmp_path / "out.mp4"
    code, stdout, err = run_cli(
        capsys, "run", tiny_bundle, "-i", player.url(), "--rtsp-transport", transport, "--frames", "15", "-o", video
    )
    assert code == 0, err
    # A live source hands inference only its newest frame: all 15 are read, those inferred are all written.
    written = int(re.search(r"frames: 15 read, \d+ inferred, (\d+) written", stdout).group(1))
    assert written >= 1 and frame_count(video) == written


@needs_rtsp_server
def test_server_killed_and_restarted_the_run_recovers(tiny_bundle, player, tmp_path):
    frames = tmp_path / "frames"
    argv = ["run", tiny_bundle, "-i", player.url(), "--rtsp-transport", "tcp", "--stream-timeout", "2"]
    run = edgeseg(*argv, "--reconnect-max-wait", "1", "-o", frames)
    count = lambda: len(list(frames.glob("*.jpg"))) if frames.exists() else 0  # noqa: E731 - a one-line helper used just below
    try:
        assert wait_for(lambda: count() >= 10), "no frames arrived from the RTSP server"
        player.kill()
        time.sleep(4)  # past the 2 s stall timeout: the stream is lost
        before = count()
        back = player.start()
        assert wait_for(lambda: count() > before, timeout=60), "the run did not recover after the server restarted"
        print(f"frames again {time.monotonic() - back:.2f} s after the RTSP server was back")
    finally:
        stdout, stderr = stop(run)
    assert run.returncode == 130, stderr
    assert "lost" in stderr and "is back after" in stderr and "Traceback" not in stderr
    gaps = re.search(r"stream gaps: (\d+) \(([\d.]+) s", stdout)
    assert gaps and int(gaps.group(1)) == 1 and float(gaps.group(2)) >= 2.0


@needs_rtsp_server
def test_wrong_path_on_a_live_server(tiny_bundle, player, capsys):
    code, _, err = run_cli(capsys, "run", tiny_bundle, "-i", player.url("/nope"), "--stream-timeout", "3")
    assert_one_line_error(code, err, "no stream at '/nope'", "404")


@needs_rtsp_server
def test_a_stream_the_decoder_cannot_read(tiny_bundle, capsys):
    server = RtspServer("undecodable", VIDEO)
    try:
        code, _, err = run_cli(capsys, "run", tiny_bundle, "-i", server.url(), "--stream-timeout", "3")
    finally:
        server.kill()
    assert_one_line_error(code, err, "X-GST", "which FFmpeg cannot decode")


def test_a_server_that_accepts_but_never_answers(tiny_bundle, capsys):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        held = []
        stop_accepting = threading.Event()

        def accept() -> None:
            listener.settimeout(0.2)
            while not stop_accepting.is_set():
                try:
                    held.append(listener.accept()[0])  # keep it open, say nothing
                except TimeoutError:
                    continue

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        url = f"rtsp://127.0.0.1:{listener.getsockname()[1]}/cam"
        try:
            code, _, err = run_cli(capsys, "run", tiny_bundle, "-i", url, "--stream-timeout", "2")
        finally:
            stop_accepting.set()
            thread.join()
            for connection in held:
                connection.close()
    assert_one_line_error(code, err, "accepted the connection but did not answer")


@needs_rtsp_server
@needs_ffmpeg
def test_publishing_out_is_received(tiny_bundle, tmp_path, capsys):
    received = tmp_path / "received.h264"
    server = RtspServer("record", received)
    try:
        # Paced like a camera: a publisher's TEARDOWN drops what the server's jitter buffer still holds (50 ms).
        source = "synthetic://driving?seed=3&size=320x240&frames=30&fps=15&realtime=1"
        code, _, err = run_cli(capsys, "run", tiny_bundle, "-i", source, "-o", server.url("/publish"))
        assert code == 0, err
        received_frames = lambda: frame_count(received) if received.is_file() else 0  # noqa: E731 - a one-line helper used just below
        assert wait_for(lambda: received_frames() >= 28, timeout=20), f"the server received {received_frames()} of 30"
    finally:
        server.kill()
