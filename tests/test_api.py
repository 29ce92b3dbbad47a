"""The Python API: `edgeseg.load(bundle)(frame)` and `edgeseg.stream(model, source)` on the three shipped demos (one
bundle of each kind), against what `edgeseg run` does with the same bundle and frames."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import recipe_bundle, run_cli

import edgeseg
from edgeseg.errors import EdgesegError
from edgeseg.runtime.sources import open_source

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "api.py"
DEMOS = ("demo-driving", "demo-driving-instances", "demo-medical-tips")
SCENES = {  # a scene each demo was trained on
    "demo-driving": "synthetic://driving?seed=4000&frames={n}&size=320x240",
    "demo-driving-instances": "synthetic://driving?seed=4000&frames={n}&size=320x240",
    "demo-medical-tips": "synthetic://medical?seed=4000&frames={n}&size=320x240",
}


@pytest.fixture(scope="session")
def demos(tmp_path_factory) -> dict[str, Path]:
    return {name: recipe_bundle(tmp_path_factory, name) for name in DEMOS}


def scene_frames(name: str, count: int) -> list[np.ndarray]:
    source = open_source(SCENES[name].format(n=count))
    try:
        return [source.read().image for _ in range(count)]
    finally:
        source.close()


@pytest.mark.parametrize("name", DEMOS)
def test_a_loaded_demo_answers_a_frame_in_its_kind(demos, name):
    frame = scene_frames(name, 1)[0]
    with edgeseg.load(demos[name]) as model:
        result = model(frame)
    kinds = {"class_map": result.class_map, "instances": result.instances, "keypoints": result.keypoints}
    expected = {"demo-driving": "class_map", "demo-driving-instances": "instances", "demo-medical-tips": "keypoints"}
    assert [kind for kind, answer in kinds.items() if answer is not None] == [expected[name]]
    if name == "demo-driving":
        assert result.class_map.shape == frame.shape[:2] and result.class_map.dtype == np.uint8
        assert len(np.unique(result.class_map)) > 2  # road, sky and more: a scene, not one class
    elif name == "demo-driving-instances":
        names = {c.name for c in model.bundle.classes}
        assert result.instances and all(i.class_name in names and 0.5 <= i.score <= 1 for i in result.instances)
        for found in result.instances:
            x0, y0, x1, y1 = found.box
            assert found.mask.shape == frame.shape[:2] and found.mask.dtype == bool
            ys, xs = np.nonzero(found.mask)
            assert len(xs) and x0 - 1 <= xs.min() and xs.max() <= x1 + 1 and y0 - 1 <= ys.min() and ys.max() <= y1 + 1
    else:
        names = set(model.head.spec.names)
        assert result.keypoints and all(p.name in names and p.confidence >= 0.3 for p in result.keypoints)
        assert all(0 <= p.x < 320 and 0 <= p.y < 240 and p.object >= 0 for p in result.keypoints)


@pytest.mark.parametrize("name", DEMOS)
def test_plot_draws_the_answer_where_it_is(demos, name):
    frame = scene_frames(name, 1)[0]
    with edgeseg.load(demos[name]) as model:
        result = model(frame)
        drawn = result.plot(frame)
        again = result.plot(frame)
    assert drawn.shape == frame.shape and drawn.dtype == np.uint8 and drawn is not again  # each plot its own array
    changed = (drawn != frame).any(axis=2)
    if result.class_map is not None:
        assert changed.mean() > 0.9  # the overlay tints every pixel
    elif result.instances is not None:
        inside = np.logical_or.reduce([found.mask for found in result.instances])
        assert changed[inside].mean() > 0.9 and changed.mean() < 0.5  # the instances are drawn, the rest is not
    else:
        for point in result.keypoints:
            assert changed[int(round(point.y)), int(round(point.x))]  # a dot on each point


def test_the_class_map_is_what_run_save_mask_writes(demos, tmp_path, capsys):
    uri = SCENES["demo-driving"].format(n=3)
    code, _, err = run_cli(capsys, "run", demos["demo-driving"], "-i", uri, "-o", tmp_path / "frames", "--save-mask")
    assert code == 0, err
    frames = scene_frames("demo-driving", 3)
    with edgeseg.load(demos["demo-driving"]) as model:
        results = model.predict(frames)
    for index, result in enumerate(results):
        written = cv2.imread(str(tmp_path / "frames" / "masks" / f"{index:06d}.png"), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(result.class_map, written)


def test_predict_answers_each_frame_at_its_own_size(demos):
    frame = scene_frames("demo-driving", 1)[0]
    small = cv2.resize(frame, (160, 120))
    with edgeseg.load(demos["demo-driving"]) as model:
        results = model.predict([frame, small, frame])
        single = model(frame)
    assert [r.class_map.shape for r in results] == [(240, 320), (120, 160), (240, 320)]
    assert np.array_equal(results[0].class_map, single.class_map) and model.predict([]) == []


@pytest.mark.parametrize("name", DEMOS)
def test_stream_yields_every_frame_of_a_file_and_writes_the_outputs(demos, name, tmp_path):
    video = tmp_path / "in.avi"
    frames = scene_frames(name, 7)
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for frame in frames:
        writer.write(frame)
    writer.release()
    with edgeseg.load(demos[name]) as model:
        seen = list(edgeseg.stream(model, str(video), outputs=[str(tmp_path / "out.mp4")]))
        assert len(seen) == 7
        for frame, result in seen:
            assert frame.shape == (240, 320, 3) and result.frame_size == (240, 320)
        last = model(seen[-1][0])  # the model still answers after a stream
    assert last.plot(seen[-1][0]).shape == (240, 320, 3)
    capture = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    written = 0
    while capture.read()[0]:
        written += 1
    assert written == 7


def test_leaving_a_stream_early_stops_the_run_and_closes_its_outputs(demos, tmp_path):
    out = tmp_path / "out.mp4"
    with edgeseg.load(demos["demo-driving"]) as model:
        for count, _ in enumerate(edgeseg.stream(model, SCENES["demo-driving"].format(n=100000), outputs=[str(out)])):
            if count == 2:
                break
    capture = cv2.VideoCapture(str(out))
    assert out.is_file() and capture.read()[0]  # closed and playable


def test_bad_input_is_one_clear_error(demos, tmp_path):
    with pytest.raises(EdgesegError, match="does not exist"):
        edgeseg.load(tmp_path / "missing")
    with pytest.raises(EdgesegError, match="--score-threshold is for instance bundles"):
        edgeseg.load(demos["demo-driving"], score_threshold=0.3)
    with pytest.raises(EdgesegError, match="unknown backend"):
        edgeseg.load(demos["demo-driving"], backend="cuda")
    with edgeseg.load(demos["demo-medical-tips"]) as model:
        for bad, said in [
            ("frame.jpg", "is a str, not an image"),
            (np.zeros((240, 320), np.uint8), r"uint8 of shape \(240, 320\)"),
            (np.zeros((240, 320, 3), np.float32), "float32 of shape"),
            (np.zeros((240, 320, 4), np.uint8), r"\(240, 320, 4\)"),
            (np.zeros((0, 320, 3), np.uint8), r"\(0, 320, 3\)"),
        ]:
            with pytest.raises(EdgesegError, match=said):
                model(bad)
        with pytest.raises(EdgesegError, match="frame 1 "):
            model.predict([np.zeros((8, 8, 3), np.uint8), None])
    with edgeseg.load(demos["demo-driving"]) as model, pytest.raises(EdgesegError, match="does not exist|cannot"):
        list(edgeseg.stream(model, str(tmp_path / "no-such-video.mp4")))


def test_precision_best_is_runs_choice_and_passes_over_fp16_on_a_cpu(tmp_path_factory, capsys):
    bundle = recipe_bundle(tmp_path_factory, "unet-fp16")
    capsys.readouterr()
    with edgeseg.load(bundle) as model:
        assert model.name == "model.onnx"  # FP16 runs no faster than FP32 on ONNX Runtime's CPU kernels
    assert "passes over model.fp16.onnx" in capsys.readouterr().err
    code, out, _ = run_cli(capsys, "run", bundle, "-i", "synthetic://driving?frames=1&size=64x64")
    assert code == 0 and f"backend: {model.backend.describe()}" in out
    with edgeseg.load(bundle, precision="fp16") as model:
        assert model.name == "model.fp16.onnx"  # asked for by name, it runs


def test_import_edgeseg_is_lean(demos):
    """`import edgeseg` loads neither torch, onnx, OpenCV nor numpy; a model answering a frame loads no torch or
    onnx either."""
    code = (
        "import sys, edgeseg; lean = sorted(m for m in ('torch', 'onnx', 'cv2', 'numpy') if m in sys.modules); "
        "import numpy as np; model = edgeseg.load(sys.argv[1]); model(np.zeros((240, 320, 3), np.uint8)); "
        "print(lean, sorted(m for m in ('torch', 'onnx', 'tensorrt') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(demos["demo-driving"])], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[] []"


@pytest.mark.parametrize("name", DEMOS)
def test_the_readme_example_runs_on_each_demo(demos, name, tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), str(demos[name]), SCENES[name].format(n=3)],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() and (tmp_path / "out.mp4").is_file() and (tmp_path / "last.jpg").is_file()


def test_the_readme_shows_the_example_as_it_runs():
    readme = (ROOT / "README.md").read_text()
    if "edgeseg.load(" not in readme:
        pytest.skip("README.md has no Python API section yet")
    code = EXAMPLE.read_text().split('"""', 2)[2].strip()
    assert code in readme, "README.md's Python API example differs from examples/api.py"
