"""The live view is not an open door: beyond loopback it needs a token (or --view-public), viewers are bounded.
All traffic stays on this machine: the view binds 0.0.0.0 and every client connects through 127.0.0.1."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

import pytest
from conftest import assert_one_line_error, free_ports, run_cli
from test_streams import chromium_paths, edgeseg, headless_chromium, stop, wait_for

SOURCE = "synthetic://driving?frames=1000000&size=320x240&fps=30&realtime=1"
TOKEN = "s3cret-Token"


def get(port: int, path: str, header: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if header:
        request.add_header("X-Edgeseg-Token", header)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


@pytest.fixture()
def guarded_view(tiny_bundle):
    port = free_ports(1)[0]
    run = edgeseg("run", tiny_bundle, "-i", SOURCE, "-o", f"http://0.0.0.0:{port}", "--view-token", TOKEN)
    assert wait_for(lambda: get(port, f"/stats.json?token={TOKEN}")[0] == 200, 30), "the live view did not start"
    yield port
    _, stderr = stop(run)
    assert run.returncode == 130, stderr
    assert "only for ?token= or X-Edgeseg-Token" in stderr and TOKEN not in stderr


def test_a_view_open_to_the_network_needs_a_token_or_view_public(tiny_bundle, capsys):
    code, _, err = run_cli(capsys, "run", tiny_bundle, "-i", SOURCE, "-o", "http://0.0.0.0:8099")
    assert_one_line_error(code, err, "shows the cameras to the network", "--view-token", "--view-public")


def test_view_public_and_view_token_contradict(tiny_bundle, capsys):
    argv = ["run", tiny_bundle, "-i", SOURCE, "-o", "http://0.0.0.0:8099", "--view-public", "--view-token", "x"]
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, "contradict each other")


def test_view_public_says_so(tiny_bundle, capsys):
    port = free_ports(1)[0]
    argv = ["run", tiny_bundle, "-i", "synthetic://driving?frames=3", "-o", f"http://0.0.0.0:{port}", "--view-public"]
    code, _, err = run_cli(capsys, *argv)
    assert code == 0 and "open to anyone who can reach it (--view-public)" in err


def test_requests_without_the_token_are_refused(guarded_view):
    port = guarded_view
    for path, header in (
        ("/", None),
        ("/stats.json", None),
        ("/stream.mjpg", None),
        ("/stats.json?token=wrong", None),
        ("/stats.json", "wrong"),
    ):
        status, body = get(port, path, header)
        assert status == 403 and b"needs its token" in body, (path, header, status)
    assert get(port, f"/stats.json?token={TOKEN}")[0] == 200
    status, body = get(port, "/stats.json", header=TOKEN)
    assert status == 200 and {"fps", "frames", "stages_ms"} <= set(json.loads(body))  # the header works too


def test_a_flood_of_viewers_is_bounded_and_does_not_stop_the_pipeline(guarded_view):
    port = guarded_view
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(100)]  # connect, say nothing
    streams = []
    try:
        for _ in range(12):
            viewer = socket.create_connection(("127.0.0.1", port))
            viewer.sendall(f"GET /stream.mjpg?token={TOKEN} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            streams.append(viewer)
            time.sleep(0.05)
        statuses = [viewer.recv(64).split(b" ")[1] for viewer in streams]
        assert statuses.count(b"200") == 8 and statuses.count(b"503") == 4  # at most 8 viewers at once
        before = json.loads(get(port, f"/stats.json?token={TOKEN}")[1])["frames"]
        assert wait_for(lambda: json.loads(get(port, f"/stats.json?token={TOKEN}")[1])["frames"] >= before + 20, 20)
    finally:
        for connection in idle + streams:
            connection.close()


@pytest.mark.skipif(
    chromium_paths() is None, reason="needs Debian's chromium and chromium-driver (make test installs them)"
)
def test_in_a_real_browser_with_and_without_the_token(guarded_view):
    port = guarded_view
    browser = headless_chromium()
    try:
        browser.get(f"http://127.0.0.1:{port}/")
        assert "needs its token" in browser.find_element("tag name", "body").text
        browser.get(f"http://127.0.0.1:{port}/?token={TOKEN}")
        assert wait_for(lambda: browser.execute_script("return document.getElementById('live').naturalWidth") > 0, 30)
        assert wait_for(lambda: "FPS" in browser.find_element("id", "stats").text, 10)
    finally:
        browser.quit()
