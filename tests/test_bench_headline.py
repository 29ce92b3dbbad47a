"""bench's headline is honest: it compares the row `--precision best` runs (and names it) with a baseline measured
in the same rounds as the other rows; mIoU follows calibrate's class-set rule; rows the user did not name are
measured without 'as asked' warnings. Structure only: no figure here is a timing assertion."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli

from edgeseg.bench.bench import Bench

SOURCE = "synthetic://driving?seed=1&frames=12&size=48x32"
QUICK = ("-i", SOURCE, "--frames", "4", "--warmup", "1", "--accuracy-frames", "2")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A 21-class module-function bundle (rebuildable: a baseline row) with FP16 and INT8. Its manifest says what
    calibrate would on another machine: the FP16 missed its bar; the CPU INT8 met it at half FP32's latency, so
    `--precision best` runs the INT8 (on a CPU, never the FP16)."""
    from edgeseg.cli import main

    out = tmp_path_factory.mktemp("headline") / "bundle"
    assert main(["export", "user_models:tiny_net", "-o", str(out), "--size", "32x48", "--classes", "21", "--arg",
                 "num_classes=21"]) == 0  # fmt: skip
    assert main(["calibrate", str(out), "--data", SOURCE, "--count", "4", "--eval-count", "2"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    for artifact in manifest["artifacts"]:
        extra = artifact["extra"]
        if artifact["path"] == "model.fp16.onnx":
            extra.update(accepted=False, accuracy_bar="--min-agreement 99.00%")
            extra["fidelity"]["agreement"] = 0.5
        elif artifact["precision"] == "int8":
            extra.update(accepted=True, float_layers=[], float_for_speed=[], cpu_latency_ratio=0.5)
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


@pytest.fixture()
def loop_order(monkeypatch):
    """The rows' loops in the order bench runs them."""
    order: list[str] = []
    original = Bench._loop_round

    def recorded(self, row, *args):
        order.append(row.name)
        return original(self, row, *args)

    monkeypatch.setattr(Bench, "_loop_round", recorded)
    return order


def bench(capsys, bundle, tmp_path, *flags):
    code, stdout, err = run_cli(capsys, "bench", bundle, *QUICK, "--json", tmp_path / "r.json", *flags)
    assert code == 0, err
    return json.loads((tmp_path / "r.json").read_text()), stdout, err


def test_the_headline_names_the_row_best_runs_and_the_baseline_is_measured_in_its_rounds(bundle, tmp_path, capsys,
                                                                                         loop_order):  # fmt: skip
    report, stdout, err = bench(capsys, bundle, tmp_path)
    names = [row["name"] for row in report["rows"]]
    assert names == ["onnxruntime fp32", "onnxruntime fp16", "onnxruntime int8", "pytorch eager fp32 (baseline)"]
    assert all(not row["error"] for row in report["rows"]), report["rows"]
    # The row best runs, not the fastest: the CPU INT8 (the FP16 is below its bar), named beside the figure
    assert report["ratios"]["edgeseg_vs_baseline_row"] == "onnxruntime int8"
    headline = "edgeseg end-to-end FPS (onnxruntime int8, what --precision best runs) / PyTorch-eager baseline FPS"
    assert headline in stdout
    # Round-robin: every row's loops (the baseline's too) once per round, never one row's rounds in a block
    assert loop_order == names * 2
    assert len(report["rows"][3]["end_to_end"]["fps_rounds"]) == 2
    # Engine-only timing interleaves the baseline with the rows: it has as many samples as they do
    assert {len(row["engine_samples_ms"]) for row in report["rows"]} == {4}
    # The engine as the pipeline ran it: the pipeline infers one frame at a time, so end to end cannot exceed it
    for row in report["rows"][:3]:
        assert row["end_to_end"]["engine_fps_in_pipeline"] > 0
    assert "end_to_end_vs_engine_in_pipeline" in report["ratios"]
    # 21 numbered classes against the driving scene's 9 named ones: no mIoU, and why
    assert all("miou" not in row["accuracy"] for row in report["rows"])
    assert ("mIoU not measured: the labels have 9 classes and the model 21 numbered ones; they are not the same "
            "class set") in report["notes"]  # fmt: skip
    # --precision all names no row: the FP16 below its bar is measured without 'running ... as asked'
    assert "as asked" not in err


def test_a_named_row_below_its_bar_is_warned_about_once_and_a_missing_best_row_means_no_headline(bundle, tmp_path,
                                                                                                 capsys):  # fmt: skip
    report, stdout, err = bench(capsys, bundle, tmp_path, "--precision", "fp16")
    assert [line for line in err.splitlines() if "as asked" in line] == [
        "edgeseg: warning: running model.fp16.onnx as asked: agreement 50.00%, below --min-agreement 99.00%"
    ]
    assert "edgeseg_vs_baseline_fps" not in report["ratios"]
    assert ("no headline ratio: the row --precision best runs (onnxruntime, model.int8-cpu.onnx) was not measured; "
            "add its precision to --precision") in report["notes"]  # fmt: skip
    assert "note: no headline ratio" in stdout
