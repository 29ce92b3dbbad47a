"""The one loop for every kind: instance and keypoint bundles take several inputs and the live view as semantic ones
do, and logits survive a second input. (An instance bundle through a real Triton server: test_triton_kinds.py.)"""

from __future__ import annotations

import json
import re
import urllib.request

import cv2
import pytest
from conftest import free_ports, recipe_bundle, run_cli
from test_rtsp import frame_count
from test_streams import edgeseg, stop, wait_for

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
