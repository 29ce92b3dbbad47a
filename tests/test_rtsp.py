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
from conftest import SAMPLE_VIDEOS, TESTS, TINY, assert_one_line_error, free_ports, run_cli
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
    assert "sessions side by side" not in stdout  # a live source: one session with every thread, for latency


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


@needs_rtsp_server
def test_the_served_video_loops_past_its_end(tiny_bundle, tmp_path, capsys):
    """tree.avi has 68 frames; the server sends them again and again, as a camera never stops."""
    server = RtspServer("play", SAMPLE_VIDEOS / "tree.avi")
    try:
        code, stdout, err = run_cli(capsys, "run", tiny_bundle, "-i", server.url(), "--frames", "150", "-o",
                                    tmp_path / "out.mp4")  # fmt: skip
    finally:
        server.kill()
    assert code == 0, err
    assert re.search(r"frames: 150 read", stdout), stdout


@needs_rtsp_server
def test_a_published_stream_is_received_by_a_second_client(tiny_bundle, capsys):
    """edgeseg publishes to /publish (RECORD); the server relays it on /stream, where another client (OpenCV's
    FFmpeg, in this process) watches: it sees black until the overlay arrives, then edgeseg's frames."""
    server = RtspServer("relay", "320x240")
    seen: list[float] = []
    watching = threading.Event()
    done = threading.Event()

    def watch() -> None:
        capture = cv2.VideoCapture(server.url(), cv2.CAP_FFMPEG)
        watching.set()
        while not done.is_set():
            ok, frame = capture.read()
            if ok:
                seen.append(float(frame.mean()))
        capture.release()

    viewer = threading.Thread(target=watch, daemon=True)
    viewer.start()
    try:
        assert watching.wait(20)
        source = "synthetic://driving?seed=3&size=320x240&frames=60&fps=15&realtime=1"
        code, _, err = run_cli(capsys, "run", tiny_bundle, "-i", source, "-o", server.url("/publish"))
        assert code == 0, err
    finally:
        done.set()
        viewer.join(20)
        server.kill()
    published = [m for m in seen if m > 20]  # black (Y=16 -> ~0 in BGR) until edgeseg's overlay is relayed
    print(f"second client: {len(seen)} frames, {len(published)} of them edgeseg's")
    assert len(published) >= 20, f"the second client saw {len(seen)} frames, {len(published)} of them edgeseg's"


@needs_rtsp_server
def test_one_of_two_cameras_dies_and_comes_back_while_the_other_runs_on(tmp_path, capsys):
    """Two RTSP cameras batched in one run: the second's server is killed; the first keeps being written, and
    the second reconnects on its own when its server returns."""
    bundle = tmp_path / "dynamic"
    assert run_cli(capsys, "export", "unet", "-o", bundle, *TINY,
                   "--dynamic-batch")[0] == 0  # fmt: skip
    first, second = RtspServer("play", VIDEO), RtspServer("play", VIDEO)
    out = tmp_path / "frames"
    run = edgeseg("run", bundle, "-i", first.url(), "-i", second.url(), "--rtsp-transport", "tcp",
                  "--stream-timeout", "2", "--reconnect-max-wait", "1", "-o", f"{out}/{{index}}")  # fmt: skip
    count = lambda index: len(list((out / str(index)).glob("*.jpg"))) if (out / str(index)).exists() else 0  # noqa: E731
    try:
        assert wait_for(lambda: count(0) >= 10 and count(1) >= 10), "frames did not arrive from both cameras"
        second.kill()
        time.sleep(4)  # past the 2 s stall timeout: the second stream is lost
        first_during, second_during = count(0), count(1)
        assert wait_for(lambda: count(0) >= first_during + 10, timeout=30), "the live camera was held by the dead one"
        back = second.start()
        assert wait_for(lambda: count(1) > second_during, timeout=60), "the second camera did not reconnect"
        print(f"second camera's frames again {time.monotonic() - back:.2f} s after its server was back")
    finally:
        stdout, stderr = stop(run)
        first.kill()
        second.kill()
    assert run.returncode == 130, stderr
    assert "lost" in stderr and "is back after" in stderr and "Traceback" not in stderr
