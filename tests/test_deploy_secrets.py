"""Deploy and the verbs that read a source keep a camera's password to themselves (issue 33, parts 1 and 4): a
DeepStream config that must hold it is the one file that does, with mode 0600; a deploy whose graph fails its check
leaves no output; ffmpeg's command line (what `ps` shows every user) holds no credentials its protocol does not use.
"""

from __future__ import annotations

import configparser
import functools
import http.server
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import SAMPLE_VIDEOS, assert_one_line_error, free_ports, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_secrets import TOKEN, USERINFO, secret_of

from edgeseg.bundle import Bundle
from edgeseg.deploy.deepstream import APP_CONFIG, app_config_text, overlay_script
from edgeseg.deploy.options import DeployOptions
from edgeseg.redact import without_credentials
from edgeseg.runtime.sinks.live import StreamOutSink, stream_out_command

SECRET = "SECRETpw42"
TOKEN_VALUE = "TOKENzz17"
CAMERA = f"rtsp://admin:{SECRET}@127.0.0.1:9/x?token={TOKEN_VALUE}"
SHOWN = "rtsp://***@127.0.0.1:9/x?token=***"


def wrote(out: str) -> list[Path]:
    return [Path(line.removeprefix("wrote ")) for line in out.splitlines() if line.startswith("wrote ")]


def uri_read_by_the_overlay_script(folder: Path, index: int) -> str:
    """What the generated script's own line sets URI{index} to, run by sh in the deployment folder."""
    script = (folder / "deepstream_overlay.sh").read_text()
    (line,) = [line for line in script.splitlines() if line.startswith(f"URI{index}=")]
    return subprocess.run(["sh", "-c", f'{line}; printf %s "$URI{index}"'], cwd=folder, capture_output=True,
                          text=True, check=True).stdout  # fmt: skip


def test_deepstream_keeps_a_cameras_password_in_one_private_file(tiny_bundle, tmp_path, capsys):
    folder = tmp_path / "ds"
    code, out, err = run_cli(capsys, "deploy", tiny_bundle, "--target", "deepstream", "-o", folder, "-i", CAMERA,
                             "--precision", "fp32")  # fmt: skip
    assert code == 0, err
    assert SECRET not in out + err and TOKEN_VALUE not in out + err
    (note,) = [line for line in err.splitlines() if "0600" in line]
    assert f"{folder / APP_CONFIG} holds the credentials of {SHOWN}" in note
    listed = wrote(out)
    assert listed and all(path.is_file() for path in listed)
    files = [path for path in folder.rglob("*") if path.is_file()]
    assert {path.name for path in listed} == {path.name for path in files}
    for path in files:
        assert SECRET not in path.name
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.name == APP_CONFIG:
            assert mode == 0o600  # readable by its owner only
            app = configparser.ConfigParser(interpolation=None)
            app.read(path)
            assert app["source0"]["uri"] == CAMERA  # deepstream-app connects with the real one
        else:
            assert mode & 0o077 in (0o044, 0o055), (path, oct(mode))  # shared as before
            assert SECRET.encode() not in path.read_bytes() and TOKEN_VALUE.encode() not in path.read_bytes(), path
    script = (folder / "deepstream_overlay.sh").read_text()
    assert SHOWN in script and 'uridecodebin uri="$URI0" ! mux.sink_0' in script
    assert uri_read_by_the_overlay_script(folder, 0) == CAMERA


def test_a_deployment_without_credentials_is_shared_as_before(tiny_bundle, tmp_path, capsys):
    folder = tmp_path / "ds"
    code, out, err = run_cli(capsys, "deploy", tiny_bundle, "--target", "deepstream", "-o", folder, "-i",
                             "rtsp://cam-1/stream", "--precision", "fp32")  # fmt: skip
    assert code == 0, err
    assert "0600" not in err and stat.S_IMODE((folder / APP_CONFIG).stat().st_mode) == 0o644
    assert "uridecodebin uri=rtsp://cam-1/stream ! mux.sink_0" in (folder / "deepstream_overlay.sh").read_text()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(user=USERINFO, password=USERINFO, token=TOKEN, streams=st.integers(1, 3),
       scheme=st.sampled_from(["rtsp", "rtsps", "http", "https"]))  # fmt: skip
