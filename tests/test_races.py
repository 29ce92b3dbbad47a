"""Races for one output are said as races: the winner's output stays whole, each loser says so (issue 33, part 3)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import TINY, assert_one_line_error, run_cli

from edgeseg.errors import EdgesegError
from edgeseg.fileio import OutputRaced, atomic_directory

# Each racer imports everything first, says it is ready, then waits for the starting gun: the race is the work, not
# the imports. (A fixed wait for the imports was too short on a busy machine: a racer that started after the winner
# had finished was refused as for any existing output, and the test failed.)
RACER = """
import importlib, os, sys, time
from pathlib import Path
from edgeseg.cli import main
for module in sys.argv[3].split(","):
    if module:
        importlib.import_module(module)  # what the verb loads, loaded before the gun
(Path(sys.argv[2]) / str(os.getpid())).touch()
gun = Path(sys.argv[1])
while not gun.exists():
    time.sleep(0.01)
sys.exit(main(sys.argv[4:]))
"""


def race(tmp_path: Path, argv: list[str], preload: str = "", racers: int = 3) -> list[subprocess.CompletedProcess]:
    gun = tmp_path / "go"
    ready = Path(tempfile.mkdtemp(prefix="racers-"))  # outside tmp_path: the tests list what the race left there
    processes = [
        subprocess.Popen([sys.executable, "-c", RACER, str(gun), str(ready), preload, *map(str, argv)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        for _ in range(racers)
    ]
    deadline = time.monotonic() + 300
    while len(list(ready.iterdir())) < racers and time.monotonic() < deadline:
        time.sleep(0.05)
    shutil.rmtree(ready, ignore_errors=True)
    gun.touch()
    done = []
    for process in processes:
        out, err = process.communicate(timeout=600)
        done.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return done


def losers_and_winner(
    done: list[subprocess.CompletedProcess], quick: bool = False
) -> tuple[list[str], subprocess.CompletedProcess]:
    """The one winner and the losers' lines. `quick`: work so short that a loser can start after the winner ended."""
    winners = [d for d in done if d.returncode == 0]
    assert len(winners) == 1, [d.stderr for d in done]
    losers = [d.stderr for d in done if d.returncode != 0]
    for err in losers:
        if quick and "already exists and is not empty" in err:
            # It reached its output after the winner had finished (a deploy of the tiny bundle takes 0.4 s, measured:
            # on 2 cores one racer can be done before the others start): refused as for any output that is there.
            assert_one_line_error(1, err, "already exists", "--force")
        else:
            assert_one_line_error(1, err, "another process wrote", "nothing of this run was")
    return losers, winners[0]


def test_three_exports_to_one_output_leave_one_bundle_and_two_lines_that_say_so(tmp_path):
    output = tmp_path / "same"
    done = race(tmp_path, ["export", "unet", "-o", output, *TINY], preload="torch,onnx,onnxruntime")
    losers, winner = losers_and_winner(done)
    assert len(losers) == 2
    for err in losers:
        assert "bundle written" not in err  # said only by the one whose bundle is in place
    assert "bundle written to" in winner.stderr
    manifest = json.loads((output / "manifest.json").read_text())
    assert (output / manifest["artifacts"][0]["path"]).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["go", "same"]  # no scratch folder left behind


def test_three_datasets_to_one_output(tmp_path):
    output = tmp_path / "same"
    # Paced at 20 FPS: three seconds of work whatever the machine's load, so all three are writing at once.
    source = "synthetic://driving?frames=60&size=64x48&fps=20&realtime=1"
    losers, _ = losers_and_winner(race(tmp_path, ["dataset", source, "-o", output]))
    assert len(losers) == 2
    assert len(list((output / "images").iterdir())) == 60
    assert sorted(p.name for p in tmp_path.iterdir()) == ["go", "same"]


