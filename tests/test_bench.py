"""`edgeseg bench`: the report has its rows, fields and sane values (timing itself is never asserted)."""

from __future__ import annotations

import json

import cv2
import pytest
from conftest import assert_one_line_error, recipe_bundle, run_cli

from edgeseg.bench.environment import parse_jetson_clocks, parse_nvpmodel, parse_tegrastats

SOURCE = "synthetic://driving?seed=5000&size=160x120&frames=1000"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A 9-class bundle, so the driving scene's labels give an mIoU column."""
    import torch

    from edgeseg.cli import main
    from edgeseg.models import build_model

    out = tmp_path_factory.mktemp("bench")
    torch.manual_seed(0)
    torch.save(build_model("lraspp", 9, width=4).state_dict(), out / "w.pt")
    assert (
        main(
            [
                "export",
                "lraspp",
                "-o",
                str(out / "bundle"),
                "--size",
                "64x64",
                "--classes",
                "9",
                "--arg",
                "width=4",
                "--weights",
                str(out / "w.pt"),
            ]
        )
        == 0
    )
    code = main(
        [
            "bench",
            str(out / "bundle"),
            "-i",
            SOURCE,
            "--frames",
            "12",
            "--warmup",
            "2",
            "--accuracy-frames",
            "4",
            "--json",
            str(out / "r.json"),
            "--md",
            str(out / "r.md"),
            "--plot",
            str(out / "r.png"),
        ]
    )
    assert code == 0
    return out


def test_report_rows_and_fields(report):
    data = json.loads((report / "r.json").read_text())
    # The --json schema is pinned: scripts read these keys.
    assert list(data) == [
        "environment",
        "telemetry",
        "bundle",
        "model",
        "input_size",
        "source",
        "source_size",
        "capture_from",
        "frames",
        "warmup",
        "rows",
        "baseline_note",
        "overlay",
        "ratios",
        "kind",
        "notes",
    ]
    assert data["kind"] == "semantic"
    row_keys = [
        "name",
        "backend",
        "precision",
        "artifact",
        "engine",
        "stages_alone_ms",
        "sequential_fps",
        "end_to_end",
        "accuracy",
        "engine_samples_ms",
        "error",
        "stage_limited_fps",
    ]
    assert all(list(row) == row_keys for row in data["rows"])
    assert all(row["error"] == "" for row in data["rows"])
    names = [row["name"] for row in data["rows"]]
    assert names == ["onnxruntime fp32", "pytorch eager fp32 (baseline)"]
    fp32 = data["rows"][0]
    engine = fp32["engine"]
    assert engine["count"] == 12 and 0 < engine["p50_ms"] <= engine["p90_ms"] <= engine["p99_ms"] <= engine["max_ms"]
    assert set(fp32["stages_alone_ms"]) == {"capture", "preprocess", "infer", "postprocess", "overlay"}
    assert fp32["end_to_end"]["frames"] == 12 and fp32["end_to_end"]["fps"] > 0
    assert {"capture", "preprocess", "infer", "postprocess", "overlay", "sink", "latency"} <= set(
        fp32["end_to_end"]["stages"]
    )
    assert fp32["accuracy"]["agreement"] == 1.0  # FP32 is the reference
    assert 0 <= fp32["accuracy"]["miou"] <= 1  # the synthetic frames carry labels
    assert data["rows"][1]["accuracy"]["agreement"] > 0.99  # same model in PyTorch
    ratios = data["ratios"]
    assert {
        "pipeline_vs_stage_limited",
        "pipeline_vs_sequential",
        "end_to_end_vs_engine_only",
        "edgeseg_vs_baseline_fps",
        "overlay_1080p_vs_addweighted",
    } <= set(ratios)
    assert all(value > 0 for key, value in ratios.items() if isinstance(value, float))
    assert {o["resolution"] for o in data["overlay"]} == {"160x120", "1920x1080"} and {
        o["filter"] for o in data["overlay"]
    } == {"point", "linear"}
    env = data["environment"]
    assert env["cores"] >= 1 and env["onnxruntime"] and "CPUExecutionProvider" in env["onnxruntime_providers"]


