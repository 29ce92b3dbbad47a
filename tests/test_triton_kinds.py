"""Every bundle kind through a real Triton server: an instance bundle deployed with `deploy --target triton` is served
as its config.pbtxt declares it, and `run --backend triton://` reads all five of its outputs and answers what ONNX
Runtime answers locally."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from conftest import free_ports, recipe_bundle, run_cli
from triton_server import require_server_venv, start_server, stop_server, wait_ready

SOURCE = "synthetic://driving?seed=4000&frames=6&size=320x240&instances=1"


@pytest.fixture(scope="module")
def instances(tmp_path_factory):
    return recipe_bundle(tmp_path_factory, "demo-driving-instances")


@pytest.fixture(scope="module")
def served(instances, tmp_path_factory):
    """The instance demo deployed to a model repository, its model folder served by tritonserver."""
    require_server_venv()
    from edgeseg.cli import main

    repository = tmp_path_factory.mktemp("triton") / "repository"
    assert main(["deploy", str(instances), "--target", "triton", "-o", str(repository), "--name", "detector"]) == 0
    ports = free_ports(3)
    server = start_server(repository / "detector", "detector", ports)
    try:
        wait_ready("detector", ports[0], server)
        yield f"triton://127.0.0.1:{ports[0]}/detector"
    finally:
        stop_server(server)


def saved(folder):
    """Each frame's detections (--save-mask's JSON) and instance-id map (its PNG), in frame order."""
    masks = folder / "masks"
    records = [json.loads(path.read_text())["detections"] for path in sorted(masks.glob("*.json"))]
    ids = [cv2.imread(str(path), cv2.IMREAD_UNCHANGED) for path in sorted(masks.glob("*.png"))]
    return records, ids


def test_an_instance_bundle_runs_through_triton_as_it_runs_locally(instances, served, tmp_path, capsys):
    argv = ["run", instances, "-i", SOURCE, "--save-mask", "--score-threshold", "0.3"]
    code, stdout, err = run_cli(capsys, *argv, "--backend", served, "-o", tmp_path / "remote")
    assert code == 0, err
    assert "triton 127.0.0.1" in stdout and "6 written" in stdout
    code, _, err = run_cli(capsys, *argv, "--backend", "onnxruntime", "--precision", "fp32", "-o", tmp_path / "local")
    assert code == 0, err
    (remote, remote_ids), (local, local_ids) = saved(tmp_path / "remote"), saved(tmp_path / "local")
    assert len(remote) == len(local) == 6 and sum(len(frame) for frame in local) > 0  # the scene has objects
    for theirs, ours in zip(remote, local):
        assert [(d["class"], d["score"]) for d in theirs] == [(d["class"], d["score"]) for d in ours]
        for a, b in zip(theirs, ours):
            assert np.allclose(a["box"], b["box"], atol=0.1)  # JSON rounds to 0.1 px
    for a, b in zip(remote_ids, local_ids):
        assert a.shape == (240, 320) and np.array_equal(a, b)


def test_bench_of_an_instance_bundle_through_triton(instances, served, tmp_path, capsys):
    report = tmp_path / "bench.json"
    code, _, err = run_cli(capsys, "bench", instances, "-i", SOURCE, "--backend", served, "--frames", "2", "--warmup",
                           "1", "--accuracy-frames", "2", "--no-baseline", "--json", report)  # fmt: skip
    assert code == 0, err
    data = json.loads(report.read_text())
    (row,) = data["rows"]
    assert data["kind"] == "instances" and row["backend"] == served and not row["error"]
    assert row["engine"]["count"] == 2 and row["end_to_end"]["frames"] == 2 and row["sequential_fps"] > 0
    assert row["accuracy"]["agreement"] == 1.0 and 0 < row["accuracy"]["mask_ap"] <= 1  # the server's detections
