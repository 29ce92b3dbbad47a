"""The bundle: manifest contents, integrity checks, refusal of bad manifests."""

from __future__ import annotations

import json

import pytest
from conftest import assert_one_line_error, run_cli

from edgeseg.bundle import Bundle
from edgeseg.errors import EdgesegError
from edgeseg.fileio import sha256_file


def edit_manifest(bundle_dir, change) -> None:
    path = bundle_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def test_manifest_holds_the_contract(tiny_bundle):
    bundle = Bundle.load(tiny_bundle)
    manifest = bundle.manifest
    assert manifest["schema"] == 1
    assert manifest["model"]["name"] == "unet" and manifest["model"]["source"] == "zoo"
    assert [c.name for c in bundle.classes] == ["class0", "class1", "class2"]
    assert bundle.input.size == (64, 64) and bundle.input.dtype == "uint8" and bundle.input.fused_preprocess
    assert bundle.output.kind == "class_map" and bundle.output.fused_argmax
    (artifact,) = bundle.artifacts
    assert artifact.precision == "fp32" and artifact.sha256 == sha256_file(tiny_bundle / "model.onnx")
    assert {"torch", "onnx", "onnxruntime"} <= set(artifact.tools)


def test_info_prints_readably_and_as_json(tiny_bundle, capsys):
    code, out, _ = run_cli(capsys, "info", tiny_bundle)
    assert code == 0
    assert "U-Net" in out and "uint8 NHWC BGR" in out and "model.onnx" in out and "100.0000% class-map agreement" in out
    code, out, _ = run_cli(capsys, "info", tiny_bundle, "--json")
    assert json.loads(out)["input"]["size"] == [64, 64]


def test_missing_bundle(tmp_path, capsys):
    code, _, err = run_cli(capsys, "info", tmp_path / "nope")
    assert_one_line_error(code, err, "does not exist", "edgeseg export")


def test_directory_without_manifest(tmp_path, capsys):
    code, _, err = run_cli(capsys, "info", tmp_path)
    assert_one_line_error(code, err, "not a bundle")


def test_unreadable_manifest(bundle_copy, capsys):
    (bundle_copy / "manifest.json").write_text("{ not json")
    code, _, err = run_cli(capsys, "info", bundle_copy)
    assert_one_line_error(code, err, "cannot read", "re-export")


def test_unknown_schema_version(bundle_copy, capsys):
    edit_manifest(bundle_copy, lambda m: m.update(schema=99))
    code, _, err = run_cli(capsys, "info", bundle_copy)
    assert_one_line_error(code, err, "schema version 99", "reads version 1")


def test_artifact_with_wrong_sha256_is_refused(bundle_copy, capsys):
    with open(bundle_copy / "model.onnx", "r+b") as handle:  # one byte changed, the size kept
        handle.seek(-1, 2)
        last = handle.read(1)
        handle.seek(-1, 2)
        handle.write(bytes([last[0] ^ 0xFF]))
    code, _, err = run_cli(capsys, "run", bundle_copy, "-i", "synthetic://driving?frames=2&size=64x64")
    assert_one_line_error(code, err, "does not match its sha256")


def test_artifact_path_outside_the_bundle_is_refused(bundle_copy, tmp_path, capsys):
    outside = tmp_path / "elsewhere.onnx"
    outside.write_bytes((bundle_copy / "model.onnx").read_bytes())
    edit_manifest(bundle_copy, lambda m: m["artifacts"][0].update(path="../elsewhere.onnx"))
    code, _, err = run_cli(capsys, "run", bundle_copy, "-i", "synthetic://driving?frames=2&size=64x64")
    assert_one_line_error(code, err, "points outside the bundle")


def test_missing_precision_names_the_stage_to_run(tiny_bundle):
    with pytest.raises(EdgesegError, match="no int8 onnx artifact.*edgeseg calibrate"):
        Bundle.load(tiny_bundle).select("onnx", "int8")


def test_best_precision_prefers_the_lowest_available(bundle_copy):
    bundle = Bundle.load(bundle_copy)
    fp32 = bundle.artifacts[0]
    bundle.add_artifact(
        type(fp32)(**{**fp32.__dict__, "path": "model.int8.onnx", "precision": "int8", "target": "cpu"})
    )
    assert bundle.select("onnx", "best", targets=("cpu", "any")).path == "model.int8.onnx"
    assert bundle.select("onnx", "best", targets=("any",)).path == "model.onnx"


def test_select_prefers_what_the_caller_ranks_first(bundle_copy):
    bundle = Bundle.load(bundle_copy)
    fp32 = bundle.artifacts[0]
    for version in ("8.5.2", "10.3.0"):
        bundle.add_artifact(
            type(fp32)(
                **{
                    **fp32.__dict__,
                    "path": f"engines/{version}.engine",
                    "kind": "engine",
                    "target": "tensorrt",
                    "tools": {"tensorrt": version},
                }
            )
        )

    def pick(version):
        return bundle.select(
            "engine", "fp32", targets=("tensorrt",), prefer=lambda a: a.tools["tensorrt"] == version
        ).path

    assert pick("10.3.0") == "engines/10.3.0.engine" and pick("8.5.2") == "engines/8.5.2.engine"
