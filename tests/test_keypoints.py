"""Keypoint bundles end to end: train, export (fused decoder and raw heatmaps), eval (PCK), calibrate (PCK change),
run (points, skeleton, --also over a segmentation), and every bad input a keypoint bundle can meet."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from edgeseg.bundle import Bundle
from edgeseg.metrics import keypoint_scores
from edgeseg.models.hourglass import decode_peaks
from edgeseg.runtime.heads.keypoints import KeypointSpec, bones_between, decode_heatmaps, to_frame_pixels
from tests.conftest import assert_one_line_error, run_cli
from tests.test_run import decoded_frames, written_count

SIZE = "96x128"
HELD_OUT = "synthetic://medical?seed=2000-2001&frames=4&size=128x96&keypoints=1"


@pytest.fixture(scope="session")
def keypoint_weights(tmp_path_factory) -> Path:
    """A tiny hourglass (width 8, one stack) after a few training steps on the medical scene's keypoints."""
    from edgeseg.cli import main

    path = tmp_path_factory.mktemp("weights") / "tips.pt"
    assert main(["train", "hourglass", "--data", "synthetic://medical?keypoints=1", "-o", str(path), "--size", SIZE,
                 "--epochs", "1", "--steps", "3", "--batch", "2", "--arg", "width=8", "--arg", "stacks=1",
                 "--val-seeds", "1000-1000", "--threads", "1"]) == 0  # fmt: skip
    return path


def export_tiny(weights: Path, output: Path, *extra: str) -> Path:
    from edgeseg.cli import main

    assert main(["export", "hourglass", "--weights", str(weights), "-o", str(output), "--size", SIZE, "--arg",
                 "width=8", "--arg", "stacks=1", *extra]) == 0  # fmt: skip
    return output


@pytest.fixture(scope="session")
def keypoint_bundle(keypoint_weights, tmp_path_factory) -> Path:
    return export_tiny(keypoint_weights, tmp_path_factory.mktemp("bundles") / "tips")


@pytest.fixture(scope="session")
def medical_bundle(tmp_path_factory) -> Path:
    """A semantic bundle at the keypoint bundle's size, for --also."""
    from edgeseg.cli import main

    out = tmp_path_factory.mktemp("bundles") / "medical"
    assert main(["export", "unet", "-o", str(out), "--size", SIZE, "--classes", "5", "--arg", "width=4"]) == 0
    return out


def test_training_writes_a_keypoint_checkpoint_with_its_schema(keypoint_weights):
    checkpoint = torch.load(str(keypoint_weights), weights_only=True)
    assert checkpoint["kind"] == "keypoints"
    assert checkpoint["keypoints"]["names"] == ["tip", "jaw_a", "jaw_b", "joint", "entry"]
    assert ["joint", "tip"] in checkpoint["keypoints"]["skeleton"]
    validation = checkpoint["training"]["validation"]
    assert 0 <= validation["pck05"] <= validation["pck10"] <= 1 and set(validation["per_keypoint"]) == set(
        checkpoint["keypoints"]["names"]
    )


def test_training_reads_a_labelled_folder_with_keypoints(tmp_path, capsys):
    """A folder edgeseg dataset wrote (images/, labels/, keypoints.json) trains as the scene does; its last tenth is
    the validation set."""
    folder = tmp_path / "set"
    assert run_cli(capsys, "dataset", "synthetic://medical?seed=3&frames=10&size=128x96&keypoints=1", "-o",
                   folder)[0] == 0  # fmt: skip
    weights = tmp_path / "w.pt"
    code, stdout, err = run_cli(capsys, "train", "hourglass", "--data", folder, "-o", weights, "--size", SIZE,
                                "--epochs", "1", "--steps", "2", "--batch", "2", "--arg", "width=8", "--arg",
                                "stacks=1", "--threads", "1")  # fmt: skip
    assert code == 0, err
    checkpoint = torch.load(str(weights), weights_only=True)
    assert checkpoint["training"]["data"] == str(folder)
    assert checkpoint["keypoints"]["skeleton"][0] == ["entry", "joint"]  # the folder's own schema
    code, _, err = run_cli(capsys, "train", "hourglass", "--data", tmp_path, "-o", weights)
    assert_one_line_error(code, err, "keypoints.json")


