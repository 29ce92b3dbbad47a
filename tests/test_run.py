"""`edgeseg run` and `edgeseg demo` end to end: real videos in, decoded and counted videos out."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import assert_one_line_error, recipe_bundle, run_cli

from edgeseg.runtime.heads import head_for
from edgeseg.runtime.pipeline import HeadModel, Pipeline
from edgeseg.runtime.sinks import Sink


def decoded_frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def written_count(stdout: str) -> int:
    return int(re.search(r"(\d+) written", stdout).group(1))


def test_run_on_a_real_video_writes_every_frame(tiny_bundle, sample_video, tmp_path, capsys):
    out = tmp_path / "tree.mp4"
    code, stdout, err = run_cli(capsys, "run", tiny_bundle, "-i", sample_video, "-o", out)
    assert code == 0, err
    source_frames = len(decoded_frames(sample_video))
    frames = decoded_frames(out)
    assert source_frames == 68 and len(frames) == source_frames == written_count(stdout)
    assert frames[0].shape == (240, 320, 3)
    assert "infer" in stdout and "FPS" in stdout
    assert not list(tmp_path.glob(".*partial*"))


def test_several_outputs_and_saved_masks(tiny_bundle, tmp_path, capsys):
    video, folder = tmp_path / "o.avi", tmp_path / "frames"
    code, stdout, err = run_cli(
        capsys,
        "run",
        tiny_bundle,
        "-i",
        "synthetic://driving?frames=12&size=160x96",
        "-o",
        video,
        "-o",
        folder,
        "--save-mask",
        "--visualize",
        "both",
    )
    assert code == 0, err
    assert len(decoded_frames(video)) == 12
    overlays, masks = sorted(folder.glob("*.jpg")), sorted((folder / "masks").glob("*.png"))
    assert [p.stem for p in overlays] == [p.stem for p in masks] == [f"{i:06d}" for i in range(12)]
    assert cv2.imread(str(overlays[0])).shape == (96, 320, 3)  # overlay and mask side by side
    mask = cv2.imread(str(masks[0]), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (96, 160) and mask.dtype == np.uint8 and mask.max() < 3


def test_frames_limit_and_folder_input(tiny_bundle, tmp_path, capsys):
    frames = tmp_path / "in"
    frames.mkdir()
    for i in range(5):
        cv2.imwrite(str(frames / f"{i}.png"), np.full((50, 70, 3), i * 40, np.uint8))
    code, stdout, _ = run_cli(capsys, "run", tiny_bundle, "-i", frames, "-o", tmp_path / "out", "--frames", "3")
    assert code == 0 and written_count(stdout) == 3
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.png", "1.png", "2.png"]  # names kept


def test_folder_outputs_keep_their_inputs_names_and_formats(tiny_bundle, tmp_path, capsys):
    frames = tmp_path / "in"
    frames.mkdir()
    cv2.imwrite(str(frames / "a.jpg"), np.full((50, 70, 3), 90, np.uint8))
    cv2.imwrite(str(frames / "b.png"), np.full((40, 60, 3), 180, np.uint8))
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "run", tiny_bundle, "-i", frames, "-o", out, "--save-mask")
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == ["a.jpg", "b.png"]
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["a.png", "b.png"]
    assert (out / "b.png").read_bytes()[:4] == b"\x89PNG" and (out / "a.jpg").read_bytes()[:2] == b"\xff\xd8"
    assert cv2.imread(str(out / "b.png")).shape == (40, 60, 3)  # each overlay at its own frame's size


def test_a_folder_where_no_image_can_be_read(tiny_bundle, tmp_path, capsys):
    frames = tmp_path / "in"
    frames.mkdir()
    (frames / "notes.jpg").write_text("not an image")
    code, _, err = run_cli(capsys, "run", tiny_bundle, "-i", frames, "-o", "none")
    assert_one_line_error(code, err, "no image", "could be read", "notes.jpg")


def test_fixed_batch_graph_pads_the_last_batch(tmp_path_factory, tmp_path, capsys):
    bundle = recipe_bundle(tmp_path_factory, "lraspp-batch3")
    code, stdout, err = run_cli(
        capsys, "run", bundle, "-i", "synthetic://medical?frames=7&size=64x64", "-o", tmp_path / "m.mp4"
    )
    assert code == 0, err
    assert written_count(stdout) == 7 and len(decoded_frames(tmp_path / "m.mp4")) == 7


def test_logits_graph_with_linear_filter(tmp_path_factory, tmp_path, capsys):
    bundle = recipe_bundle(tmp_path_factory, "fcn8s-logits")
    code, stdout, err = run_cli(
        capsys,
        "run",
        bundle,
        "-i",
        "synthetic://driving?frames=4&size=96x80",
        "-o",
        tmp_path / "f",
        "--filter-mode",
        "linear",
        "--save-mask",
    )
    assert code == 0, err
    assert len(list((tmp_path / "f" / "masks").glob("*.png"))) == 4


class FailingSink(Sink):
    def write(self, image, prediction):
        if prediction.frame.index == 3:
            raise OSError("disk full")


@pytest.fixture(scope="module")
def dynamic_bundle(tmp_path_factory) -> Path:
    """The trained medical U-Net (exported at 240x320) with a graph that takes any size."""
    return recipe_bundle(tmp_path_factory, "demo-medical-dynamic-size")


def test_a_dynamic_size_bundle_runs_at_the_size_asked_for(dynamic_bundle, tmp_path, capsys):
    import dataclasses

    import onnxruntime as ort

    from edgeseg.bundle import Bundle
    from edgeseg.runtime.sources import open_source
    from edgeseg.runtime.tensors import frames_to_input

    uri = "synthetic://medical?frames=1&size=320x240"
    masks = {}
    for size in ("96x128", None):
        out = tmp_path / f"out-{size}"
        code, _, err = run_cli(capsys, "run", dynamic_bundle, "-i", uri, "-o", out, "--save-mask",
                               *(("--infer-size", size) if size else ()))  # fmt: skip
        assert code == 0, err
        masks[size] = cv2.imread(str(out / "masks" / "000000.png"), cv2.IMREAD_UNCHANGED)
    frame = next(iter(open_source(uri))).image
    contract = dataclasses.replace(Bundle.load(dynamic_bundle).input, size=(96, 128))
    session = ort.InferenceSession(str(dynamic_bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    (classes,) = session.run(None, {"frame": frames_to_input([frame], contract)})
    assert classes.shape == (1, 96, 128)
    expected = cv2.resize(classes[0], (320, 240), interpolation=cv2.INTER_NEAREST)
    assert (masks["96x128"] == expected).mean() == 1.0
    assert (masks[None] != expected).mean() > 0.002  # at the export size (240x320) the maps differ


@pytest.mark.parametrize(
    "size,fragment",
    [("100x128", "needs sides divisible by 16 (its stride); e.g. --infer-size 96x128"), ("96x128", None)],
)
def test_infer_size_that_the_bundle_cannot_take(tiny_bundle, dynamic_bundle, size, fragment, capsys):
    bundle = dynamic_bundle if fragment else tiny_bundle
    code, _, err = run_cli(capsys, "run", bundle, "-i", "synthetic://medical?frames=1&size=64x64", "--infer-size", size)
    assert_one_line_error(code, err, *([fragment] if fragment else ["was exported for 64x64 only", "--dynamic-size"]))


def test_a_failing_stage_stops_the_pipeline_and_reports(tiny_bundle):
    from edgeseg.bundle import Bundle
    from edgeseg.runtime import open_backend, open_source

    bundle = Bundle.load(tiny_bundle)
    pipeline = Pipeline(
        [open_source("synthetic://driving?frames=500&size=64x64")],
        [HeadModel(head_for(bundle), open_backend(bundle, "onnxruntime", "fp32"))],
        [FailingSink()],
    )
    with pytest.raises(OSError, match="disk full"):
        pipeline.run()
    assert pipeline.summary.frames_read < 500  # capture stopped instead of reading on


class OpenCVThreadsSink(Sink):
    """Records how many threads OpenCV would use while the pipeline draws each frame."""

    def __init__(self):
        self.seen = []

    def write(self, image, prediction):
        self.seen.append(cv2.getNumThreads())


def test_cpu_inference_gets_opencv_out_of_its_way_for_the_run_only(tiny_bundle):
    from edgeseg.bundle import Bundle
    from edgeseg.runtime import open_backend, open_source

    bundle = Bundle.load(tiny_bundle)
    cv2.setNumThreads(2)
    sink = OpenCVThreadsSink()
    backend = open_backend(bundle, "onnxruntime", "fp32")
    Pipeline([open_source("synthetic://driving?frames=12&size=64x64")], [HeadModel(head_for(bundle), backend)],
             [sink]).run()  # fmt: skip
    assert len(sink.seen) == 12 and set(sink.seen) == {1}  # drawing single-threaded beside CPU inference
    assert cv2.getNumThreads() == 2  # restored afterwards
    assert backend.runs_on_cpu is True


def test_cpu_inference_decodes_on_one_thread(tiny_bundle, tmp_path):
    from edgeseg.bundle import Bundle
    from edgeseg.runtime import open_backend, open_source, source_options
    from edgeseg.runtime.sources import StreamOptions

    sample_video = tmp_path / "clip.mp4"  # MPEG-4 Part 2: a codec FFmpeg decodes on several threads
    writer = cv2.VideoWriter(str(sample_video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (160, 120))
    for i in range(10):
        writer.write(np.full((120, 160, 3), i * 20, np.uint8))
    writer.release()

    backend = open_backend(Bundle.load(tiny_bundle), "onnxruntime", "fp32")
    assert backend.runs_on_cpu and not backend.is_open  # known before the session exists
    options = source_options(backend)
    assert options.decode_threads == 1
    assert source_options(backend, StreamOptions(decode_threads=4)).decode_threads == 4  # a user's choice stands
    source = open_source(str(sample_video), options)
    default = open_source(str(sample_video))
    try:
        threads = getattr(cv2, "CAP_PROP_N_THREADS", None)  # OpenCV 4.7+; JetPack 5's 4.5 leaves it to FFmpeg
        if threads is not None:
            assert source.capture.get(threads) == 1  # FFmpeg took it
            assert default.capture.get(threads) != 1 or (os.cpu_count() or 1) == 1
        assert np.array_equal(source.read().image, default.read().image)  # the same frames either way
    finally:
        source.close()
        default.close()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_recording_is_playable_and_complete(tiny_bundle, tmp_path, signum):
    out = tmp_path / "cut.mp4"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgeseg",
            "run",
            str(tiny_bundle),
            "-i",
            "synthetic://driving?frames=100000&size=128x96",
            "-o",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    partial = tmp_path / ".cut.partial.mp4"
    deadline = time.monotonic() + 60
    while not (partial.exists() and partial.stat().st_size > 20_000) and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "stopping" in stderr and "Traceback" not in stderr
    frames = decoded_frames(out)
    assert len(frames) == written_count(stdout) > 10
    assert not partial.exists()


@pytest.mark.desktop  # the demo exports its bundle first
def test_demo_writes_a_video_with_every_frame(tmp_path, capsys):
    code, stdout, err = run_cli(capsys, "demo", "medical", "--frames", "20", "--workdir", tmp_path)
    assert code == 0, err
    assert len(decoded_frames(tmp_path / "demo-medical.mp4")) == 20 == written_count(stdout)
    assert "20 read" in stdout


# -- bad input -------------------------------------------------------------------------------------
def test_video_that_does_not_open(tiny_bundle, tmp_path, capsys):
    fake = tmp_path / "broken.avi"
    fake.write_bytes(os.urandom(2048))
    code, _, err = run_cli(capsys, "run", tiny_bundle, "-i", fake)
    assert_one_line_error(code, err, "cannot open", "broken.avi")


def test_missing_input(tiny_bundle, tmp_path, capsys):
    code, _, err = run_cli(capsys, "run", tiny_bundle, "-i", tmp_path / "nope.mp4")
    assert_one_line_error(code, err, "does not exist")


def test_empty_image_folder(tiny_bundle, tmp_path, capsys):
    code, _, err = run_cli(capsys, "run", tiny_bundle, "-i", tmp_path)
    assert_one_line_error(code, err, "has no images")


def test_camera_that_does_not_exist(tiny_bundle, capsys):
    code, _, err = run_cli(capsys, "run", tiny_bundle, "-i", "/dev/video42")
    assert_one_line_error(code, err, "/dev/video42 does not exist")


def test_output_that_cannot_be_written(tiny_bundle, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, _, err = run_cli(
        capsys, "run", tiny_bundle, "-i", "synthetic://driving?frames=2&size=64x64", "-o", tmp_path / "file" / "x.mp4"
    )
    assert_one_line_error(code, err, "cannot write output")


def test_tensorrt_backend_missing(tiny_bundle, capsys):
    code, _, err = run_cli(
        capsys, "run", tiny_bundle, "-i", "synthetic://driving?frames=2&size=64x64", "--backend", "tensorrt"
    )
    assert_one_line_error(code, err, "tensorrt")


def test_cli_runs_as_a_real_process_and_fails_cleanly(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "edgeseg", "info", str(tmp_path / "missing")], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