def test_only_the_app_config_holds_generated_credentials(tiny_bundle, tmp_path, user, password, token, streams,
                                                         scheme):  # fmt: skip
    """Fuzzed: what the overlay script shows never holds the user-info or token; the app config holds the URI exactly,
    and the script's own line reads it back from there."""
    user, secret, hidden = f"Uu{user}uU", secret_of(password), secret_of(token)
    uris = [f"{scheme}://{user}:{secret}@cam{i}:554/s?token={hidden}" for i in range(streams)]
    bundle = Bundle.load(tiny_bundle)
    options = DeployOptions(target="deepstream", streams=streams, inputs=uris)
    script = overlay_script(bundle, "config_infer_primary_edgeseg.txt", options)
    assert secret not in script and hidden not in script and user not in script
    app = configparser.ConfigParser(interpolation=None)
    app.read_string(app_config_text(bundle, "config_infer_primary_edgeseg.txt", options))
    assert [app[f"source{i}"]["uri"] for i in range(streams)] == uris
    folder = tmp_path / f"f{streams}"
    folder.mkdir(exist_ok=True)
    (folder / APP_CONFIG).write_text(app_config_text(bundle, "config_infer_primary_edgeseg.txt", options))
    (folder / "deepstream_overlay.sh").write_text(script)
    assert uri_read_by_the_overlay_script(folder, streams - 1) == uris[-1]


def test_triton_lists_labels_and_shows_no_source(tiny_bundle, tmp_path, capsys):
    folder = tmp_path / "repo"
    code, out, err = run_cli(capsys, "deploy", tiny_bundle, "--target", "triton", "-o", folder, "-i", CAMERA)
    assert code == 0, err
    assert f"-i {SHOWN} ignored" in err and SECRET not in out + err
    listed = wrote(out)
    assert folder / "unet" / "labels.txt" in listed  # issue 34: it was written without being listed
    assert {p for p in folder.rglob("*") if p.is_file()} == set(listed)
    assert all(SECRET.encode() not in path.read_bytes() for path in listed)


def test_a_graph_that_fails_its_check_leaves_no_output(tiny_bundle, tmp_path, capsys):
    """The opset-17 graph cannot build on JetPack 4.6's TensorRT 8.2: refused after it was written and checked, in the
    scratch folder, so nothing is left, and the next deploy to the same place needs no --force."""
    folder = tmp_path / "ds"
    code, _, err = run_cli(capsys, "deploy", tiny_bundle, "--target", "deepstream", "-o", folder, "--jetpack", "4",
                           "--precision", "fp32")  # fmt: skip
    assert_one_line_error(code, err, "will not build on")
    assert list(tmp_path.iterdir()) == []  # no output, no scratch folder
    # An old deployment stays whole when --force meets a graph that fails its check.
    folder.mkdir()
    (folder / "old.txt").write_text("mine")
    code, _, err = run_cli(capsys, "deploy", tiny_bundle, "--target", "deepstream", "-o", folder, "--jetpack", "4",
                           "--precision", "fp32", "--force")  # fmt: skip
    assert_one_line_error(code, err, "will not build on")
    assert [p.name for p in folder.iterdir()] == ["old.txt"] and [p.name for p in tmp_path.iterdir()] == ["ds"]
    (folder / "old.txt").unlink()  # an empty folder is taken as it is, without --force
    code, out, err = run_cli(capsys, "deploy", tiny_bundle, "--target", "deepstream", "-o", folder, "--precision",
                             "fp32")  # fmt: skip
    assert code == 0, err
    assert all(path.is_file() and path.parent == folder for path in wrote(out))


def test_a_randomly_initialised_model_says_why_its_reexport_differs(tmp_path, capsys):
    """issue 34: --streams 2 needs the model exported again; a function that initialises randomly builds another
    model, and deploy says so as bench does."""
    bundle = tmp_path / "b"
    assert run_cli(capsys, "export", "user_models:random_net", "-o", bundle, "--size", "32x32")[0] == 0
    code, _, err = run_cli(capsys, "deploy", bundle, "--target", "deepstream", "-o", tmp_path / "ds", "--streams",
                           "2", "--precision", "fp32")  # fmt: skip
    assert_one_line_error(code, err, "does not compute what the bundle's graph does", "random initialisation",
                          "--weights")  # fmt: skip
    assert not (tmp_path / "ds").exists()


# -- ffmpeg's command line -------------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(user=USERINFO, password=USERINFO, token=TOKEN, key=st.sampled_from(["token", "password", "pwd", "TOKEN"]))
def test_udp_stream_out_argv_holds_no_credentials(user, password, token, key):
    user, secret, hidden = f"Uu{user}uU", secret_of(password), secret_of(token)
    argv = stream_out_command(f"udp://{user}:{secret}@127.0.0.1:5000?ttl=2&{key}={hidden}", 25, 64, 48)
    line = " ".join(argv)
    assert secret not in line and hidden not in line and user not in line
    assert argv[-1] == "udp://127.0.0.1:5000?ttl=2&pkt_size=1316"


