"""Bundles from elsewhere are untrusted: what they would make edgeseg read, and what they would print."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time

import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli

from edgeseg.onnx_files import external_data_locations


def rewrite(bundle, location: str | None = None, names: list[str] | None = None, files: dict | None = None) -> None:
    """Make the bundle hostile but self-consistent: the manifest's sha256 matches the file it lists."""
    import onnx

    manifest_path = bundle / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    artifact = manifest["artifacts"][0]
    if location is not None:
        model = onnx.load(str(bundle / artifact["path"]))
        tensor = max(model.graph.initializer, key=lambda t: len(t.raw_data))
        size = len(tensor.raw_data)
        tensor.ClearField("raw_data")
        tensor.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", "0"), ("length", str(size))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        data = model.SerializeToString()
        (bundle / artifact["path"]).write_bytes(data)
        artifact["sha256"], artifact["size"] = hashlib.sha256(data).hexdigest(), len(data)
    if files is not None:
        artifact["files"] = files
    if names is not None:
        for entry, name in zip(manifest["classes"], names):
            entry["name"] = name
    manifest_path.write_text(json.dumps(manifest))


@pytest.fixture()
def secret(tmp_path):
    path = tmp_path / "secret.bin"
    np.ones(1 << 16, np.float32).tofile(path)
    return path


@pytest.mark.parametrize("kind", ["parent", "absolute"])
def test_external_data_outside_the_bundle_is_refused(bundle_copy, secret, kind, capsys):
    location = "../secret.bin" if kind == "parent" else str(secret)
    rewrite(bundle_copy, location=location)
    code, _, err = run_cli(capsys, "run", bundle_copy, "-i", "synthetic://driving?frames=2&size=64x64", "-o", "none")
    assert_one_line_error(code, err, "outside the bundle", "refusing")


def test_external_data_through_a_link_out_of_the_bundle_is_refused(bundle_copy, secret, capsys):
    os.symlink(secret, bundle_copy / "weights.bin")
    rewrite(bundle_copy, location="weights.bin", files={"weights.bin": hashlib.sha256(secret.read_bytes()).hexdigest()})
    code, _, err = run_cli(capsys, "run", bundle_copy, "-i", "synthetic://driving?frames=2&size=64x64", "-o", "none")
    assert_one_line_error(code, err, "points outside the bundle")


def test_external_data_the_manifest_does_not_list_is_refused(bundle_copy, secret, capsys):
    shutil.copy(secret, bundle_copy / "weights.bin")
    rewrite(bundle_copy, location="weights.bin")
    code, _, err = run_cli(capsys, "run", bundle_copy, "-i", "synthetic://driving?frames=2&size=64x64", "-o", "none")
    assert_one_line_error(code, err, "does not list with a sha256")


def test_locations_are_read_without_onnx(bundle_copy):
    rewrite(bundle_copy, location="w/eights.bin")
    assert external_data_locations(bundle_copy / "model.onnx") == ["w/eights.bin"]
    (bundle_copy / "broken.onnx").write_bytes(b"\x0a\xff\xff\xff\xff\x0f")  # a field longer than the file
    with pytest.raises(ValueError):
        external_data_locations(bundle_copy / "broken.onnx")


def test_class_names_are_printed_safely(bundle_copy, capsys):
    rewrite(bundle_copy, names=["road\x1b[2J\x1b[31m", "line\nbreak", "ok"])
    code, stdout, _ = run_cli(capsys, "info", bundle_copy)
    assert code == 0
    assert "\x1b" not in stdout and "road\\x1b[2J\\x1b[31m" in stdout and "line\\nbreak" in stdout


def test_an_error_naming_a_hostile_path_stays_one_line(tiny_bundle, capsys):
    code, _, err = run_cli(capsys, "run", tiny_bundle, "-i", "no\nsuch\x1b[2Jfile.mp4")
    assert_one_line_error(code, err, "does not exist", "no\\nsuch\\x1b[2jfile.mp4")


def test_an_artifact_larger_than_its_manifest_says_is_refused_before_it_is_hashed(bundle_copy, capsys):
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    artifact = manifest["artifacts"][0]
    assert artifact["size"] == (bundle_copy / artifact["path"]).stat().st_size  # written by export
    with open(bundle_copy / artifact["path"], "ab") as handle:
        handle.truncate(artifact["size"] + (1 << 30))  # a sparse gigabyte: cheap to make, slow to hash
    started = time.monotonic()
    code, _, err = run_cli(capsys, "run", bundle_copy, "-i", "synthetic://driving?frames=2&size=64x64", "-o", "none")
    assert_one_line_error(code, err, "bytes but the manifest says", "refusing")
    assert time.monotonic() - started < 20  # it did not read the gigabyte (a bound, not a benchmark)
