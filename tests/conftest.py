from __future__ import annotations

import re
import shutil
import socket
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


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """A 3-class U-Net (width 4) exported at 64x64 with fused pre/post-processing."""
    out = tmp_path_factory.mktemp("bundles") / "unet"
    assert main(["export", "unet", "-o", str(out), *TINY]) == 0
    return out


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
