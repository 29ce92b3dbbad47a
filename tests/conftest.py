from __future__ import annotations

import os
import re
import shutil
import socket
import sys
from pathlib import Path

import pytest
from recipes import TINY, copy_bundle, shared_recipe, shared_root  # noqa: F401 (the tests import TINY from here)

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


def recipe_source(tmp_path_factory, name: str) -> Path:
    """The test run's own bundle of a recipe (tests/recipes.py), never to be changed: the one EDGESEG_TEST_BUNDLES
    holds, or the one this run's processes share, made on first use."""
    made_elsewhere = os.environ.get("EDGESEG_TEST_BUNDLES")
    if made_elsewhere:
        return Path(made_elsewhere) / name
    return shared_recipe(shared_root(tmp_path_factory.getbasetemp()) / "recipes", name)


def recipe_bundle(tmp_path_factory, name: str) -> Path:
    """A private copy of a recipe's bundle."""
    return copy_bundle(recipe_source(tmp_path_factory, name), tmp_path_factory.mktemp("bundles") / name)


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


def collects_jetpack_tests(test_ids) -> bool:
    return any("test_jetpack.py::" in test_id for test_id in test_ids)


def start_jetpack_job(config) -> None:
    """The JetPack stand-ins' background job (tests/jetpack_standin.py says why), started by the process that runs
    the session as soon as it knows the session runs test_jetpack.py."""
    from jetpack_standin import Job

    Job.start(shared_root(Path(config._tmp_path_factory.getbasetemp())))


class XdistController:
    """With pytest-xdist the controller collects nothing: each worker reports what it collected."""

    def __init__(self, config) -> None:
        self.config = config

    def pytest_xdist_node_collection_finished(self, node, ids) -> None:
        if not self.config.option.collectonly and collects_jetpack_tests(ids):
            start_jetpack_job(self.config)


def pytest_configure(config) -> None:
    if config.pluginmanager.hasplugin("xdist") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(XdistController(config), "edgeseg-xdist-controller")


# With pytest-xdist (`make test`: --dist loadfile) a module runs whole on one worker, handed out in the order
# collected: the longest modules go first (by their time in a run on 2 cores: test_deploy 7 min of worker time,
# test_instances 6, test_calibration 4.6, then 1-2 each) so that no long one is left for the end while the other
# workers idle. test_jetpack.py goes last: it reads what the background job has made since the session started.
LONGEST_FIRST = ("test_deploy", "test_instances", "test_calibration", "test_export", "test_check", "test_streams",
                 "test_jetson", "test_rtsp", "test_data", "test_keypoints", "test_secrets", "test_hls",
                 "test_bench")  # fmt: skip
LAST = ("test_jetpack",)


def pytest_collection_modifyitems(items) -> None:
    def place(item) -> tuple[int, int]:
        module = item.path.stem
        if module in LAST:
            return (2, 0)
        return (0, LONGEST_FIRST.index(module)) if module in LONGEST_FIRST else (1, 0)

    items.sort(key=place)  # stable: each module's tests keep their order


def pytest_collection_finish(session) -> None:
    worker = hasattr(session.config, "workerinput")
    if not worker and not session.config.option.collectonly and collects_jetpack_tests(i.nodeid for i in session.items):
        start_jetpack_job(session.config)


def pytest_sessionfinish(session) -> None:
    standin = sys.modules.get("jetpack_standin")
    if standin is not None and not hasattr(session.config, "workerinput"):
        standin.Job.stop()