def test_atomic_directory_says_a_race_and_keeps_the_winner(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(OutputRaced, match="another process wrote"):
        with atomic_directory(target) as scratch:
            (scratch / "mine").write_text("loser")
            target.mkdir()  # another process's output lands first
            (target / "theirs").write_text("winner")
    assert [p.name for p in target.iterdir()] == ["theirs"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_an_output_that_was_there_before_is_not_a_race(tmp_path, capsys):
    output = tmp_path / "taken"
    output.mkdir()
    (output / "something").write_text("x")
    code, _, err = run_cli(capsys, "dataset", "synthetic://driving?frames=2&size=64x48", "-o", output)
    assert_one_line_error(code, err, "already exists")
    assert "another process" not in err


def test_three_deploys_to_one_output(tiny_bundle, tmp_path):
    """DeepStream deploys: each checks its graphs in its own scratch folder; the first to finish is the output."""
    output = tmp_path / "same"
    done = race(tmp_path, ["deploy", tiny_bundle, "--target", "deepstream", "--precision", "fp32", "-o", output],
                preload="onnx,onnxruntime,edgeseg.deploy.deepstream,edgeseg.engines.check")  # fmt: skip
    losers, winner = losers_and_winner(done, quick=True)
    assert len(losers) == 2
    for line in winner.stdout.splitlines():
        assert Path(line.removeprefix("wrote ")).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["go", "same"]


def test_an_empty_folder_is_taken_and_one_filled_meanwhile_is_a_race(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    with atomic_directory(target) as scratch:
        (scratch / "mine").write_text("x")
    assert [p.name for p in target.iterdir()] == ["mine"]
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(OutputRaced):
        with atomic_directory(other) as scratch:
            (scratch / "mine").write_text("loser")
            (other / "theirs").write_text("winner")  # another process filled the empty folder first
    assert [p.name for p in other.iterdir()] == ["theirs"]


def test_force_keeps_the_old_output_until_the_new_one_is_whole(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_directory(target, replace=True) as scratch:
            (scratch / "new").write_text("half")
            raise RuntimeError("a check failed")
    assert [p.name for p in target.iterdir()] == ["old"]
    with atomic_directory(target, replace=True) as scratch:
        (scratch / "new").write_text("whole")
    assert [p.name for p in target.iterdir()] == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_full_folder_is_refused_before_any_work(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "theirs").write_text("x")
    with pytest.raises(EdgesegError, match="already exists and is not empty"):
        with atomic_directory(target):
            raise AssertionError("the block must not run")


def test_dataset_labels_are_read_back_before_the_folder_is_in_place(tmp_path):
    """What eval and train would refuse is never left at the output: the label files are read back in the scratch
    folder, and a failure names the output, not the scratch folder."""
    from edgeseg.tools.dataset import check_labels

    scratch = tmp_path / ".out.partial"
    (scratch / "images").mkdir(parents=True)
    (scratch / "instances.json").write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png", "width": 4,
                                                                    "height": 4}], "annotations": [],
                                                        "categories": []}))  # fmt: skip
    with pytest.raises(EdgesegError, match="internal: the labels written for") as raised:
        check_labels(scratch, tmp_path / "out")
    assert ".partial" not in str(raised.value) and str(tmp_path / "out") in str(raised.value)


@pytest.mark.parametrize(
    "argv",
    [["build", "{bundle}"], ["calibrate", "{bundle}", "--data", "synthetic://driving?frames=8&size=64x64", "--count",
                             "4", "--eval-count", "2"]],  # fmt: skip
)
def test_calibrate_and_build_are_refused_at_once_while_another_stage_writes_the_bundle(bundle_copy, capsys, argv):
    """calibrate and build write into a bundle, not a folder of their own: the bundle's lock makes a second stage say
    which process holds it before it does any work, and the bundle stays as it was."""
    from edgeseg.bundle import writing

    before = (bundle_copy / "manifest.json").read_text()
    with writing(bundle_copy, "calibrate"):
        code, _, err = run_cli(capsys, *(arg.format(bundle=bundle_copy) for arg in argv))
    assert_one_line_error(code, err, f"is being written by edgeseg calibrate (pid {os.getpid()})", "wait")
    assert (bundle_copy / "manifest.json").read_text() == before
    assert (bundle_copy / ".lock").read_text() == ""  # the stage over, no holder is named for a later reader
