"""Real faults: a disk that fills up (a small tmpfs this test mounts, as root), and stages run at once
on one bundle (real processes). Nothing half-written may be left for a later run to trust."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import cv2
import pytest
from conftest import TINY, assert_one_line_error, run_cli
from test_rtsp import frame_count


def can_mount() -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    probe = Path(f"/tmp/edgeseg-mount-probe-{uuid.uuid4().hex[:8]}")
    probe.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)], capture_output=True)
        if mounted.returncode == 0:
            subprocess.run(["umount", str(probe)], check=True)
        return mounted.returncode == 0
    finally:
        probe.rmdir()


needs_tmpfs = pytest.mark.skipif(not can_mount(), reason="mounting a small tmpfs needs root and mount permission")


@pytest.fixture()
def small_disk(tmp_path):
    """A tmpfs of a size the test chooses: `small_disk(kilobytes) -> Path`."""
    mounts = []

    def mount(kilobytes: int) -> Path:
        folder = tmp_path / f"disk{len(mounts)}"
        folder.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kilobytes}k", "tmpfs", str(folder)], check=True)
        mounts.append(folder)
        return folder

    yield mount
    for folder in mounts:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@needs_tmpfs
def test_export_onto_a_full_disk(small_disk, capsys):
    disk = small_disk(300)  # the tiny U-Net's ONNX is about 500 KB
    code, _, err = run_cli(capsys, "export", "unet", "-o", disk / "b", *TINY)
    assert_one_line_error(code, err, "no room left writing to", str(disk), "MiB free there")
    assert list(disk.iterdir()) == []  # nothing half-written


@needs_tmpfs
def test_calibrate_on_a_disk_that_fills_up_leaves_the_bundle_as_it_was(tiny_bundle, small_disk, capsys):
    disk = small_disk(700)  # the bundle takes 500 KB of it; the INT8 and FP16 variants do not fit
    bundle = disk / "b"
    shutil.copytree(tiny_bundle, bundle)
    before = (bundle / "manifest.json").read_text()
    free_before = shutil.disk_usage(disk).free
    argv = [
        "calibrate",
        bundle,
        "--data",
        "synthetic://driving?frames=20&size=64x64",
        "--count",
        "8",
        "--eval-count",
        "4",
    ]
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, "no room left writing to")
    assert (bundle / "manifest.json").read_text() == before
    assert run_cli(capsys, "info", bundle)[0] == 0  # still a valid bundle
    assert shutil.disk_usage(disk).free >= free_before - 64 * 1024  # the derived copies were removed


@needs_tmpfs
def test_a_recording_cut_short_by_a_full_disk_stays_playable(tiny_bundle, small_disk, capsys):
    disk = small_disk(700)
    video = disk / "out.mp4"
    code, _, err = run_cli(capsys, "run", tiny_bundle, "-i", "synthetic://driving?frames=600&size=320x240", "-o", video)
    assert_one_line_error(code, err, "is full", "the recording stops at", "closed and playable")
    stopped_at = int(err.split("stops at ")[1].split(" frames")[0])
    assert 0 < stopped_at < 600 and frame_count(video) == stopped_at  # every frame it holds decodes
    assert cv2.VideoCapture(str(video)).isOpened()


def calibrate_process(bundle: Path) -> subprocess.Popen:
    argv = [
        sys.executable,
        "-m",
        "edgeseg",
        "calibrate",
        str(bundle),
        "--data",
        "synthetic://driving?frames=40&size=64x64",
    ]
    argv += ["--count", "24", "--eval-count", "8"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_calibrations_at_once_and_runs_meanwhile(bundle_copy):
    first = calibrate_process(bundle_copy)
    deadline = time.monotonic() + 30
    holder = f"edgeseg calibrate (pid {first.pid})"  # not the name a stage of the bundle's own making left there
    while not (bundle_copy / ".lock").is_file() or holder not in (bundle_copy / ".lock").read_text():
        assert time.monotonic() < deadline and first.poll() is None, "the first calibration did not start"
        time.sleep(0.05)
    second = calibrate_process(bundle_copy)
    _, second_err = second.communicate(timeout=120)
    # Runs while the first writes: each sees a whole manifest, before or after, and works.
    runs = []
    while first.poll() is None and len(runs) < 6:
        runs.append(
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "edgeseg",
                    "run",
                    str(bundle_copy),
                    "-i",
                    "synthetic://driving?frames=2&size=64x64",
                    "-o",
                    "none",
                ],
                capture_output=True,
                text=True,
                timeout=120,
            )
        )
    _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err
    assert (
        second.returncode == 1
        and "is being written by edgeseg calibrate (pid" in second_err
        and "Traceback" not in second_err
    )
    assert runs and all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    assert {a["precision"] for a in manifest["artifacts"]} == {"fp32", "fp16", "int8"}


@needs_tmpfs
def test_build_onto_a_full_disk_leaves_the_bundle_as_it_was(tiny_bundle, small_disk):
    """With the recording TensorRT double (TensorRT cannot be installed here): its plan is bytes, written as a
    real engine would be. This checks edgeseg's writing, not what a real TensorRT builds."""
    import errno

    from tensorrt_double import RecordingTensorRT

    from edgeseg.cli import os_error_line
    from edgeseg.engines import BuildOptions, GpuInfo, build

    disk = small_disk(900)
    bundle = disk / "b"
    shutil.copytree(tiny_bundle, bundle)
    before = (bundle / "manifest.json").read_text()
    trt = RecordingTensorRT("10.3.0", plan=b"\0" * (1 << 20))  # a 1 MiB engine on a disk with 400 KB left
    with pytest.raises(OSError) as raised:
        build(bundle, BuildOptions(precisions=("fp32",), progress=False), trt=trt, gpu=GpuInfo("Orin", "8.7"))
    assert raised.value.errno == errno.ENOSPC
    assert "no room left writing to" in os_error_line(raised.value, None)
    assert (bundle / "manifest.json").read_text() == before
    assert not any(p.suffix == ".engine" or ".partial" in p.name for p in bundle.rglob("*"))  # nothing half-written
