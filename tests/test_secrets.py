"""Camera passwords and tokens never reach a line, a file name, a report or the live view (issue 33, part 1)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import assert_one_line_error, free_ports, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_rtsp import VIDEO as RTSP_VIDEO
from test_rtsp import RtspServer, needs_rtsp_server
from test_streams import edgeseg, stop, wait_for

from edgeseg.redact import redact, redact_text, split_uri
from edgeseg.runtime.sinks.factory import stream_names
from edgeseg.runtime.sinks.live import VIEW_TOKEN_VARIABLE, view_access

SECRET = "SECRETpw42"
# What RFC 3986 lets user-info hold unencoded (unreserved, sub-delims, ':'), and '@' (FFmpeg takes the last one).
USERINFO = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:%@", min_size=1,
    max_size=24,
)  # fmt: skip
TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~", min_size=1, max_size=24)
SAFE = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=8)
FAST = settings(max_examples=300, deadline=None)


def secret_of(value: str) -> str:
    """A secret no URI part could contain by chance: a marker around the generated text."""
    return f"Qz{value}Zq"


@FAST
@given(user=USERINFO, password=USERINFO, token=TOKEN, host=SAFE, path=SAFE,
       scheme=st.sampled_from(["rtsp", "rtsps", "http", "https", "udp", "rtp"]),
       key=st.sampled_from(["token", "TOKEN", "password", "access_token", "pwd"]))  # fmt: skip
def test_no_user_info_or_token_survives_redaction(user, password, token, host, path, scheme, key):
    user, secret, hidden = f"Uu{user}uU", secret_of(password), secret_of(token)
    uri = f"{scheme}://{user}:{secret}@{host}:554/{path}?a=1&{key}={hidden}"
    for shown in (redact(uri), redact_text(f"stream '{uri}' did not open"), redact_text(f"at {uri}.")):
        assert secret not in shown and hidden not in shown and user not in shown
        assert host in shown and "***" in shown
    assert redact(redact(uri)) == redact(uri)


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("rtsp://admin:PASSWORD@127.0.0.1:9/cam", "rtsp://***@127.0.0.1:9/cam"),
        ("http://user:pw@cam/mjpg?token=abc&fps=5", "http://***@cam/mjpg?token=***&fps=5"),
        ("rtsp://a:b@c@host/x", "rtsp://***@host/x"),  # a raw '@' in the password
        ("rtsp://host/x?password=zz#frag", "rtsp://host/x?password=***#frag"),
        ("rtsp://[::1]:8554/x", "rtsp://[::1]:8554/x"),
        ("/videos/front@noon.mp4", "/videos/front@noon.mp4"),  # a path is not a URI
        ("synthetic://driving?seed=3", "synthetic://driving?seed=3"),
        ("none", "none"),
    ],
)
def test_redact(uri, shown):
    assert redact(uri) == shown


def test_split_uri_follows_ffmpeg():
    assert split_uri("rtsp://u:p@h:1/a?b") == ("rtsp", "u:p", "h:1", "/a?b")
    assert split_uri("not a uri") is None


def test_stream_names_come_from_host_and_path_never_user_info():
    names = stream_names(
        ["rtsp://admin:PASSWORD@cam1/", "rtsp://admin:PASSWORD@cam2:554", "rtsp://u:p@h/live/front?token=x",
         "http://u:p@[::1]:80/", "rtsp://PASSWORD@/"]
    )  # fmt: skip
    assert names == ["cam1", "cam2", "front", "1", "stream"]
    assert not any("PASSWORD" in name or "admin" in name for name in names)


@settings(max_examples=200, deadline=None)
@given(user=USERINFO, password=USERINFO, host=st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True),
       path=st.from_regex(r"[a-z0-9]{0,8}", fullmatch=True))  # fmt: skip
def test_stream_names_never_hold_user_info(user, password, host, path):
    secret = secret_of(password)
    (name,) = stream_names([f"rtsp://{user}:{secret}@{host}/{path}"])
    assert secret not in name and name in (path or host, "stream")


# -- what the CLI prints --------------------------------------------------------------------------------------
CLOSED = free_ports(1)[0]  # nothing listens there: the stream is refused at once


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(user=USERINFO, password=USERINFO, token=TOKEN,
       scheme=st.sampled_from(["rtsp", "http", "cam"]), key=st.sampled_from(["token", "password"]))  # fmt: skip
def test_no_line_the_cli_prints_holds_a_secret(tiny_bundle, capsys, user, password, token, scheme, key):
    secret, hidden = secret_of(password), secret_of(token)
    uri = f"{scheme}://{user}:{secret}@127.0.0.1:{CLOSED}/cam?{key}={hidden}"
    code, out, err = run_cli(capsys, "run", tiny_bundle, "-i", uri, "-o", "none", "--stream-timeout", "1")
    assert code != 0
    assert "Traceback" not in err
    for text in (out, err):
        assert secret not in text and hidden not in text and f"{user}:{secret}" not in text


@pytest.mark.parametrize(
    "uri",
    [
        f"rtsp://admin:{SECRET}@127.0.0.1:{CLOSED}/x",
        f"http://admin:{SECRET}@127.0.0.1:{CLOSED}/mjpg",
        f"rtsp://admin:{SECRET}@[bad/x",  # not even a URI urllib can split
        f"v4l2://admin:{SECRET}@/dev/video99",
        f"rtsp://127.0.0.1:{CLOSED}/x?decoder=nope&token={SECRET}",
    ],
    # ids without the port, which is chosen at collection: pytest-xdist's workers must collect the same ids
    ids=["rtsp-password", "http-password", "unsplittable", "v4l2-password", "query-token"],
)
def test_refused_sources_are_one_line_without_the_secret(tiny_bundle, capsys, uri):
    code, out, err = run_cli(capsys, "run", tiny_bundle, "-i", uri, "--stream-timeout", "1")
    assert_one_line_error(code, err)
    assert SECRET not in out + err


def test_two_refused_streams_and_an_output_with_a_secret(tiny_bundle, capsys, tmp_path):
    uris = [f"rtsp://admin:{SECRET}@127.0.0.1:{CLOSED}/a", f"rtsp://admin:{SECRET}@127.0.0.1:{CLOSED}/b"]
    code, out, err = run_cli(capsys, "run", tiny_bundle, "-i", uris[0], "-i", uris[1], "-o",
                             f"{tmp_path}/{{stream}}.mp4", "--stream-timeout", "1")  # fmt: skip
    assert_one_line_error(code, err)
    assert SECRET not in out + err and not any(SECRET in p.name for p in tmp_path.rglob("*"))
    code, out, err = run_cli(capsys, "run", tiny_bundle, "-i", "synthetic://driving?frames=2", "-o",
                             f"ftp://admin:{SECRET}@host/x")  # fmt: skip
    assert_one_line_error(code, err, "unknown output", "ftp://***@host/x")
    assert SECRET not in out + err


@needs_rtsp_server
def test_served_and_refused_cameras_with_passwords_show_no_secret(tiny_bundle, tmp_path):
    """Done means (issue 33): a multi-stream run with {stream} outputs and a live view, and a bench with --json,
    given rtsp://admin:SECRET@... sources (served by the test RTSP server, which takes any credentials, and
    refused), never show SECRET in stdout, stderr, file names, /stats.json, the page or any file written."""
    server = RtspServer("play", RTSP_VIDEO)
    try:
        served = f"rtsp://admin:{SECRET}@127.0.0.1:{server.port}/stream?token={SECRET}"
        port = free_ports(1)[0]
        # --stream-timeout 30: the test server is a Python GStreamer process; on a busy machine it has taken longer
        # than the default 10 s to answer two clients (the run then stopped before its first frame)
        run = edgeseg("run", tiny_bundle, "-i", served, "-i", f"rtsp://viewer:{SECRET}@127.0.0.1:{server.port}/stream",
                      "-o", tmp_path / "out" / "{stream}.mkv", "-o", f"http://127.0.0.1:{port}", "--stream-timeout",
                      "30")  # fmt: skip
        seen = {}

        def stats_with_frames() -> bool:
            if run.poll() is not None:  # it ended: nothing more will come
                return True
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats.json", timeout=2) as answer:
                    seen["stats"] = answer.read().decode()
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as answer:
                    seen["page"] = answer.read().decode()
            except OSError:
                return False
            return json.loads(seen["stats"])["frames"] >= 4

        assert wait_for(stats_with_frames, 90), "no frames reached the live view"
        out, err = stop(run)
        assert "stats" in seen and json.loads(seen["stats"])["frames"] >= 4, err
        assert run.returncode == 130, err
        assert [s["name"] for s in json.loads(seen["stats"])["streams"]] == ["stream-0", "stream-1"]
        report = tmp_path / "bench.json"
        if server.process.poll() is not None:  # on a busy machine the server has died as the run's two sessions ended
            server.start()  # the same port: the bench is about what it prints, not about the server
        bench = subprocess.run([sys.executable, "-m", "edgeseg", "bench", str(tiny_bundle), "-i", served,
                                "--frames", "4", "--warmup", "1", "--accuracy-frames", "2", "--no-baseline",
                                "--precision", "fp32", "--json", str(report), "--md", str(tmp_path / "bench.md")],
                               capture_output=True, text=True, timeout=300)  # fmt: skip
    finally:
        server.kill()
    assert bench.returncode == 0, bench.stderr
    assert json.loads(report.read_text())["source"] == f"rtsp://***@127.0.0.1:{server.port}/stream?token=***"
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert sorted(p.name for p in written if p.suffix == ".mkv") == ["stream-0.mkv", "stream-1.mkv"]
    for text in (out, err, seen["stats"], seen["page"], bench.stdout, bench.stderr):
        assert SECRET not in text
    for path in written:
        assert SECRET not in path.name and SECRET.encode() not in path.read_bytes()


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs Debian's ffmpeg (make test installs it)")
def test_the_run_summary_shows_outputs_redacted(tiny_bundle, capsys):
    port = free_ports(1, socket.SOCK_DGRAM)[0]
    code, out, err = run_cli(capsys, "run", tiny_bundle, "-i", "synthetic://driving?frames=3&size=64x48", "-o",
                             f"udp://user:{SECRET}@127.0.0.1:{port}?token={SECRET}")  # fmt: skip
    assert code == 0, err
    assert f"outputs: udp://***@127.0.0.1:{port}?token=***" in out and SECRET not in out + err


def test_a_manifest_keeps_no_secret(bundle_copy):
    from edgeseg.bundle import Bundle

    bundle = Bundle.load(bundle_copy)
    bundle.manifest["calibration"] = {"source": f"http://admin:{SECRET}@cams/v.mp4?token={SECRET}", "count": 1}
    bundle.save()
    text = (bundle_copy / "manifest.json").read_text()
    assert SECRET not in text and "http://***@cams/v.mp4?token=***" in text


# -- the view token off the command line ----------------------------------------------------------------------
def test_view_token_from_a_file_or_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(VIEW_TOKEN_VARIABLE, raising=False)
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    assert view_access(None, str(token_file), False).token == "from-file"
    assert view_access("given", None, False).token == "given"
    assert view_access(None, None, False).token is None
    monkeypatch.setenv(VIEW_TOKEN_VARIABLE, "from-env")
    assert view_access(None, None, False).token == "from-env"
    assert view_access("given", None, False).token == "given"


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["--view-token-file", "/nonexistent/token"], ("cannot be read",)),
        (["--view-token-file", "EMPTY"], ("is empty",)),
        (["--view-token-file", "FILE", "--view-token", "x"], ("contradict",)),
        (["--view-token-file", "FILE", "--view-public"], ("contradict",)),
    ],
)
def test_view_token_file_mistakes_are_one_line(tiny_bundle, tmp_path, capsys, argv, fragments):
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "file").write_text("t0ken\n")
    argv = [{"EMPTY": str(tmp_path / "empty"), "FILE": str(tmp_path / "file")}.get(a, a) for a in argv]
    code, _, err = run_cli(capsys, "run", tiny_bundle, "-i", "synthetic://driving?frames=2", "-o",
                           "http://0.0.0.0:8099", *argv)  # fmt: skip
    assert_one_line_error(code, err, *fragments)


def test_the_environment_token_guards_a_view_and_ps_never_shows_it(tiny_bundle, tmp_path):
    port = free_ports(1)[0]
    token = f"tok-{SECRET}"
    env = {**os.environ, VIEW_TOKEN_VARIABLE: token}
    source = "synthetic://driving?frames=1000000&size=160x120&fps=30&realtime=1"
    argv = [sys.executable, "-m", "edgeseg", "run", str(tiny_bundle), "-i", source, "-o", f"http://0.0.0.0:{port}"]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        status = 0
        while time.monotonic() < deadline and status != 200:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats.json?token={token}", timeout=2) as answer:
                    status = answer.status
            except OSError:
                time.sleep(0.2)
        assert status == 200
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/stats.json", timeout=2)
        assert token not in Path(f"/proc/{process.pid}/cmdline").read_bytes().decode(errors="replace")
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
    assert token not in err and "?token=..." in err


def test_a_usage_error_echoes_a_camera_uri_without_its_password(capsys):
    """argparse echoes a bad value; a camera URI given to the wrong flag keeps its password to itself."""
    code, out, err = run_cli(capsys, "run", "bundle", "-i", "a.mp4", "--backend", f"rtsp://admin:{SECRET}@cam/x")
    assert_one_line_error(code, err, "--backend", "rtsp://***@cam/x")
    assert code == 2 and SECRET not in out + err and "admin" not in err
