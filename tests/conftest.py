from __future__ import annotations

import os
import re
import shutil
import socket
import sys
from pathlib import Path

import pytest

from edgeseg.cli import main

PROGRESS = re.compile(r"^[\w ]+\S* \[[#-]+\] \d+/\d+")
SAMPLE_VIDEOS = Path("/usr/share/doc/opencv-doc/examples/data")
TESTS = Path(__file__).parent


def free_ports(count: int = 1, kind: int = socket.SOCK_STREAM) -> list[int]:
    """Loopback ports nobody holds now; all bound together so the list has no repeats."""
    probes = [socket.socket(socket.AF_INET, kind) for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit status, stdout, stderr)."""
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    """The contract for bad input: non-zero exit, one line on stderr, no traceback, naming the problem."""
    assert code != 0
    # Progress bars and warnings may come before the error; the error itself is one line.
    lines = [
        line
        for line in err.strip().splitlines()
        if not PROGRESS.match(line) and not line.startswith(("edgeseg: warning:", "edgeseg: note:"))
    ]
    assert len(lines) == 1, err
    assert lines[0].startswith("edgeseg: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment.lower() in lines[0].lower(), lines[0]


# A tiny model: 64x64, three classes, width 4 (fast to export, train and check).
TINY = ("--size", "64x64", "--classes", "3", "--arg", "width=4")


# The bundles the tests share, each made by edgeseg's own commands ({out} is the bundle's folder). Export needs
# torch, which a JetPack's Python cannot have: for the runtime tests on the JetPack stand-ins (test_jetpack.py),
# the desktop makes these first and EDGESEG_TEST_BUNDLES names the folder that holds them, one per name.
BUNDLE_RECIPES: dict[str, list[list[str]]] = {
    # a 3-class U-Net (width 4) exported at 64x64 with fused pre/post-processing
    "unet": [["export", "unet", "-o", "{out}", *TINY]],
    "unet-dynamic-batch": [["export", "unet", "-o", "{out}", *TINY, "--dynamic-batch"]],
    "lraspp-batch3": [["export", "lraspp", "-o", "{out}", *TINY, "--batch", "3"]],
    "lraspp-dynamic-batch": [["export", "lraspp", "-o", "{out}", *TINY, "--dynamic-batch"]],
    "fcn8s-logits": [["export", "fcn8s", "-o", "{out}", *TINY, "--no-fuse-argmax", "--no-fuse-preprocess"]],
    # the trained medical U-Net (exported at 240x320) with a graph that takes any size
    "demo-medical-dynamic-size": [["export", "demo-medical", "-o", "{out}", "--dynamic-size"]],
    "demo-medical": [["export", "demo-medical", "-o", "{out}"]],
    # the three shipped demos, one per bundle kind: semantic, instances, keypoints (the Python API's tests)
    "demo-driving": [["export", "demo-driving", "-o", "{out}"]],
    "demo-driving-instances": [["export", "demo-driving-instances", "-o", "{out}"]],
    "demo-medical-tips": [["export", "demo-medical-tips", "-o", "{out}"]],
    # the tiny U-Net with an FP16 variant only: what `--precision best` picks on a CPU without INT8
    "unet-fp16": [
        ["export", "unet", "-o", "{out}", *TINY],
        ["calibrate", "{out}", "--data", "synthetic://driving?seed=1&frames=8&size=64x64", "--precision", "fp16",
         "--count", "4", "--eval-count", "2"],
    ],  # fmt: skip
    # fp32, fp16 and int8 variants of the tiny U-Net
    "unet-calibrated": [
        ["export", "unet", "-o", "{out}", *TINY],
        ["calibrate", "{out}", "--data", "synthetic://driving?seed=1&frames=12&size=64x64", "--count", "4",
         "--eval-count", "2", "--method", "minmax"],
    ],  # fmt: skip
}


def make_bundle(name: str, out: Path) -> Path:
    """Run the recipe's commands; the bundle is at `out`."""
    for argv in BUNDLE_RECIPES[name]:
        assert main([arg.format(out=out) for arg in argv]) == 0, f"bundle {name}: {argv}"
    return out


# Each recipe is made once per session (exports and calibrations are most of the suite's time); tests get copies.
_MADE_THIS_SESSION: dict[str, Path] = {}


def recipe_source(tmp_path_factory, name: str) -> Path:
    """The session's own bundle of a recipe, never to be changed: made here on first use, or the one
    EDGESEG_TEST_BUNDLES holds."""
    made_elsewhere = os.environ.get("EDGESEG_TEST_BUNDLES")
    if made_elsewhere:
        return Path(made_elsewhere) / name
    if name not in _MADE_THIS_SESSION:
        _MADE_THIS_SESSION[name] = make_bundle(name, tmp_path_factory.mktemp("recipes") / name)
    return _MADE_THIS_SESSION[name]


def recipe_bundle(tmp_path_factory, name: str) -> Path:
    """A private copy of a recipe's bundle."""
    out = tmp_path_factory.mktemp("bundles") / name
    shutil.copytree(recipe_source(tmp_path_factory, name), out)
    return out


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """A 3-class U-Net (width 4) exported at 64x64 with fused pre/post-processing."""
    return recipe_bundle(tmp_path_factory, "unet")


@pytest.fixture()
def bundle_copy(tiny_bundle, tmp_path) -> Path:
    """A private copy of the tiny bundle, for tests that damage it."""
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy)
    return copy


@pytest.fixture(scope="session")
def sample_video() -> Path:
    """tree.avi from Debian's opencv-doc: a real 320x240 Cinepak video of 68 frames."""
    path = SAMPLE_VIDEOS / "tree.avi"
    if not path.is_file():
        pytest.skip("Debian's opencv-doc sample videos are not installed (make test installs them)")
    return path


@pytest.fixture(autouse=True)
def _tests_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))


def pytest_collection_finish(session) -> None:
    """The JetPack stand-ins' installs start as soon as the session knows it will run them (tests/jetpack_standin.py
    says why); they run while the rest of the suite does."""
    if not session.config.option.collectonly and any(item.path.name == "test_jetpack.py" for item in session.items):
        from jetpack_standin import start_installs

        start_installs()


def pytest_sessionfinish(session) -> None:
    standin = sys.modules.get("jetpack_standin")
    if standin is not None:
        standin.finish_installs()
