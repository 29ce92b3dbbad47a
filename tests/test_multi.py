"""Several inputs in one run: a capture thread each, batched inference, per-stream outputs, a tiled view."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest
from conftest import TINY, assert_one_line_error, recipe_bundle, run_cli
from test_rtsp import frame_count

from edgeseg.runtime.frames import Frame, Prediction
from edgeseg.runtime.sinks import Sink
from edgeseg.runtime.sinks.factory import stream_names
from edgeseg.runtime.sinks.tiled import TiledSink


@pytest.fixture(scope="module")
def batch_bundle(tmp_path_factory):
    """The tiny U-Net with a dynamic batch dimension."""
    return recipe_bundle(tmp_path_factory, "unet-dynamic-batch")


@pytest.fixture(scope="module")
def camera_files(tmp_path_factory):
    """Four recordings of the synthetic driving scene, 640x480, of 12, 15, 18 and 21 frames."""
    folder = tmp_path_factory.mktemp("cameras")
    from edgeseg.runtime.sources import open_source

    paths = []
    for index in range(4):
        path = folder / f"cam{index}.mp4"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (640, 480))
        for frame in open_source(f"synthetic://driving?seed={7000 + index}&size=640x480&frames={12 + 3 * index}"):
            writer.write(frame.image)
        writer.release()
        paths.append(path)
    return paths


def inputs(paths) -> list[str]:
    return [arg for path in paths for arg in ("-i", str(path))]


def test_four_files_lose_no_frame_and_are_batched(batch_bundle, camera_files, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "run", batch_bundle, *inputs(camera_files), "-o", out / "{stream}.mp4")
    assert code == 0, err
    for index in range(len(camera_files)):
        frames = 12 + 3 * index
        assert frame_count(out / f"cam{index}.mp4") == frames  # complete, in its own file
        assert re.search(rf"stream {index} cam{index}: {frames} read, {frames} written, 0 dropped", stdout)
    assert "frames: 66 read, 66 inferred, 66 written" in stdout
    mean_batch = float(re.search(r"batching: ([\d.]+) frames per inference call", stdout).group(1))
    assert mean_batch > 1.5  # the streams shared inference calls


def test_index_template_and_folders(batch_bundle, camera_files, tmp_path, capsys):
    code, _, err = run_cli(capsys, "run", batch_bundle, *inputs(camera_files[:2]), "-o", tmp_path / "f{index}")
    assert code == 0, err
    assert len(list((tmp_path / "f0").glob("*.jpg"))) == 12 and len(list((tmp_path / "f1").glob("*.jpg"))) == 15


def test_a_slow_stream_does_not_hold_a_fast_one(batch_bundle, camera_files, tmp_path, capsys):
    slow = "synthetic://driving?seed=1&size=160x120&frames=3&fps=4&realtime=1"  # a frame every 0.25 s
    argv = ["run", batch_bundle, "-i", str(camera_files[3]), "-i", slow, "-o", tmp_path / "{index}.mp4"]
    code, stdout, err = run_cli(capsys, *argv)
    assert code == 0, err
    assert frame_count(tmp_path / "0.mp4") == 21 and frame_count(tmp_path / "1.mp4") == 3
    # Batches formed without waiting for the slow stream: far more calls than the slow stream's 3 frames.
    assert float(re.search(r"batching: ([\d.]+)", stdout).group(1)) < 1.5


def test_a_batch_one_bundle_runs_one_call_per_frame_and_says_so(tiny_bundle, camera_files, tmp_path, capsys):
    code, stdout, err = run_cli(capsys, "run", tiny_bundle, *inputs(camera_files[:2]), "-o", tmp_path / "{stream}.mp4")
    assert code == 0, err
    assert "fixed batch of 1" in err and "--dynamic-batch" in err
    assert frame_count(tmp_path / "cam0.mp4") == 12 and frame_count(tmp_path / "cam1.mp4") == 15


def test_more_inputs_than_a_fixed_batch_take_several_calls_a_round(tmp_path, camera_files, capsys):
    bundle = tmp_path / "batch2"
    assert run_cli(capsys, "export", "unet", "-o", bundle, *TINY, "--batch", "2")[0] == 0
    code, stdout, err = run_cli(capsys, "run", bundle, *inputs(camera_files[:3]), "-o", tmp_path / "{stream}.mp4")
    assert code == 0, err
    assert [frame_count(tmp_path / f"cam{index}.mp4") for index in range(3)] == [12, 15, 18]
    assert float(re.search(r"batching: ([\d.]+)", stdout).group(1)) > 1.0  # calls of two frames, not one by one


def test_two_inputs_into_one_file(batch_bundle, camera_files, tmp_path, capsys):
    code, _, err = run_cli(capsys, "run", batch_bundle, *inputs(camera_files[:2]), "-o", tmp_path / "one.mp4")
    assert_one_line_error(code, err, "would get all 2 inputs in one output", "{stream}")
    assert not (tmp_path / "one.mp4").exists()


def test_a_template_in_an_output_that_cannot_take_one(batch_bundle, camera_files, capsys):
    code, _, err = run_cli(capsys, "run", batch_bundle, *inputs(camera_files[:2]), "-o", "http://127.0.0.1:0/{stream}")
    assert_one_line_error(code, err, "{stream} and {index} go in file, folder and stream-out outputs")


def test_stream_names():
    assert stream_names(["a/front.mp4", "rtsp://cam.local:8554/rear", "/dev/video0"]) == ["front", "rear", "video0"]
    assert stream_names(["x/cam.mp4", "y/cam.mp4"]) == ["cam-0", "cam-1"]
    assert stream_names(["synthetic://driving?seed=1"]) == ["driving"]


class Keep(Sink):
    def __init__(self):
        self.images = []

    def write(self, image, prediction):
        self.images.append(image.copy())


def test_tiled_view_puts_each_stream_in_its_tile():
    inner = Keep()
    tiled = TiledSink(inner, ["front", "rear", "left"], tile_width=320)
    for stream, value in ((0, 60), (2, 200)):
        image = np.full((240, 320, 3), value, np.uint8)
        frame = Frame(0, image, 0.0, stream=stream)
        tiled.write(image, Prediction(frame, np.zeros((8, 8), np.uint8), None))
    mosaic = inner.images[-1]
    assert mosaic.shape == (480, 640, 3)  # 2x2 grid of 320x240 tiles
    assert np.median(mosaic[:240, :320]) == 60 and np.median(mosaic[240:, :320]) == 200  # streams 0 and 2
    assert mosaic[:240, 320:].max() == 0  # stream 1 has sent nothing yet


def test_live_view_reports_each_stream(batch_bundle):
    import json
    import urllib.request

    from conftest import free_ports
    from test_streams import edgeseg, stop, wait_for

    port = free_ports(1)[0]
    source = "synthetic://driving?seed={}&size=160x120&frames=100000&fps=10&realtime=1"
    run = edgeseg("run", batch_bundle, "-i", source.format(1), "-i", source.format(2), "-o", f"http://127.0.0.1:{port}")

    def streams() -> list[dict]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats.json", timeout=2) as answer:
                return json.loads(answer.read())["streams"]
        except OSError:
            return []

    try:
        assert wait_for(lambda: len(s := streams()) == 2 and all(x["frames"] >= 5 for x in s), timeout=60)
        names = [x["name"] for x in streams()]
    finally:
        stop(run)
    assert names == ["driving-0", "driving-1"]  # one name each, even for two inputs alike


def test_bench_streams_compares_one_batched_run_with_separate_runs(batch_bundle, tmp_path, capsys):
    import json

    report = tmp_path / "streams.json"
    code, stdout, err = run_cli(capsys, "bench", batch_bundle, "--streams", "2", "--frames", "6", "--json", report)
    assert code == 0, err
    data = json.loads(report.read_text())
    assert data["streams"] == 2 and data["frames_per_stream"] == 6 and data["source_size"] == [720, 1280]
    assert len(data["batched_per_stream_fps"]) == 2 and len(data["separate_fps"]) == 2
    assert all(v > 0 for v in data["separate_fps"]) and data["batched_fps"] > 0 and data["mean_batch"] > 1
    assert data["batched_vs_sum_of_separate"] == pytest.approx(data["batched_fps"] / sum(data["separate_fps"]))
    assert "one batched run" in stdout and "2 separate runs" in stdout


@pytest.mark.parametrize(
    "argv,fragment",
    [(["--streams", "1"], "--streams: must be at least 2"), (["--streams", "2", "--md", "x.md"], "--json")],
)
def test_bench_streams_bad_input(batch_bundle, argv, fragment, capsys):
    code, _, err = run_cli(capsys, "bench", batch_bundle, *argv)
    assert_one_line_error(code, err, fragment)
