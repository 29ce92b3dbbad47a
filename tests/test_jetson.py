"""The Jetson user's setup, with Debian standing in for JetPack: the system Python 3.11 with its own
GStreamer-enabled OpenCV (python3-opencv) and numpy 1.x, a venv made with --system-site-packages, and
`pip install` of the project. The capture pipelines are the ones a Jetson gets, with NVIDIA's elements
swapped for their software stand-ins (edgeseg.runtime.gstreamer)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_one_line_error, run_cli
from test_rtsp import RtspServer, frame_count, needs_rtsp_server

from edgeseg.runtime.gstreamer import csi_pipeline, has_gstreamer, rtsp_pipeline, usb_pipeline, with_appsink

REPO = Path(__file__).resolve().parent.parent
DEBIAN_PYTHON = Path("/usr/bin/python3")
VIDEO = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
TEST_SOURCE = "gst://videotestsrc num-buffers=30 ! video/x-raw,width=320,height=240,framerate=30/1"


def debian_opencv_with_gstreamer() -> bool:
    check = (
        "import cv2, venv; assert 'YES' in [l for l in cv2.getBuildInformation().splitlines() if 'GStreamer:' in l][0]"
    )
    return DEBIAN_PYTHON.is_file() and subprocess.run([DEBIAN_PYTHON, "-c", check], capture_output=True).returncode == 0


needs_debian_opencv = pytest.mark.skipif(
    not debian_opencv_with_gstreamer(),
    reason="needs Debian's python3-opencv (GStreamer) and python3-venv (make test installs them)",
)


@pytest.fixture(scope="module")
def jetson_venv(tmp_path_factory) -> Path:
    """A venv as the README tells Jetson users to make it, with edgeseg installed from this checkout."""
    venv = tmp_path_factory.mktemp("jetson") / "venv"
    subprocess.run([DEBIAN_PYTHON, "-m", "venv", "--system-site-packages", venv], check=True)
    install = subprocess.run([venv / "bin/pip", "install", REPO], capture_output=True, text=True)
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
    (venv / "pip-install.log").write_text(install.stdout + install.stderr)
    return venv


def in_venv(venv: Path, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, cwd=venv.parent)


@needs_debian_opencv
def test_install_keeps_the_systems_opencv_and_numpy(jetson_venv):
    probe = (
        "import cv2, numpy; print(cv2.__file__); print(numpy.__version__); "
        "print([l.strip() for l in cv2.getBuildInformation().splitlines() if 'GStreamer:' in l][0])"
    )
    result = in_venv(jetson_venv, jetson_venv / "bin/python", "-c", probe)
    assert result.returncode == 0, result.stderr
    cv2_path, numpy_version, gstreamer = result.stdout.split("\n")[:3]
    assert cv2_path.startswith("/usr/lib/python3/dist-packages/"), cv2_path
    assert numpy_version.startswith("1."), numpy_version
    assert gstreamer.startswith("GStreamer:") and "YES" in gstreamer
    installed = in_venv(
        jetson_venv,
        jetson_venv / "bin/pip",
        "list",
        "--path",
        next((jetson_venv / "lib").glob("python3*/site-packages")),
    )
    assert "opencv" not in installed.stdout.lower() and "numpy" not in installed.stdout.lower(), installed.stdout


@needs_debian_opencv
def test_gst_source_and_video_file_run_in_the_jetson_python(jetson_venv, tiny_bundle, sample_video, tmp_path):
    for source, frames in ((TEST_SOURCE, 30), (str(sample_video), 68)):
        video = tmp_path / f"out{frames}.mp4"
        result = in_venv(jetson_venv, jetson_venv / "bin/edgeseg", "run", tiny_bundle, "-i", source, "-o", video)
        assert result.returncode == 0, result.stderr
        assert f"frames: {frames} read, {frames} inferred, {frames} written" in result.stdout, result.stdout
        assert frame_count(video) == frames


def assert_gives_640x480_at_15(venv: Path, pipeline: str) -> None:
    """Open the pipeline with Debian's OpenCV (GStreamer) and read a frame: its size and the rate must be as asked."""
    probe = (
        "import cv2, sys; c = cv2.VideoCapture(sys.argv[1], cv2.CAP_GSTREAMER); ok, f = c.read(); "
        "print(c.isOpened(), ok, f.shape if ok else None, c.get(cv2.CAP_PROP_FPS))"
    )
    result = in_venv(venv, venv / "bin/python", "-c", probe, pipeline)
    assert result.stdout.split() == ["True", "True", "(480,", "640,", "3)", "15.0"], result.stdout + result.stderr


