"""Failures the property tests and the CLI fuzz run found, kept as regular tests."""

from __future__ import annotations

import json

import pytest
from conftest import assert_one_line_error, run_cli

from edgeseg.classes import classes_from_option, read_names_file
from edgeseg.errors import EdgesegError


@pytest.mark.parametrize(
    "lines,fragment",
    [(["road", ", 0,0,0"], "a class needs a name"), (["road", "car", "road 1 2 3"], "'road' is listed twice")],
)
def test_names_file_without_a_name_or_with_a_duplicate(lines, fragment, tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("\n".join(lines))
    with pytest.raises(EdgesegError, match=fragment):
        read_names_file(path)


def test_a_unicode_digit_is_not_a_class_count():
    with pytest.raises(EdgesegError, match="cannot read class names file"):
        classes_from_option("²")  # str.isdigit() is true of it; int() is not


@pytest.mark.parametrize("path,fragment", [("x" * 10_000, "File name too long"), ("a\x00b", "NUL byte")])
def test_paths_the_file_system_refuses(path, fragment, capsys):
    code, _, err = run_cli(capsys, "dataset", "synthetic://driving?frames=1&size=32x32", "-o", path)
    assert_one_line_error(code, err, fragment)


@pytest.mark.parametrize(
    "change,fragment",
    [
        (lambda m: m["input"].update(size="abc"), "'input.size' must be [height, width]"),
        (lambda m: m["artifacts"][0].update(sha256=None), "'artifacts[0].sha256' must be a sha256"),
        (lambda m: m["artifacts"][0].update(surprise=1), "unknown field 'surprise'"),
        (lambda m: m["classes"][0].update(color=[300, 0, 0]), "'classes[0].color' must be [R, G, B] in 0-255"),
        (lambda m: m.update(parity="yes"), "'parity' must be an object"),
    ],
)
def test_damaged_manifests_are_one_line(bundle_copy, change, fragment, capsys):
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    change(manifest)
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = run_cli(capsys, "info", bundle_copy)
    assert_one_line_error(code, err, fragment, "re-export the bundle")


def test_odd_figures_are_shown_not_fatal(bundle_copy, capsys):
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    manifest["parity"]["max_abs_logit_diff"] = "big"
    manifest["model"]["parameters"] = None
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    code, stdout, _ = run_cli(capsys, "info", bundle_copy)
    assert code == 0 and "max |logit diff| ?" in stdout and "- parameters" in stdout


def test_info_shows_a_float_count_in_a_hand_edited_manifest(bundle_copy, capsys):
    """Found by test_manifest_mutations: parity.frames = 0.0 crashed `info` with "Unknown format code 'd'"."""
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    manifest["parity"]["frames"] = 0.0
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    code, out, err = run_cli(capsys, "info", bundle_copy)
    assert code == 0 and "Traceback" not in err and "on 0 frames" in out
    manifest["parity"]["frames"] = 2.5
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    code, out, _ = run_cli(capsys, "info", bundle_copy)
    assert code == 0 and "on ? frames" in out
