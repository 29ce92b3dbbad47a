"""The one loop for every kind: instance and keypoint bundles take several inputs and the live view as semantic ones
do, and logits survive a second input. (An instance bundle through a real Triton server: test_triton_kinds.py.)"""

from __future__ import annotations

import json
import re
import urllib.request

import cv2
import numpy as np
import pytest
from conftest import free_ports, recipe_bundle, run_cli
from test_rtsp import frame_count
from test_streams import edgeseg, stop, wait_for

from edgeseg.runtime.backends.onnxruntime import usable_cores
from edgeseg.runtime.sources import open_source

SCENES = {"demo-driving-instances": "driving", "demo-medical-tips": "medical"}


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    return {name: recipe_bundle(tmp_path_factory, name) for name in SCENES}


def write_video(path, scene: str, frames: int, seed: int):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (160, 120))
    for frame in open_source(f"synthetic://{scene}?seed={seed}&size=160x120&frames={frames}"):
        writer.write(frame.image)
    writer.release()
    return path


@pytest.mark.parametrize("name", list(SCENES))
def test_two_inputs_of_an_instance_or_keypoint_bundle_write_two_complete_videos(demos, name, tmp_path, capsys):
    a = write_video(tmp_path / "a.mp4", SCENES[name], 3, 1)
    b = write_video(tmp_path / "b.mp4", SCENES[name], 5, 2)
    code, stdout, err = run_cli(capsys, "run", demos[name], "-i", a, "-i", b, "-o", tmp_path / "out" / "{stream}.mp4")
    assert code == 0, err
    assert frame_count(tmp_path / "out" / "a.mp4") == 3 and frame_count(tmp_path / "out" / "b.mp4") == 5
    assert "frames: 8 read, 8 inferred, 8 written, 0 dropped" in stdout
    assert re.search(r"stream 1 b: 5 read, 5 written, 0 dropped", stdout)


def test_a_keypoint_run_reports_its_frames_in_the_live_view(demos):
    port = free_ports(1)[0]
    source = "synthetic://medical?size=160x120&frames=100000&fps=10&realtime=1"
    run = edgeseg("run", demos["demo-medical-tips"], "-i", source, "-o", f"http://127.0.0.1:{port}")

    def frames() -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats.json", timeout=2) as answer:
                return json.loads(answer.read())["frames"]
        except OSError:
            return 0

    try:
        assert wait_for(lambda: frames() >= 5, timeout=60)
    finally:
        stdout, err = stop(run)
    assert "written" in stdout, err


def test_logits_are_kept_with_two_inputs(tmp_path_factory):
    import edgeseg

    bundle = recipe_bundle(tmp_path_factory, "fcn8s-logits")
    source = "synthetic://driving?seed={}&size=64x64&frames=2"
    with edgeseg.load(bundle) as model:
        answers = [result.answer for _, result in edgeseg.stream(model, [source.format(1), source.format(2)])]
    assert len(answers) == 4 and all(a.logits is not None for a in answers)  # --filter-mode linear's upsampling


@pytest.mark.skipif(usable_cores() < 2, reason="two inference sessions are for two cores or more")
@pytest.mark.parametrize("name", ["demo-driving-instances", "demo-medical-tips", "demo-driving"])
def test_two_sessions_answer_every_frame_as_one_session_does(demos, name, tmp_path_factory, tmp_path, capsys):
    """On the CPU a recording runs on two ONNX Runtime sessions side by side, each taking the next batch; the masks
    written are those of one session (--threads: the user's thread count, one session), frame for frame."""
    bundle = demos[name] if name in demos else recipe_bundle(tmp_path_factory, name)
    scene = SCENES.get(name, "driving")
    source = f"synthetic://{scene}?seed=3&size=96x64&frames=24"
    written = {}
    for label, flags in (("two", []), ("one", ["--threads", "2"])):
        code, stdout, err = run_cli(capsys, "run", bundle, "-i", source, "-o", tmp_path / label / "", "--save-mask",
                                    *flags)  # fmt: skip
        assert code == 0, err
        assert ("2 sessions side by side" in stdout) == (label == "two"), stdout
        assert "frames: 24 read, 24 inferred, 24 written" in stdout
        # what --save-mask keeps: class maps or instance ids as PNG, a keypoint bundle's points as JSON
        written[label] = [read_saved(path) for path in sorted((tmp_path / label / "masks").iterdir())]
    assert len(written["two"]) == len(written["one"]) >= 24  # an instance bundle keeps a PNG and a JSON a frame
    differing = [i for i, (a, b) in enumerate(zip(written["two"], written["one"])) if not np.array_equal(a, b)]
    assert not differing, f"frames {differing} differ from one session's"
    assert any(not np.array_equal(written["one"][0], later) for later in written["one"][1:])  # the scene moves