def test_markdown_and_plot(report):
    text = (report / "r.md").read_text()
    assert "| onnxruntime fp32 |" in text and "PyTorch-eager baseline" in text
    image = cv2.imread(str(report / "r.png"))
    assert image is not None and image.shape[1] > 800


def test_tegrastats_lines_from_real_boards_parse():
    orin = "RAM 2488/30536MB (lfb 6x4MB) CPU [1%@729,0%@729] EMC_FREQ 0%@2133 GR3D_FREQ 5%@0 CPU@45.312C GPU@41.25C tj@45.312C VDD_GPU_SOC 2390mW/2390mW VDD_CPU_CV 796mW/796mW VIN_SYS_5V0 3522mW/3522mW"  # noqa: E501 - a real board's output, kept whole
    sample = parse_tegrastats(orin)
    assert (
        sample["gpu_load_pct"] == 5
        and sample["temp_gpu_c"] == 41.25
        and sample["power_vdd_gpu_soc_mw"] == 2390
        and sample["emc_mhz"] == 2133
    )
    nano = "RAM 1800/3964MB CPU [5%@102,off,off,3%@102] GR3D_FREQ 0%@76 PLL@26C CPU@28.5C GPU@26C POM_5V_IN 933/933 POM_5V_GPU 0/0 POM_5V_CPU 84/105"  # noqa: E501 - a real board's output, kept whole
    sample = parse_tegrastats(nano)
    assert sample["gpu_mhz"] == 76 and sample["power_pom_5v_in_mw"] == 933 and sample["temp_cpu_c"] == 28.5
    thor = "GR3D_FREQ 12%@[1300,1300] cpu@54.9C gpu@55.4C VDD_IN 4673mW/4673mW/4673mW"
    assert parse_tegrastats(thor)["gpu_mhz"] == 1300 and parse_tegrastats(thor)["power_vdd_in_mw"] == 4673


def test_power_mode_and_clocks_parse():
    assert parse_nvpmodel("NV Power Mode: MAXN\n0\n") == {"power_mode": "MAXN", "power_mode_id": 0}
    assert parse_nvpmodel("NV Power Mode: 15W\n1\n")["power_mode"] == "15W"
    pinned = "cpu0: Online=1 Governor=schedutil MinFreq=2201600 MaxFreq=2201600 CurrentFreq=2201600\ncpu1: Online=1 Governor=schedutil MinFreq=2201600 MaxFreq=2201600 CurrentFreq=2201600"  # noqa: E501 - a real board's output, kept whole
    scaling = "cpu0: Online=1 Governor=schedutil MinFreq=115200 MaxFreq=2201600 CurrentFreq=729600"
    assert parse_jetson_clocks(pinned) is True and parse_jetson_clocks(scaling) is False


# -- bad input -------------------------------------------------------------------------------------
def test_precision_the_bundle_lacks(tiny_bundle, capsys):
    code, _, err = run_cli(capsys, "bench", tiny_bundle, "-i", SOURCE, "--precision", "int8")
    assert_one_line_error(code, err, "no int8 artifact", "edgeseg calibrate")


def test_backend_not_installed(tiny_bundle, capsys):
    code, _, err = run_cli(capsys, "bench", tiny_bundle, "-i", SOURCE, "--backend", "tensorrt")
    assert_one_line_error(code, err, "tensorrt", "not installed")


@pytest.mark.parametrize(
    "frames,warmup,fragment", [("0", "0", "--frames: must be at least 1"), ("5", "10", "fewer than --warmup")]
)
def test_bad_frame_counts(tiny_bundle, frames, warmup, fragment, capsys):
    code, _, err = run_cli(capsys, "bench", tiny_bundle, "-i", SOURCE, "--frames", frames, "--warmup", warmup)
    assert_one_line_error(code, err, fragment)