def test_without_credentials():
    assert without_credentials("udp://u:p@h:1?token=t&ttl=2#f") == "udp://h:1?ttl=2#f"
    assert without_credentials("udp://h:1?password=x") == "udp://h:1"
    assert without_credentials("/a/b@c") == "/a/b@c"


@pytest.mark.skipif(not Path("/usr/bin/ffmpeg").exists(), reason="needs Debian's ffmpeg (make test installs it)")
def test_rtsp_stream_out_with_a_password_warns_that_ps_shows_it(capsys):
    """FFmpeg's RTSP muxer reads credentials from the URL only: they stay on its command line, and the user is told
    so in one line that itself shows them as ***."""
    StreamOutSink(f"rtsp://admin:{SECRET}@127.0.0.1:8554/live", 25).close()
    err = capsys.readouterr().err
    assert "rtsp://***@127.0.0.1:8554/live" in err and "(ps)" in err and SECRET not in err
    StreamOutSink("rtsp://127.0.0.1:8554/live", 25).close()
    assert capsys.readouterr().err == ""


def children_command_lines(pid: int) -> list[str]:
    lines = []
    for entry in Path("/proc").iterdir():
        try:
            status = (entry / "status").read_text()
            if f"\nPPid:\t{pid}\n" in status:
                lines.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return lines


@pytest.mark.skipif(not Path("/usr/bin/ffmpeg").exists(), reason="needs Debian's ffmpeg (make test installs it)")
def test_ps_never_shows_a_udp_sinks_credentials(tiny_bundle):
    port = free_ports(1, socket.SOCK_DGRAM)[0]
    run = subprocess.Popen([sys.executable, "-m", "edgeseg", "run", str(tiny_bundle), "-i",
                            "synthetic://driving?frames=40&size=64x48&fps=20&realtime=1", "-o",
                            f"udp://user:{SECRET}@127.0.0.1:{port}?token={SECRET}"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    seen: list[str] = []
    deadline = time.monotonic() + 60
    while run.poll() is None and time.monotonic() < deadline and not any("ffmpeg" in c for c in seen):
        seen = children_command_lines(run.pid)
        time.sleep(0.05)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    (ffmpeg,) = [line for line in seen if line.startswith("ffmpeg ")]
    assert f"udp://127.0.0.1:{port}?pkt_size=1316" in ffmpeg and SECRET not in ffmpeg
    assert SECRET not in out + err


# -- the verbs that read a source ------------------------------------------------------------------------------------
@pytest.fixture()
def video_over_http():
    """tree.avi served over HTTP on 127.0.0.1: a network source that opens (the server takes any credentials)."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002 - the request line holds the token: not on stderr
            pass

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address):  # a reader that closes early is no error here
            pass

    server = Server(("127.0.0.1", 0), functools.partial(Quiet, directory=str(SAMPLE_VIDEOS)))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://admin:{SECRET}@127.0.0.1:{server.server_address[1]}/tree.avi?token={SECRET}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["eval", "{bundle}", "--data", "{uri}"], "has no labels"),
        (["calibrate", "{bundle}", "--data", "{uri}", "--count", "4", "--eval-count", "2"], "live stream"),
        (["dataset", "{uri}", "-o", "{tmp}/labelled"], "has no labels"),
    ],
)
def test_eval_calibrate_and_dataset_show_an_opened_sources_uri_redacted(bundle_copy, tmp_path, capsys,
                                                                        video_over_http, argv, fragment):  # fmt: skip
    values = {"bundle": bundle_copy, "uri": video_over_http, "tmp": tmp_path}
    code, out, err = run_cli(capsys, *(arg.format(**values) for arg in argv))
    assert_one_line_error(code, err, fragment, "http://***@127.0.0.1:")
    assert SECRET not in out + err
    assert not any(SECRET in path.name for path in tmp_path.rglob("*"))


@pytest.mark.parametrize("model", ["unet", "hourglass"])
def test_train_shows_its_data_uri_redacted(tmp_path, capsys, model):
    code, out, err = run_cli(capsys, "train", model, "--data", f"rtsp://admin:{SECRET}@127.0.0.1:9/x?token={SECRET}",
                             "-o", tmp_path / "w.pt")  # fmt: skip
    assert_one_line_error(code, err, "rtsp://***@127.0.0.1:9/x?token=***")
    assert SECRET not in out + err and not os.listdir(tmp_path)


def test_a_dataset_uri_with_credentials_is_shown_redacted(tiny_bundle, capsys):
    code, out, err = run_cli(capsys, "eval", tiny_bundle, "--data", f"cityscapes://admin:{SECRET}@/nowhere?bogus=1")
    assert_one_line_error(code, err, "cityscapes://***@/nowhere?bogus=1")
    assert SECRET not in out + err
