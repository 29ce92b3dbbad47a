"""FP16 with INT8's guarantee: the nodes whose float16 results overflow or diverge stay float32 until the bar is
met (issue 34, part 3)."""

from __future__ import annotations

import pytest
from conftest import run_cli

from edgeseg.bundle import Bundle

CALIBRATE = ("--data", "synthetic://driving", "--count", "12", "--eval-count", "12", "--precision", "fp16")


@pytest.fixture(scope="module")
def overflowing(tmp_path_factory):
    """A bundle whose middle activations pass float16's 65504: plain FP16 agrees on about 15% of pixels."""
    from edgeseg.cli import main

    root = tmp_path_factory.mktemp("overflow")
    assert main(["export", "user_models:half_overflow_net", "-o", str(root / "bundle"), "--size", "64x64"]) == 0
    return root / "bundle"


def copy_of(bundle, tmp_path):
    import shutil

    shutil.copytree(bundle, tmp_path / "b")
    return tmp_path / "b"


@pytest.mark.parametrize("bar", [["--min-agreement", "0.99"], []])
def test_fp16_of_an_overflowing_model_keeps_those_nodes_float_and_reaches_the_bar(bar, overflowing, tmp_path, capsys):
    bundle = copy_of(overflowing, tmp_path)
    code, stdout, err = run_cli(capsys, "calibrate", bundle, *CALIBRATE, *bar)
    assert code == 0, err
    fp16 = Bundle.load(bundle).select("onnx", "fp16")
    assert fp16.extra["fidelity"]["agreement"] >= 0.99 and fp16.extra["accepted"]
    kept = fp16.extra["float_layers"]
    assert 0 < len(kept) <= 4 and kept == fp16.extra["overflow_layers"]  # the branch Conv, its Relu, the Mul
    row = next(line for line in stdout.splitlines() if line.startswith("model.fp16.onnx"))
    assert f"  {len(kept)}  " in row


def test_the_per_node_search_finds_what_diverges_where_the_range_check_finds_nothing(
    overflowing, tmp_path, capsys, monkeypatch
):
    from edgeseg.calibration import fp16

    monkeypatch.setattr(fp16, "overflowing_nodes", lambda *args, **kwargs: [])
    bundle = copy_of(overflowing, tmp_path)
    code, _, err = run_cli(capsys, "calibrate", bundle, *CALIBRATE, "--min-agreement", "0.99")
    assert code == 0, err
    assert "FP16 agreement" in err and "measuring per-node sensitivity" in err
    fp16_artifact = Bundle.load(bundle).select("onnx", "fp16")
    search = fp16_artifact.extra["min_agreement_search"]
    assert search["agreement_before"] < 0.5 and search["met"] and search["agreement_after"] >= 0.99
    assert fp16_artifact.extra["fidelity"]["agreement"] >= 0.99
    assert 0 < len(fp16_artifact.extra["float_layers"]) < search["layers"]
    # Not a terminal (capsys): the per-node sensitivity steps are not lines; progress counts say '1 layer'.
    assert "sensitivity 1/" not in err and " 1 layers" not in err
    from edgeseg.calibration.calibrate import plural

    assert plural(1, "layer") == "1 layer" and plural(3, "layer") == "3 layers"


def test_fp16_of_a_model_within_range_keeps_nothing_float(tmp_path, capsys):
    bundle = tmp_path / "b"
    assert run_cli(capsys, "export", "user_models:tiny_net", "-o", bundle, "--size", "32x32")[0] == 0
    code, _, err = run_cli(capsys, "calibrate", bundle, *CALIBRATE, "--min-agreement", "0.99")
    assert code == 0, err
    fp16_artifact = Bundle.load(bundle).select("onnx", "fp16")
    assert fp16_artifact.extra["float_layers"] == [] and "min_agreement_search" not in fp16_artifact.extra
