"""The one loop for every kind: instance and keypoint bundles take several inputs and the live view as semantic ones
do, logits survive a second input, and an instance bundle runs through Triton with every output requested."""

from __future__ import annotations

import json
import re
import urllib.request
from types import SimpleNamespace

import cv2
import numpy as np
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


class FakeTriton:
    """What TritonBackend uses of tritonclient.grpc, answering with ONNX Runtime on the bundle's graph; it records
    the outputs each request asks for."""

    TYPES = {"tensor(uint8)": "UINT8", "tensor(float)": "FP32", "tensor(int64)": "INT64", "tensor(int32)": "INT32"}

    def __init__(self, graph):
        import onnxruntime

        self.session = onnxruntime.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
        self.requested: list[list[str]] = []
        this = self

        class Client:
            def __init__(self, address):
                pass

            def is_server_live(self, client_timeout):
                return True

            def get_model_metadata(self, model, client_timeout):
                return SimpleNamespace(inputs=this.specs(this.session.get_inputs()),
                                       outputs=this.specs(this.session.get_outputs()))  # fmt: skip

            def infer(self, model, inputs, outputs, client_timeout):
                this.requested.append([o.name for o in outputs])
                answers = dict(zip([o.name for o in this.session.get_outputs()],
                                   this.session.run(None, {i.name: i.data for i in inputs})))  # fmt: skip
                return SimpleNamespace(as_numpy=lambda name: answers[name])

            def close(self):
                pass

        def infer_input(name, shape, dtype):
            request = SimpleNamespace(name=name, data=None)
            request.set_data_from_numpy = lambda array: setattr(request, "data", array)
            return request

        self.module = SimpleNamespace(InferenceServerClient=Client, InferInput=infer_input,
                                      InferRequestedOutput=lambda name: SimpleNamespace(name=name))  # fmt: skip

    def specs(self, tensors):
        return [SimpleNamespace(name=t.name, datatype=self.TYPES[t.type],
                                shape=[d if isinstance(d, int) else -1 for d in t.shape]) for t in tensors]  # fmt: skip


def test_run_through_triton_reads_every_output_of_an_instance_bundle(demos, tmp_path, capsys, monkeypatch):
    pytest.importorskip("tritonclient.grpc")
    from edgeseg.runtime.backends import triton

    bundle = demos["demo-driving-instances"]
    server = FakeTriton(bundle / "model.onnx")
    monkeypatch.setattr(triton, "require", lambda module, extra: server.module)
    source = "synthetic://driving?seed=4000&size=320x240&frames=2"
    argv = ["run", bundle, "-i", source, "--score-threshold", "0", "--precision", "fp32"]
    code, _, err = run_cli(capsys, *argv, "-o", tmp_path / "local")
    assert code == 0, err
    code, stdout, err = run_cli(capsys, *argv, "-o", tmp_path / "triton", "--backend", "triton://127.0.0.1:8001/m")
    assert code == 0 and "triton 127.0.0.1:8001 model m" in stdout, err
    names = [o.name for o in server.session.get_outputs()]
    assert len(names) == 5 and server.requested == [names, names]  # every output, on every request
    for local in sorted((tmp_path / "local").iterdir()):
        assert np.array_equal(cv2.imread(str(local)), cv2.imread(str(tmp_path / "triton" / local.name)))