def test_report_path_that_cannot_be_written(tiny_bundle, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, _, err = run_cli(capsys, "bench", tiny_bundle, "-i", SOURCE, "--json", tmp_path / "file" / "r.json")
    assert_one_line_error(code, err, "cannot write output")


def test_no_baseline_for_a_bundle_without_weights(tiny_bundle, capsys):
    code, stdout, err = run_cli(
        capsys, "bench", tiny_bundle, "-i", SOURCE, "--frames", "3", "--warmup", "1", "--accuracy-frames", "2"
    )
    assert code == 0, err
    assert "no baseline row: the bundle was exported without weights" in stdout


def test_engine_timings_interleave_the_rows():
    """Each row gets its runs in blocks that alternate with the others, so no row owns a slow spell."""
    from edgeseg.timing import interleaved_samples

    order = []
    samples = interleaved_samples(
        {"a": lambda: order.append("a"), "b": lambda: order.append("b")}, warmup=2, runs=7, rounds=3
    )
    assert {key: len(values) for key, values in samples.items()} == {"a": 7, "b": 7}
    measured = order[4:]  # after two warm-up calls each
    assert measured == ["a"] * 3 + ["b"] * 3 + ["a"] * 3 + ["b"] * 3 + ["a"] + ["b"]


@pytest.mark.parametrize("function", ["tiny_net", "random_net"])
def test_baseline_of_a_module_function_bundle(function, tmp_path, capsys):
    """torchvision-style models answer {'out': logits}; a function that initialises randomly cannot be rebuilt."""
    bundle = tmp_path / "b"
    code, _, err = run_cli(capsys, "export", f"user_models:{function}", "-o", bundle, "--size", "32x48")
    assert code == 0, err
    source = "synthetic://driving?seed=1&frames=12&size=48x32"
    code, _, err = run_cli(capsys, "bench", bundle, "-i", source, "--frames", "6", "--warmup", "1",
                           "--accuracy-frames", "4", "--json", tmp_path / "r.json")  # fmt: skip
    assert code == 0, err
    report = json.loads((tmp_path / "r.json").read_text())
    baseline = [row for row in report["rows"] if row["backend"] == "pytorch"]
    if function == "tiny_net":  # the same weights (seeded): PyTorch agrees with the ONNX FP32 row
        assert len(baseline) == 1 and baseline[0]["accuracy"]["agreement"] > 0.99
    else:
        assert baseline == [] and "builds different weights at each call" in report["baseline_note"]


def test_a_row_that_fails_is_reported_in_its_row_and_the_report_is_still_written(tmp_path, capsys, monkeypatch):
    """The PyTorch baseline of a torchvision bundle raised AttributeError ('OrderedDict' has no 'argmax') and the
    whole report was lost. Here the baseline's model call fails the same way (a fault put in by the test)."""
    import edgeseg.export.wrapper as wrapper

    bundle = tmp_path / "b"
    code, _, err = run_cli(capsys, "export", "user_models:tiny_net", "-o", bundle, "--size", "32x48")
    assert code == 0, err

    def broken_selector(output, threshold_logit=0.0):
        raise AttributeError("'collections.OrderedDict' object has no attribute 'argmax'")

    monkeypatch.setattr(wrapper, "select_logits", broken_selector)
    source = "synthetic://driving?seed=1&frames=12&size=48x32"
    out = tmp_path / "report"
    code, stdout, err = run_cli(capsys, "bench", bundle, "-i", source, "--frames", "6", "--warmup", "1",
                                "--accuracy-frames", "4", "--json", out.with_suffix(".json"), "--md",
                                out.with_suffix(".md"), "--plot", out.with_suffix(".png"))  # fmt: skip
    assert code == 0, err
    report = json.loads(out.with_suffix(".json").read_text())
    failed = [row for row in report["rows"] if row["error"]]
    assert [row["backend"] for row in failed] == ["pytorch"]
    assert failed[0]["error"] == "AttributeError: 'collections.OrderedDict' object has no attribute 'argmax'"
    assert all(row["engine"]["fps"] > 0 for row in report["rows"] if not row["error"])
    assert "edgeseg_vs_baseline_fps" not in report["ratios"]
    assert "failed: AttributeError" in out.with_suffix(".md").read_text()
    assert cv2.imread(str(out.with_suffix(".png"))) is not None


# -- every kind: the same rows, loops and baseline ---------------------------------------------------------------------
KEYPOINT_SOURCE = "synthetic://medical?seed=5000&size=160x120&frames=100&keypoints=1"


@pytest.fixture(scope="module")
def keypoints(tmp_path_factory):
    return recipe_bundle(tmp_path_factory, "demo-medical-tips")


def test_a_keypoint_bundle_has_the_pipeline_against_its_one_thread_loop_and_a_pytorch_baseline(keypoints, tmp_path,
                                                                                               capsys):  # fmt: skip
    code, stdout, err = run_cli(capsys, "bench", keypoints, "-i", KEYPOINT_SOURCE, "--frames", "4", "--warmup", "1",
                                "--accuracy-frames", "2", "--json", tmp_path / "r.json")  # fmt: skip
    assert code == 0, err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["kind"] == "keypoints" and report["baseline_note"] == ""
    ours, baseline = report["rows"]
    assert (ours["name"], baseline["name"]) == ("onnxruntime fp32", "pytorch eager fp32 (baseline)")
    assert not ours["error"] and not baseline["error"]
    assert set(ours["stages_alone_ms"]) == {"capture", "preprocess", "infer", "postprocess", "overlay"}
    assert ours["end_to_end"]["frames"] == 4 and len(ours["end_to_end"]["sequential_fps_rounds"]) == 2
    # The same weights in PyTorch: its peaks are the graph's
    assert baseline["accuracy"]["agreement"] == 1.0 and baseline["accuracy"]["pck05"] == ours["accuracy"]["pck05"]
    assert {"pipeline_vs_sequential", "pipeline_vs_stage_limited", "edgeseg_vs_baseline_fps"} <= set(report["ratios"])
    assert "PCK@0.05" in stdout


def test_a_row_that_fails_is_a_row_for_a_keypoint_bundle_too(keypoints, tmp_path, capsys, monkeypatch):
    """The fault is put in by the test: the baseline's model call raises, as a model that cannot run here would."""
    from edgeseg.bench.baseline import GraphBaseline

    def broken(self, example):
        raise RuntimeError("the model cannot run here")

    monkeypatch.setattr(GraphBaseline, "outputs", broken)
    flags = ["--frames", "2", "--warmup", "1", "--accuracy-frames", "2"]
    code, _, err = run_cli(capsys, "bench", keypoints, "-i", KEYPOINT_SOURCE, *flags, "--json", tmp_path / "r.json",
                           "--md", tmp_path / "r.md")  # fmt: skip
    assert code == 0, err
    report = json.loads((tmp_path / "r.json").read_text())
    assert [(row["backend"], row["error"]) for row in report["rows"]] == [
        ("onnxruntime", ""),
        ("pytorch", "RuntimeError: the model cannot run here"),
    ]
    assert "failed: RuntimeError" in (tmp_path / "r.md").read_text()


def test_two_streams_of_an_instance_bundle(tmp_path_factory, tmp_path, capsys):
    instances = recipe_bundle(tmp_path_factory, "demo-driving-instances")
    code, stdout, err = run_cli(capsys, "bench", instances, "--streams", "2", "--frames", "2", "--json",
                                tmp_path / "s.json")  # fmt: skip
    assert code == 0, err
    report = json.loads((tmp_path / "s.json").read_text())
    assert report["streams"] == 2 and len(report["batched_per_stream_fps"]) == 2 and len(report["separate_fps"]) == 2
    assert "one batched run" in stdout