@needs_debian_opencv
def test_csi_pipeline_with_software_stand_ins_gives_the_asked_size_and_rate(jetson_venv):
    pipeline = csi_pipeline(0, 640, 480, 15, nvidia=False)
    assert_gives_640x480_at_15(jetson_venv, pipeline)


def test_pipeline_builder_gives_a_jetson_nvidias_elements():
    csi = csi_pipeline(1, 1920, 1080, 30, nvidia=True)
    assert csi.startswith(
        "nvarguscamerasrc sensor-id=1 ! video/x-raw(memory:NVMM),width=1920,height=1080,framerate=30/1,format=NV12"
    )
    assert "nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR" in csi
    assert csi.endswith("appsink drop=true max-buffers=1 sync=false")
    rtsp = rtsp_pipeline("rtsp://cam/1", "tcp", nvidia=True)
    assert "rtspsrc location=rtsp://cam/1 latency=200 protocols=tcp ! rtph264depay ! h264parse ! nvv4l2decoder" in rtsp
    stand_in = rtsp_pipeline("rtsp://cam/1", nvidia=False)
    assert "avdec_h264" in stand_in and "nvv4l2decoder" not in stand_in and "nvvidconv" not in stand_in
    software_csi = csi_pipeline(0, 640, 480, 15, nvidia=False)
    assert software_csi.startswith("videotestsrc is-live=true ! video/x-raw,width=640") and "NVMM" not in software_csi


def test_users_pipelines_get_an_appsink_that_fits_them():
    assert with_appsink("filesrc location=a.mp4 ! decodebin").endswith("appsink drop=false max-buffers=4 sync=false")
    assert with_appsink("v4l2src device=/dev/video1 !").endswith("appsink drop=true max-buffers=1 sync=false")
    assert with_appsink("videotestsrc is-live=true").endswith("appsink drop=true max-buffers=1 sync=false")
    mine = "videotestsrc ! videoconvert ! appsink name=mine"
    assert with_appsink(mine) == mine


@needs_debian_opencv
@needs_rtsp_server
def test_rtsp_decoded_through_gstreamer(jetson_venv, tiny_bundle, tmp_path):
    server = RtspServer("play", VIDEO)
    video = tmp_path / "out.mp4"
    try:
        source = server.url() + "?decoder=gst"
        result = in_venv(
            jetson_venv, jetson_venv / "bin/edgeseg", "run", tiny_bundle, "-i", source, "--frames", "10", "-o", video
        )
    finally:
        server.kill()
    assert result.returncode == 0, result.stderr
    written = int(re.search(r"frames: 10 read, \d+ inferred, (\d+) written", result.stdout).group(1))
    assert written >= 1 and frame_count(video) == written


@needs_debian_opencv
def test_a_gst_pipeline_that_does_not_parse(jetson_venv, tiny_bundle):
    result = in_venv(
        jetson_venv, jetson_venv / "bin/edgeseg", "run", tiny_bundle, "-i", "gst://videotestsrc ! nosuchelement"
    )
    # GStreamer's C library may print its own CRITICAL lines, before or after edgeseg's, when OpenCV tears the
    # failed pipeline down (seen now and then with Debian's OpenCV 4.6); edgeseg's own answer is one line.
    ours = [line for line in result.stderr.strip().splitlines() if line.startswith("edgeseg:")]
    assert result.returncode == 1 and len(ours) == 1 and "Traceback" not in result.stderr
    assert ours[0].startswith("edgeseg: error: GStreamer could not start 'videotestsrc ! nosuchelement'")


@pytest.mark.skipif(has_gstreamer(), reason="this OpenCV has GStreamer; the error is for one without it")
def test_gst_source_with_pips_opencv(tiny_bundle, capsys):
    code, _, err = run_cli(capsys, "run", tiny_bundle, "-i", TEST_SOURCE)
    assert_one_line_error(code, err, "gst:// needs OpenCV built with GStreamer", "--system-site-packages")


def test_rtsp_decoder_option_is_checked(tiny_bundle, capsys):
    code, _, err = run_cli(capsys, "run", tiny_bundle, "-i", "rtsp://127.0.0.1:1/x?decoder=nvidia")
    assert_one_line_error(code, err, "decoder= takes ffmpeg")


