"""`--precision best` passes over an INT8 that buys nothing over FP32 (mostly left in float, or measured no faster on
the runtime it is shaped for) as it passes over one below its bar; calibrate and info say so in one line."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import shutil

import pytest
from conftest import TINY, run_cli

from edgeseg.bundle import BEST_PRECISION, Bundle
from edgeseg.cli import main
from edgeseg.runtime.detector import pick_backend

BUYS_NOTHING_CPU = (
    "model.int8-cpu.onnx: INT8 buys nothing here: calibrate measured it at 1.00x FP32's latency on ONNX Runtime's "
    "CPU; `--precision best` passes over it"
)


@pytest.fixture(scope="module")
def no_faster(tmp_path_factory):
    """The tiny U-Net calibrated on a machine where every graph times the same: its CPU INT8 is no faster than FP32.
    (--min-agreement 0.5: the bar is met, so only the gain decides.) Returns the bundle and calibrate's stdout."""
    bundle = tmp_path_factory.mktemp("gain") / "bundle"
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        calibration = importlib.import_module("edgeseg.calibration.calibrate")  # the package re-exports a function
        patch.setattr(calibration, "latencies_ms", lambda paths, *_: dict.fromkeys(paths, 1.0))
        assert main(["export", "unet", "-o", str(bundle), *TINY]) == 0
        data = "synthetic://driving?seed=1&frames=12&size=64x64"
        assert main(["calibrate", str(bundle), "--data", data, "--count", "4", "--eval-count", "2", "--method",
                     "minmax", "--min-agreement", "0.5"]) == 0  # fmt: skip
    return bundle, out.getvalue()


def edited(source, tmp_path, change) -> Bundle:
    """A copy of the bundle with `change(artifacts by path)` applied to its manifest."""
    copy = tmp_path / "edited"
    shutil.copytree(source, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    change({a["path"]: a for a in manifest["artifacts"]}, manifest["artifacts"])
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return Bundle.load(copy)


def test_calibrate_and_info_say_in_one_line_that_a_cpu_int8_no_faster_buys_nothing(no_faster, capsys):
    bundle, calibrate_out = no_faster
    assert calibrate_out.count("INT8 buys nothing") == 1 and BUYS_NOTHING_CPU in calibrate_out.splitlines()
    code, stdout, _ = run_cli(capsys, "info", bundle)
    assert code == 0 and stdout.count("INT8 buys nothing") == 1 and BUYS_NOTHING_CPU in stdout.splitlines()
    best = {line.split()[0]: line.split()[-1] for line in stdout.splitlines() if line.startswith("model.") and
            line.split()[-1] in ("yes", "no")}  # fmt: skip
    assert best == {"model.fp16.onnx": "yes", "model.int8-tensorrt.onnx": "yes", "model.int8-cpu.onnx": "no"}
    # run's choice on a CPU: past the INT8 (no faster) and the FP16 (no faster on a CPU) to FP32, each said once
    assert pick_backend(Bundle.load(bundle), "onnxruntime", "best").model_path.name == "model.onnx"
    notes = [line for line in capsys.readouterr().err.splitlines() if "passes over" in line]
    assert len(notes) == 2 and "model.int8-cpu.onnx (INT8 buys nothing here: calibrate measured it at 1.00x" in notes[0]
    # Named, it runs without a warning: it met its accuracy bar
    assert pick_backend(Bundle.load(bundle), "onnxruntime", "int8").model_path.name == "model.int8-cpu.onnx"
    assert "as asked" not in capsys.readouterr().err


def with_engines(artifacts, listed):
    """Engine entries built from the FP16 and TensorRT INT8 graphs (select reads only the manifest)."""
    for precision, source in (("fp16", "model.fp16.onnx"), ("int8", "model.int8-tensorrt.onnx")):
        listed.append({"path": f"engines/{precision}.plan", "kind": "engine", "precision": precision,
                       "sha256": "0" * 64, "target": "tensorrt", "extra": {"source": source}})  # fmt: skip


@pytest.mark.parametrize("kept,picked", [(3, "fp16"), (2, "int8")])
def test_a_tensorrt_int8_mostly_left_in_float_is_passed_over_and_so_are_its_engines(no_faster, tmp_path, capsys,
                                                                                    kept, picked):  # fmt: skip
    """More than half of the quantizable nodes in float to meet the bar: FP32 under another name. Half is not more."""

    def mostly_float(artifacts, listed):
        artifacts["model.int8-tensorrt.onnx"]["extra"].update(
            accepted=True, quantized_node_count=4, float_layers=[f"conv{i}" for i in range(kept)]
        )
        with_engines(artifacts, listed)

    bundle = edited(no_faster[0], tmp_path, mostly_float)
    capsys.readouterr()
    onnx = bundle.select("onnx", "best", targets=("tensorrt", "any"))
    engine = bundle.select("engine", "best", targets=("tensorrt",))
    notes = [line for line in capsys.readouterr().err.splitlines() if "passes over" in line]
    assert (onnx.precision, engine.precision) == (picked, picked)
    if picked == "fp16":
        reason = "(INT8 buys nothing here: 3 of 4 quantizable nodes stay float to meet the accuracy bar)"
        assert notes == [f"edgeseg: note: --precision best passes over {name} {reason}"
                         for name in ("model.int8-tensorrt.onnx", "engines/int8.plan")]  # fmt: skip
        assert bundle.passed_over_because(bundle.select("engine", "int8", targets=("tensorrt",))) == reason[1:-1]
    else:
        assert notes == []


def test_an_engine_is_judged_by_the_graph_it_was_built_from(no_faster, tmp_path, capsys):
    """An engine of an INT8 graph below its bar is passed over by best and warned about when named, as the graph is."""

    def below_bar(artifacts, listed):
        artifacts["model.int8-tensorrt.onnx"]["extra"].update(accepted=False, accuracy_bar="--min-agreement 99.00%")
        artifacts["model.int8-tensorrt.onnx"]["extra"]["fidelity"]["agreement"] = 0.65
        with_engines(artifacts, listed)

    bundle = edited(no_faster[0], tmp_path, below_bar)
    capsys.readouterr()
    assert bundle.select("engine", "best", targets=("tensorrt",)).path == "engines/fp16.plan"
    assert "passes over engines/int8.plan (agreement 65.00%, below --min-agreement 99.00%)" in capsys.readouterr().err
    assert bundle.select("engine", "int8", targets=("tensorrt",)).path == "engines/int8.plan"
    assert "running engines/int8.plan as asked: agreement 65.00%" in capsys.readouterr().err


def test_cpu_nodes_left_float_for_speed_do_not_count_against_a_faster_int8(no_faster, tmp_path, capsys):
    def faster(artifacts, listed):
        names = [f"conv{i}" for i in range(10)]
        artifacts["model.int8-cpu.onnx"]["extra"].update(
            cpu_latency_ratio=0.6, quantized_node_count=12, float_layers=names, float_for_speed=names
        )

    bundle = edited(no_faster[0], tmp_path, faster)
    assert pick_backend(bundle, "onnxruntime", "best").model_path.name == "model.int8-cpu.onnx"
    assert "passes over" not in capsys.readouterr().err


@pytest.mark.parametrize("verb", ["run", "deploy"])
def test_help_says_what_best_does(verb, capsys):
    code, stdout, _ = run_cli(capsys, verb, "--help")
    text = " ".join(stdout.split())
    assert code == 0 and BEST_PRECISION in text and "lowest the bundle has" not in text