def test_export_fuses_the_decoder_and_declares_the_keypoints(keypoint_bundle):
    bundle = Bundle.load(keypoint_bundle)
    assert bundle.is_keypoints and not bundle.is_semantic
    assert bundle.manifest["keypoints"]["names"][0] == "tip" and bundle.manifest["keypoints"]["peaks"] == 2
    assert bundle.manifest["parity"]["passed"] and bundle.manifest["parity"]["max_abs_diff"] < 1e-3
    model = onnx.load(str(keypoint_bundle / "model.onnx"))
    (output,) = model.graph.output
    assert [d.dim_value for d in output.type.tensor_type.shape.dim] == [1, 5, 2, 3]  # few numbers leave the graph
    assert {"TopK", "MaxPool"} <= {node.op_type for node in model.graph.node}


def test_the_fused_graph_passes_the_tensorrt_rules_for_jetpack_5(keypoint_bundle, capsys):
    code, out, err = run_cli(capsys, "check", keypoint_bundle, "--jetpack", "5")
    assert code == 0, out + err
    assert "builds" in out and "TensorRT 8.5" in out


def test_raw_heatmaps_decode_in_the_runtime_as_in_the_graph(keypoint_weights, keypoint_bundle, tmp_path):
    """--no-fuse-argmax: the graph gives heatmaps; the runtime's numpy decoder gives the fused graph's numbers."""
    import onnxruntime as ort

    from edgeseg.export.keypoints import medical_frames

    raw = export_tiny(keypoint_weights, tmp_path / "raw", "--no-fuse-argmax")
    assert Bundle.load(raw).output.name == "heatmaps" and not Bundle.load(raw).output.fused_argmax
    frames = np.stack(medical_frames(96, 128, 2))
    heatmaps = np.concatenate([ort.InferenceSession(str(raw / "model.onnx")).run(None, {"frame": f[None]})[0]
                               for f in frames])  # fmt: skip
    fused = np.concatenate([ort.InferenceSession(str(keypoint_bundle / "model.onnx")).run(None, {"frame": f[None]})[0]
                            for f in frames])  # fmt: skip
    assert heatmaps.shape == (2, 5, 24, 32)
    decoded = decode_heatmaps(heatmaps, 4, 2)
    confident = fused[..., 2] >= 0.05
    np.testing.assert_allclose(decoded[..., 2], fused[..., 2], atol=1e-4)
    np.testing.assert_allclose(decoded[confident][:, :2], fused[confident][:, :2], atol=1e-3)


def test_numpy_decoder_matches_the_graph_decoder_on_planted_peaks():
    rng = np.random.default_rng(3)
    heatmaps = rng.uniform(0, 0.05, (2, 3, 20, 28)).astype(np.float32)
    for n, k, y, x, height in [(0, 0, 4, 7, 0.9), (0, 0, 15, 20, 0.7), (1, 2, 0, 27, 0.8), (1, 1, 10, 10, 0.6)]:
        heatmaps[n, k, max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2] += height / 2
        heatmaps[n, k, y, x] += height / 2
        heatmaps[n, k, y, min(x + 1, 27)] += 0.05  # a higher right neighbour: a quarter cell to the right
    expected = decode_peaks(torch.from_numpy(heatmaps), 4, 2).numpy()
    np.testing.assert_allclose(decode_heatmaps(heatmaps, 4, 2), expected, atol=1e-5)
    first, second = expected[0, 0]
    assert first[2] > second[2] > 0.5  # both tips of keypoint 0, highest first
    assert first[0] == pytest.approx((7 + 0.25 + 0.5) * 4 - 0.5)


def test_points_map_to_frame_pixels_by_pixel_centres():
    peaks = np.array([[[0.0, 0.0, 1.0], [127.0, 95.0, 1.0]]], np.float32)
    mapped = to_frame_pixels(peaks, (96, 128), (480, 640))
    np.testing.assert_allclose(mapped[0, 0, :2], [2.0, 2.0])  # model pixel 0's centre covers frame pixels 0-4
    np.testing.assert_allclose(mapped[0, 1, :2], [637.0, 477.0])