def test_missing_opencv_is_one_line():
    code = "import sys; sys.modules['cv2'] = None; from edgeseg.cli import main; sys.exit(main(['info', 'x']))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "edgeseg: error: OpenCV (cv2) is not installed: pip install 'edgeseg[opencv]'; on a Jetson use JetPack's "
        "python3-opencv from a venv made with --system-site-packages"
    )


def camera_stand_in(pipeline: str, pixel_format: str) -> str:
    """No USB camera here: v4l2src is swapped for a live test source that sends what a camera of that format
    sends (JPEG frames, or raw YUYV); the rest of the pipeline is the builder's own."""
    source = "videotestsrc is-live=true ! jpegenc" if pixel_format == "mjpeg" else "videotestsrc is-live=true"
    return re.sub(r"^v4l2src device=\S+", source, pipeline)


@needs_debian_opencv
@pytest.mark.parametrize("pixel_format", ["mjpeg", "yuyv"])
def test_usb_pipeline_with_software_stand_ins_gives_the_asked_size_and_rate(jetson_venv, pixel_format):
    pipeline = camera_stand_in(usb_pipeline("/dev/video0", 640, 480, 15, pixel_format, nvidia=False), pixel_format)
    assert_gives_640x480_at_15(jetson_venv, pipeline)


def test_usb_pipeline_on_a_jetson_decodes_jpeg_in_hardware():
    mjpeg = usb_pipeline("/dev/video1", 1280, 720, 30, "mjpeg", nvidia=True)
    assert mjpeg.startswith(
        "v4l2src device=/dev/video1 ! image/jpeg,width=1280,height=720,framerate=30/1 ! nvv4l2decoder mjpeg=1 ! "
        "nvvidconv ! video/x-raw,format=BGRx"
    )
    assert mjpeg.endswith("appsink drop=true max-buffers=1 sync=false")
    desktop = usb_pipeline("/dev/video1", 1280, 720, 30, "mjpeg", nvidia=False)
    assert "jpegdec" in desktop and "nvv4l2decoder" not in desktop and desktop.startswith("v4l2src device=/dev/video1")
    yuyv = usb_pipeline("/dev/video1", 640, 480, 30, "yuyv", nvidia=True)
    assert "video/x-raw,format=YUY2,width=640,height=480,framerate=30/1 ! nvvidconv" in yuyv


@pytest.mark.skipif(has_gstreamer(), reason="this OpenCV has GStreamer; the error is for one without it")
def test_usb_gst_source_with_pips_opencv(tiny_bundle, capsys):
    code, _, err = run_cli(capsys, "run", tiny_bundle, "-i", "v4l2:///dev/video0?decoder=gst")
    assert_one_line_error(code, err, "needs OpenCV built with GStreamer", "use /dev/videoN")


@needs_debian_opencv
@pytest.mark.parametrize(
    "uri,said",
    [
        ("v4l2:///dev/video0?decoder=gst&format=h265", "format=mjpeg|yuyv"),
        ("v4l2:///dev/video9?decoder=gst", "camera /dev/video9 does not exist"),
    ],
)
def test_usb_gst_source_bad_input_is_one_line(jetson_venv, tiny_bundle, uri, said):
    result = in_venv(jetson_venv, jetson_venv / "bin/edgeseg", "run", tiny_bundle, "-i", uri)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and said in result.stderr, result.stderr


def test_on_a_jetson_a_missing_cv2_or_torch_never_points_at_pip(monkeypatch, tmp_path):
    import edgeseg.jetson
    from edgeseg.errors import import_failure, missing_module

    release = tmp_path / "nv_tegra_release"
    release.write_text("# R36 (release), REVISION: 4.3\n")
    monkeypatch.setattr(edgeseg.jetson, "TEGRA_RELEASE", release)
    missing_cv2 = ModuleNotFoundError("No module named 'cv2'", name="cv2")
    line = import_failure(missing_cv2)
    assert "JetPack's python3-opencv" in line and "--system-site-packages" in line and "edgeseg[opencv]" not in line
    torch = missing_module("torch", "export", ModuleNotFoundError("No module named 'torch'", name="torch"))
    assert "desktop stages" in torch and "pip install" not in torch
    release.unlink()  # off a Jetson: the desktop's fixes
    assert "pip install 'edgeseg[opencv]'" in import_failure(missing_cv2)
    assert "pip install 'edgeseg[export]'" in missing_module("torch", "export", ModuleNotFoundError("x", name="torch"))
