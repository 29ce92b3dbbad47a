"""HLS in: playlists written by a real ffmpeg, served by a real HTTP server on loopback."""

from __future__ import annotations

import functools
import re
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import run_cli
from test_rtsp import frame_count
from test_streams import needs_ffmpeg, wait_for


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        pass


@pytest.fixture()
def served(tmp_path):
    """A folder served over HTTP on loopback: (folder, base URL)."""
    folder = tmp_path / "hls"
    folder.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def write_hls(video: Path, folder: Path, live: bool) -> subprocess.Popen:
    """ffmpeg cutting a real video into 1-second H.264 segments; live: at the video's own rate, the playlist
    growing (and finished with #EXT-X-ENDLIST at the end); else a finished (VOD) playlist at once."""
    pace = ["-re"] if live else []
    kind = [] if live else ["-hls_playlist_type", "vod"]
    command = ["ffmpeg", "-hide_banner", "-loglevel", "error", *pace, "-i", str(video), "-c:v", "libx264"]
    command += ["-preset", "ultrafast", "-g", "10", "-f", "hls", "-hls_time", "1", "-hls_list_size", "0", *kind]
    return subprocess.Popen([*command, str(folder / "x.m3u8")], stdin=subprocess.DEVNULL)


@needs_ffmpeg
def test_finished_playlist_is_read_like_a_file(tiny_bundle, sample_video, served, tmp_path, capsys):
    folder, url = served
    assert write_hls(sample_video, folder, live=False).wait(timeout=60) == 0
    video = tmp_path / "out.mp4"
    code, stdout, err = run_cli(capsys, "run", tiny_bundle, "-i", f"{url}/x.m3u8", "-o", video)
    assert code == 0, err
    total = frame_count(folder / "x.m3u8")  # every frame of every segment, decoded straight from the files
    assert total > 0 and f"frames: {total} read, {total} inferred, {total} written, 0 dropped" in stdout
    assert frame_count(video) == total


@needs_ffmpeg
def test_live_playlist_is_read_from_its_first_segment_to_its_end(tiny_bundle, sample_video, served, capsys):
    folder, url = served
    writer = write_hls(sample_video, folder, live=True)
    try:
        assert wait_for(lambda: (folder / "x.m3u8").is_file(), timeout=30), "ffmpeg wrote no playlist"
        assert "#EXT-X-ENDLIST" not in (folder / "x.m3u8").read_text()  # live: still growing
        code, stdout, err = run_cli(capsys, "run", tiny_bundle, "-i", f"{url}/x.m3u8", "--stream-timeout", "5")
    finally:
        writer.wait(timeout=60)
    assert code == 0, err
    # Every frame of every segment is decoded; inference takes the newest, as for any live source.
    read, written = map(int, re.search(r"frames: (\d+) read, \d+ inferred, (\d+) written", stdout).groups())
    total = frame_count(folder / "x.m3u8")  # the finished playlist, decoded straight from the files
    assert total > 0 and read == total and 1 <= written <= total