def test_skeleton_joins_each_grasper_to_its_own_points():
    spec = KeypointSpec(("tip", "joint"), ((1, 0),), 2, 4, 0.3)
    peaks = np.array([[[10, 10, 0.9], [200, 50, 0.8]], [[190, 60, 0.9], [20, 25, 0.7]]], np.float32)
    lines = {(start, end) for _, _, start, end in bones_between(peaks, spec)}
    assert lines == {((190.0, 60.0), (200.0, 50.0)), ((20.0, 25.0), (10.0, 10.0))}


def test_pck_and_mean_error_count_what_they_say():
    truth = np.array([[[10, 10, 2], [50, 50, 2], [0, 0, 0]], [[100, 100, 2], [80, 80, 1], [30, 30, 2]]], np.float32)
    predicted = np.array([[[12, 10, 0.9], [100, 103, 0.8]], [[50, 50, 0.2], [0, 0, 0]],
                          [[30, 40, 0.9], [0, 0, 0]]], np.float32)  # fmt: skip
    scores = keypoint_scores([predicted], [truth], ("tip", "joint", "entry"), 0.3, (120, 160))  # a 200 px diagonal
    # seen points: tip (2 px off), joint (no confident peak), tip of object 2 (3 px), entry (10 px); hidden ones skipped
    assert scores["points"] == 4
    assert scores["pck05"] == pytest.approx(3 / 4)  # 10 px is the 5% threshold: included
    assert scores["mean_error_px"] == pytest.approx((2 + 3 + 10) / 3)
    assert scores["per_keypoint"]["joint"] == {"points": 1, "pck05": 0.0, "pck10": 0.0, "mean_error_px": None}


def test_eval_reports_pck_per_keypoint_as_json(keypoint_bundle, tmp_path, capsys):
    out = tmp_path / "eval.json"
    code, stdout, err = run_cli(capsys, "eval", keypoint_bundle, "--data", HELD_OUT, "--json", out)
    assert code == 0, err
    figures = json.loads(out.read_text())
    assert {"pck05", "pck10", "mean_error_px", "per_keypoint"} <= set(figures)
    assert figures["frames"] == 8 and figures["points"] == sum(k["points"] for k in figures["per_keypoint"].values())
    assert 0 <= figures["pck05"] <= figures["pck10"] <= 1
    assert "PCK@0.05" in stdout and "tip" in stdout


def test_run_draws_every_frame_and_saves_the_points(keypoint_bundle, tmp_path, capsys):
    video, folder = tmp_path / "tips.mp4", tmp_path / "frames"
    code, stdout, err = run_cli(capsys, "run", keypoint_bundle, "-i", "synthetic://medical?frames=12&size=256x192",
                                "-o", video, "-o", folder, "--save-mask")  # fmt: skip
    assert code == 0, err
    assert len(decoded_frames(video)) == 12 == written_count(stdout)
    records = json.loads((folder / "masks" / "000005.json").read_text())["keypoints"]
    assert all(r["confidence"] >= 0.3 and 0 <= r["x"] < 256 and 0 <= r["y"] < 192 for r in records)
    assert not list((folder / "masks").glob("*.png"))  # no class map without --also


def test_run_also_draws_a_segmentation_under_the_points(keypoint_bundle, medical_bundle, tmp_path, capsys):
    video, folder = tmp_path / "both.mp4", tmp_path / "frames"
    code, stdout, err = run_cli(capsys, "run", keypoint_bundle, "--also", medical_bundle, "-i",
                                "synthetic://medical?frames=6&size=640x480", "-o", video, "-o", folder,
                                "--save-mask")  # fmt: skip
    assert code == 0, err
    assert len(decoded_frames(video)) == 6 == written_count(stdout)
    assert "infer also" in stdout and "(--also)" in stdout  # both models timed, both named
    mask = (folder / "masks" / "000002.png").read_bytes()
    assert len(mask) > 0 and (folder / "masks" / "000002.json").is_file()