@pytest.mark.skipif(usable_cores() < 2, reason="two inference sessions are for two cores or more")
@pytest.mark.parametrize("name, streams", [("demo-driving", 2), ("lraspp-batch3", 1)])
def test_each_streams_frames_come_out_in_order_from_two_sessions(name, streams, tmp_path_factory, capsys):
    """Two sessions take batches in turn, and a batch waiting for a second stream (or for a fixed batch of 3 to fill)
    is where a second session could take newer frames first: every stream's frames must still come out in order."""
    import edgeseg

    bundle = recipe_bundle(tmp_path_factory, name)
    sources = [f"synthetic://driving?seed={20 + i}&size=96x64&frames=30" for i in range(streams)]
    code, stdout, err = run_cli(capsys, "run", bundle, *[arg for uri in sources for arg in ("-i", uri)], "-o", "none")
    assert code == 0 and "2 sessions side by side" in stdout, err
    expected = {uri: [frame.image for frame in open_source(uri)] for uri in sources}
    seen: dict[str, list[int]] = {uri: [] for uri in sources}
    with edgeseg.load(bundle) as model:
        for image, _ in edgeseg.stream(model, sources):
            uri, index = next((uri, index) for uri in sources for index, frame in enumerate(expected[uri])
                              if np.array_equal(frame, image))  # fmt: skip
            seen[uri].append(index)
    assert seen == {uri: list(range(30)) for uri in sources}


def read_saved(path) -> np.ndarray:
    if path.suffix == ".json":
        return np.array(json.dumps(json.loads(path.read_text()), sort_keys=True))
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def test_also_draws_a_segmentation_under_an_instance_bundle_and_the_other_way(demos, tmp_path_factory, tmp_path,
                                                                               capsys):  # fmt: skip
    """--also pairs any two kinds: each run draws the second bundle's answer under the first's and keeps both answers
    with --save-mask (the first's plane as PNG, the second's records under "also"); --visualize applies to the
    first, --score-threshold to the instance bundle, first or second."""
    instances, semantic = demos["demo-driving-instances"], recipe_bundle(tmp_path_factory, "demo-driving")
    source = "synthetic://driving?seed=9&size=160x120&frames=3"
    runs = {
        "alone": [instances],
        "under": [instances, "--also", semantic],
        "over": [semantic, "--also", instances],
        "both": [instances, "--also", semantic, "--visualize", "both"],
        "threshold": [semantic, "--also", instances, "--score-threshold", "0.97"],
    }
    saved = {}
    for label, argv in runs.items():
        folder = tmp_path / label
        code, stdout, err = run_cli(capsys, "run", *argv, "-i", source, "-o", folder, "--save-mask")
        assert code == 0, err
        assert "frames: 3 read, 3 inferred, 3 written" in stdout and ("infer also" in stdout) == (label != "alone")
        records = json.loads((folder / "masks" / "000001.json").read_text())
        detections = records["detections"] if argv[0] == instances else records["also"]["detections"]
        plane = cv2.imread(str(folder / "masks" / "000001.png"), cv2.IMREAD_UNCHANGED)
        saved[label] = (cv2.imread(str(folder / "000001.jpg")).astype(int), plane, detections)
    alone, under, over = saved["alone"], saved["under"], saved["over"]
    assert alone[2] and alone[2] == under[2] == over[2]  # the instance bundle's answer, first or second
    assert np.array_equal(alone[1], under[1])  # with an instance bundle first, the PNG is its instance ids
    assert not np.array_equal(under[1], over[1])  # with the segmentation first, its class map
    assert np.abs(alone[0] - under[0]).mean() > 5  # the segmentation's overlay is drawn under the instances
    assert saved["both"][0].shape == (120, 320, 3) and saved["both"][1].shape == (120, 160)  # side by side, once
    kept = saved["threshold"][2]
    assert all(d["score"] >= 0.97 for d in kept) and len(kept) < len(over[2])  # the threshold reached the second
