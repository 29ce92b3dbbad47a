"""The device side on each JetPack's own Python: 5.1 (3.8), 6.x (3.10) and 7 (3.12).

Each JetPack gets a stand-in (tests/jetpack_standin.py): its Python minor version, its Ubuntu numpy and a cv2
built for numpy 1.x laid out as dist-packages, and a venv made as the README says. The README's install
command runs in it; then the JetPack's cv2 must still work beside a numpy 1.x, and the device verbs must work
on a bundle the desktop exported (the stand-in cannot have torch). The runtime's own tests, and the
conformance of edgeseg's TensorRT calls with the real bindings of the TensorRT that JetPack ships (nearest on
PyPI), run on that interpreter too.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import xml.etree.ElementTree as ElementTree
import zipfile
from pathlib import Path

import cv2
import pytest
from conftest import recipe_source
from jetpack_standin import JETPACKS, Device, JetPack, JobFolder, interpreter, results, runtime_tests
from recipes import BUNDLE_RECIPES, copy_bundle, shared_root


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> JobFolder:
    """The background job making the desktop wheel, the stand-ins and their runtime tests since the session started
    (conftest.py starts it)."""
    return results(shared_root(tmp_path_factory.getbasetemp()))


@pytest.fixture(scope="module")
def desktop_wheel(job) -> Path:
    """The wheel `pip wheel` makes of the checkout on the desktop."""
    return Path(job.wait("wheel"))


def test_the_wheel_caps_numpy_on_a_jetson_and_in_the_device_extra_only(desktop_wheel):
    """A plain install on any Jetson (aarch64) and the README's board install keep numpy 1.x; desktops keep 2."""
    from packaging.requirements import Requirement

    with zipfile.ZipFile(desktop_wheel) as wheel:
        metadata = wheel.read(next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    requirements = [
        Requirement(line.split(":", 1)[1]) for line in metadata.splitlines() if line.startswith("Requires-Dist:")
    ]

    def numpy_specifiers(machine: str, python: str, extra: str = "") -> str:
        env = {"platform_machine": machine, "python_version": python, "sys_platform": "linux", "extra": extra}
        found = [r for r in requirements if r.name == "numpy" and (r.marker is None or r.marker.evaluate(env))]
        return ",".join(str(r.specifier) for r in found)

    for python in ("3.8", "3.10", "3.12"):
        assert "<2" in numpy_specifiers("aarch64", python), python  # `pip install .` on a Jetson
        assert "<2" in numpy_specifiers("x86_64", python, "device"), python  # the README's board install
    assert "<2" not in numpy_specifiers("x86_64", "3.11") and "<2" not in numpy_specifiers("aarch64", "3.13")
    assert "Requires-Python: >=3.8" in metadata and "Programming Language :: Python :: 3.8" in metadata


@pytest.fixture(scope="module")
def desktop_bundles(tmp_path_factory) -> Path:
    """Every bundle the tests share, exported here (the desktop) for the stand-ins to run."""
    root = tmp_path_factory.mktemp("desktop-bundles")
    for name in BUNDLE_RECIPES:
        copy_bundle(recipe_source(tmp_path_factory, name), root / name)
    return root


@pytest.fixture(scope="module", params=JETPACKS, ids=lambda jetpack: f"jetpack{jetpack.name}")
def device(request, job) -> Device:
    """The JetPack's stand-in with edgeseg installed from this checkout by the README's command."""
    jetpack: JetPack = request.param
    if interpreter(jetpack) is None:
        pytest.skip(f"no Python {jetpack.python} under ~/.pyenv/versions: the JetPack {jetpack.name} stand-in needs it")
    return Device.from_json(job.wait(f"device-{jetpack.name}"))


def test_install_keeps_the_jetpacks_cv2_working_beside_numpy_1(device):
    dist_packages = str(device.jetpack.folder / "dist-packages")
    # The JetPack's numpy as found before the install. (opencv-python-headless 4.8.0.76, JetPack 6's stand-in,
    # needs numpy >= 1.22 to import at all: its typing module subscripts numpy.dtype. It works after the install.)
    assert device.before["numpy"] == device.jetpack.numpy, device.before
    assert device.after.get("cv2_works") is True, device.after
    assert device.after["cv2_file"].startswith(dist_packages), device.after  # JetPack's, not a pip cv2
    assert device.after["numpy"].startswith("1."), device.after
    names = {line.split("==")[0].lower() for line in device.installed.splitlines()}
    assert "edgeseg" in names and not any("opencv" in name for name in names), device.installed


# every kind of bundle: semantic, instances (Mask R-CNN), keypoints (the hourglass)
RUN_KINDS = {
    "unet": "synthetic://driving?frames=12&size=64x64",
    "demo-driving-instances": "synthetic://driving?frames=12&size=320x240",
    "demo-medical-tips": "synthetic://medical?frames=12&size=320x240",
}


@pytest.mark.parametrize("bundle_name", list(RUN_KINDS))
def test_run_writes_every_frame_of_a_desktop_bundle(device, desktop_bundles, tmp_path, bundle_name):
    video = tmp_path / "out.mp4"
    bundle = desktop_bundles / bundle_name
    done = device.run("edgeseg", "run", bundle, "-i", RUN_KINDS[bundle_name], "-o", video)
    assert done.returncode == 0, done.stderr
    assert "frames: 12 read, 12 inferred, 12 written" in done.stdout, done.stdout
    capture = cv2.VideoCapture(str(video))
    decoded = 0
    while capture.read()[0]:
        decoded += 1
    assert decoded == 12


def test_doctor_check_info_bench_and_deploy_work(device, desktop_bundles, tmp_path):
    bundle = desktop_bundles / "unet-calibrated"
    doctor = device.run("edgeseg", "doctor")
    assert doctor.returncode == 0 and "Traceback" not in doctor.stderr, doctor.stderr
    python_row = next(line for line in doctor.stdout.splitlines() if line.startswith("python"))
    assert f"{device.jetpack.python}." in python_row, doctor.stdout
    check = device.run("edgeseg", "check", bundle, "--jetpack", device.jetpack.check)
    assert check.returncode == 0 and "Traceback" not in check.stderr, check.stdout + check.stderr
    info = device.run("edgeseg", "info", bundle)
    assert info.returncode == 0 and "int8" in info.stdout, info.stdout + info.stderr
    report = tmp_path / "bench.json"
    bench = device.run("edgeseg", "bench", bundle, "--frames", "8", "--warmup", "2", "--json", report)
    assert bench.returncode == 0 and "Traceback" not in bench.stderr, bench.stdout + bench.stderr
    rows = json.loads(report.read_text())["rows"]
    assert rows and all(row["engine"]["count"] == 8 for row in rows if "engine" in row), rows
    for target in ("deepstream", "triton"):
        deploy = device.run("edgeseg", "deploy", bundle, "--target", target, "-o", tmp_path / target)
        assert deploy.returncode == 0 and "Traceback" not in deploy.stderr, deploy.stdout + deploy.stderr
        assert len(list((tmp_path / target).rglob("*.onnx"))) >= 1


def test_export_says_it_needs_torch_in_one_line(device, tmp_path):
    done = device.run("edgeseg", "export", "unet", "-o", tmp_path / "b")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and "torch" in done.stderr, done.stderr
    assert not (tmp_path / "b").exists()


def test_runtime_tests_and_real_tensorrt_bindings_pass_on_the_jetpacks_python(device, job):
    done = job.wait(f"runtime-{device.jetpack.name}")
    assert done["returncode"] == 0, done["stdout"][-4000:] + done["stderr"][-2000:]
    cases = ElementTree.parse(done["report"]).getroot().iter("testcase")
    outcome = {}
    for case in cases:
        kind = next((child.tag for child in case if child.tag in ("skipped", "failure", "error")), "passed")
        outcome[f"{case.get('classname').split('.')[-1]}::{case.get('name')}"] = kind
    modules = runtime_tests(device.jetpack)
    module_passed = {m: sum(1 for k, v in outcome.items() if k.startswith(m) and v == "passed") for m in modules}
    assert all(count >= 1 for count in module_passed.values()), module_passed
    bindings_skipped = [k for k, v in outcome.items() if "test_tensorrt_bindings" in k and v == "skipped"]
    for version in device.jetpack.tensorrt:  # the JetPack's TensorRT really ran, on this Python
        assert not [k for k in bindings_skipped if version in k], bindings_skipped
        assert outcome.get(f"test_tensorrt_bindings::test_code_and_double_match_the_real_bindings[{version}]") == (
            "passed"
        ), outcome


def test_the_stand_ins_are_the_jetpacks_pythons():
    """Each stand-in's interpreter is the JetPack's minor version (a wrong glob would test the desktop's)."""
    for jetpack in JETPACKS:
        python = interpreter(jetpack)
        if python is None:
            continue
        version = subprocess.run([python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True)
        assert re.match(rf"{re.escape(jetpack.python)}\.\d+ ", version.stdout), version.stdout


def test_the_runtime_on_the_jetpacks_own_numpy(device, desktop_bundles):
    """pip put a newer numpy 1.x in the venv for onnxruntime; with JetPack's own first on the path (as with Ubuntu
    20.04's pip 20, which has no resolver), the runtime still works, and onnxruntime's refusal is one line."""
    if device.after["numpy"] == device.jetpack.numpy:
        pytest.skip("pip kept the JetPack's own numpy: every test above ran on it")
    if not device.before["cv2_works"]:
        pytest.skip(f"the stand-in's cv2 does not import beside numpy {device.jetpack.numpy}: {device.before}")
    env = dict(os.environ, PYTHONPATH=str(device.jetpack.folder / "dist-packages"))
    env["EDGESEG_TEST_BUNDLES"] = str(desktop_bundles)
    seen = device.run("python", "-c", "import numpy; print(numpy.__version__)", env=env)
    assert seen.stdout.strip() == device.jetpack.numpy, seen.stdout + seen.stderr
    tests = device.run("pytest", "-q", "-p", "no:cacheprovider", "tests/test_runtime.py", env=env)
    assert tests.returncode == 0 and " passed" in tests.stdout, tests.stdout[-3000:]
    source = "synthetic://driving?frames=3&size=64x64"
    run = device.run("edgeseg", "run", desktop_bundles / "unet", "-i", source, "-o", "none", env=env)
    assert run.returncode == 1 and run.stderr.count("\n") == 1, run.stderr
    assert f"cannot load beside numpy {device.jetpack.numpy}: it needs numpy>=" in run.stderr
    assert "pip install 'numpy>=" in run.stderr and ",<2'" in run.stderr


def test_a_cv2_beside_numpy_2_is_one_line_naming_the_numpy_to_install(device, desktop_bundles):
    """Last for each stand-in: it breaks the venv the way a bare `pip install numpy` would."""
    if device.jetpack.python == "3.8":
        pytest.skip("numpy 2 has no release for Python 3.8: JetPack 5.1's venv cannot get it")
    upgrade = device.run("python", "-m", "pip", "install", "--quiet", "--no-deps", "numpy==2.2.6")
    assert upgrade.returncode == 0, upgrade.stderr[-2000:]
    done = device.run("edgeseg", "info", desktop_bundles / "unet")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "built for numpy 1.x and cannot load beside numpy 2.2.6" in done.stderr
    assert "pip install 'numpy<2'" in done.stderr and "edgeseg[opencv]" not in done.stderr