def test_calibrate_measures_pck_change_and_keeps_the_decoder_float(keypoint_bundle, tmp_path, capsys):
    bundle_dir = tmp_path / "tips"
    shutil.copytree(keypoint_bundle, bundle_dir)
    code, stdout, err = run_cli(capsys, "calibrate", bundle_dir, "--data",
                                "synthetic://medical?seed=3000&frames=24&size=128x96&keypoints=1", "--count", "16",
                                "--eval-count", "8", "--threads", "1")  # fmt: skip
    assert code == 0, err
    bundle = Bundle.load(bundle_dir)
    variants = {a.path: a for a in bundle.artifacts}
    for name in ("model.fp16.onnx", "model.int8-tensorrt.onnx", "model.int8-cpu.onnx"):
        fidelity = variants[name].extra["fidelity"]
        assert {"pck05", "pck05_change", "mean_error_px", "mean_error_change_px", "agreement"} <= set(fidelity)
        assert fidelity["truth"] == "keypoint labels"
    assert "PCK@0.05" in stdout and "peak agreement" in stdout
    model = onnx.load(str(bundle_dir / "model.int8-tensorrt.onnx"))
    writers = {out: node for node in model.graph.node for out in node.output}
    topk = next(node for node in model.graph.node if node.op_type == "TopK")
    assert writers[topk.input[0]].op_type != "DequantizeLinear"  # the decoder reads float heatmaps
    head = [node for node in model.graph.node if node.op_type == "Conv"][-1]
    readers = [node.op_type for node in model.graph.node if head.output[0] in node.input]
    assert readers and "QuantizeLinear" not in readers  # the head's heatmaps are never 8-bit
    assert any(node.op_type == "QuantizeLinear" for node in model.graph.node)


# -- bad input -------------------------------------------------------------------------------------------------------


def test_a_skeleton_naming_an_unknown_keypoint_is_one_line(keypoint_bundle, tmp_path, capsys):
    damaged = tmp_path / "tips"
    shutil.copytree(keypoint_bundle, damaged)
    manifest = json.loads((damaged / "manifest.json").read_text())
    manifest["keypoints"]["skeleton"].append(["joint", "thumb"])
    (damaged / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = run_cli(capsys, "info", damaged)
    assert_one_line_error(code, err, "keypoints.skeleton", "'thumb'", "not one of keypoints.names")


def test_deploy_of_a_keypoint_bundle_says_why_not_in_one_line(keypoint_bundle, tmp_path, capsys):
    code, _, err = run_cli(capsys, "deploy", keypoint_bundle, "-o", tmp_path / "deploy", "--target", "triton")
    assert_one_line_error(code, err, "is a keypoint model", "edgeseg run")


def test_also_pairs_any_two_kinds_of_any_size(keypoint_bundle, medical_bundle, tiny_bundle, tmp_path, capsys):
    """--also takes a bundle of any kind and input size beside any bundle; what cannot run is still one line."""
    source = "synthetic://medical?frames=2"
    pairs = [(keypoint_bundle, tiny_bundle), (medical_bundle, keypoint_bundle), (keypoint_bundle, keypoint_bundle)]
    for first, also in pairs:
        folder = tmp_path / f"{first.name}-{also.name}"
        code, stdout, err = run_cli(capsys, "run", first, "--also", also, "-i", source, "-o", folder, "--save-mask")
        assert code == 0, err
        assert "infer also" in stdout and written_count(stdout) == 2
        saved = {path.suffix for path in (folder / "masks").iterdir()}
        assert (".png" in saved) == (first != also)  # a class map where one of the two is a segmentation
        records = json.loads((folder / "masks" / "000001.json").read_text())
        # the first bundle's points at the top, the second's under "also"
        assert ("keypoints" in records) == (first == keypoint_bundle)
        assert ("also" in records) == (also == keypoint_bundle) and all(
            r["keypoint"] for r in records.get("also", {}).get("keypoints", [{"keypoint": "-"}])
        )
    code, _, err = run_cli(capsys, "run", keypoint_bundle, "--also", tmp_path / "nothing", "-i", source)
    assert_one_line_error(code, err, "does not exist", "edgeseg export")
    code, _, err = run_cli(capsys, "run", keypoint_bundle, "--score-threshold", "0.5", "-i", source)
    assert_one_line_error(code, err, "--score-threshold is for instance bundles", "keypoints.min_confidence")
    code, _, err = run_cli(capsys, "bench", keypoint_bundle, "--also", tmp_path / "nothing", "--frames", "2")
    assert_one_line_error(code, err, "does not exist")


def test_keypoint_data_and_targets_for_another_kind_are_one_line(keypoint_bundle, tiny_bundle, tmp_path, capsys):
    code, _, err = run_cli(capsys, "eval", keypoint_bundle, "--data", "synthetic://medical?frames=2")
    assert_one_line_error(code, err, "has no keypoint labels", "keypoints=1")
    code, _, err = run_cli(capsys, "calibrate", keypoint_bundle, "--data", "synthetic://medical?frames=4",
                           "--min-agreement", "0.99")  # fmt: skip
    assert_one_line_error(code, err, "keypoints model", "use --max-pck-drop instead of --min-agreement")
    code, _, err = run_cli(capsys, "calibrate", tiny_bundle, "--data", "synthetic://driving?frames=4",
                           "--max-pck-drop", "1")  # fmt: skip
    assert_one_line_error(code, err, "use --min-agreement instead of --max-pck-drop")
    code, _, err = run_cli(capsys, "train", "hourglass", "--data", "synthetic://driving", "-o", tmp_path / "w.pt")
    assert_one_line_error(code, err, "synthetic://medical?keypoints=1")
    code, _, err = run_cli(capsys, "export", "hourglass", "-o", tmp_path / "b", "--weights",
                           Path(__file__).parent.parent / "edgeseg" / "weights" / "demo-medical.pt")  # fmt: skip
    assert_one_line_error(code, err, "not a keypoint model's")


def test_bench_rows_time_both_models_and_score_pck(keypoint_bundle, medical_bundle, tmp_path, capsys):
    out = tmp_path / "bench.json"
    code, stdout, err = run_cli(capsys, "bench", keypoint_bundle, "--also", medical_bundle, "--input",
                                "synthetic://medical?seed=5000&size=256x192&frames=100000&keypoints=1", "--frames",
                                "6", "--warmup", "2", "--accuracy-frames", "4", "--precision", "fp32", "--json",
                                out)  # fmt: skip
    assert code == 0, err
    report = json.loads(out.read_text())
    (row,) = report["rows"]
    assert report["kind"] == "keypoints" and not row["error"]
    assert {"capture", "preprocess", "infer", "infer also", "overlay"} <= set(row["stages_alone_ms"])
    assert "infer also" in row["end_to_end"]["stages"] and row["end_to_end"]["frames"] == 6
    assert row["accuracy"]["agreement"] == 1.0  # the FP32 row is its own reference
    assert {"pck05", "pck10", "mean_error_px"} <= set(row["accuracy"])  # scored against the scene's keypoints
    assert "PCK@0.05" in stdout and "peak agreement" in stdout


# -- the shipped demo: demo-medical-tips -----------------------------------------------------------------------------
def test_shipped_keypoint_weights_are_small_and_name_their_keypoints():
    from edgeseg.models import ZOO, shipped_weights

    path = shipped_weights(ZOO["demo-medical-tips"])
    assert path.stat().st_size <= 5 * 1024 * 1024
    checkpoint = torch.load(str(path), weights_only=True)
    assert checkpoint["kind"] == "keypoints" and checkpoint["keypoints"]["names"][0] == "tip"
    assert checkpoint["training"]["command"].startswith("edgeseg train")


def test_the_demo_finds_the_tips_in_held_out_frames(tmp_path, capsys):
    """The issue's target on its own held-out frames: PCK@0.05 of at least 0.90 on the tips that are seen."""
    bundle = tmp_path / "tips"
    assert run_cli(capsys, "export", "demo-medical-tips", "-o", bundle)[0] == 0
    data = "synthetic://medical?seed=2000-2009&frames=20&size=320x240&keypoints=1"
    code, _, err = run_cli(capsys, "eval", bundle, "--data", data, "--json", tmp_path / "e.json")
    assert code == 0, err
    figures = json.loads((tmp_path / "e.json").read_text())
    tips = figures["per_keypoint"]["tip"]
    assert figures["frames"] == 200 and tips["points"] > 150
    assert tips["pck05"] >= 0.90 and tips["mean_error_px"] < 10
