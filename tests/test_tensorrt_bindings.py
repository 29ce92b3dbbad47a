"""edgeseg's TensorRT code against NVIDIA's real Python bindings: 8.6.1, 10.3, 10.13, 10.16 and 11.4.

The bindings are real; their native libraries are C stubs that return NULL (tests/real_tensorrt.py), so
nothing here builds an engine. What is real: every class, enum value, property and pybind11 signature,
and the failure a machine gets when TensorRT cannot create its Builder or Runtime. Each version runs in
its own subprocess. A version whose wheel could not be fetched skips, saying so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import recipe_bundle
from real_tensorrt import WHEELS, environment, skip_reason
from tensorrt_double import HostMemoryCuda, RecordingTensorRT
from tensorrt_surface import Recorder

from edgeseg.bundle import Bundle
from edgeseg.engines import BuildOptions, GpuInfo, build
from edgeseg.engines.compat import create_builder
from edgeseg.errors import EdgesegError
from edgeseg.runtime.backends.tensorrt import TensorRTBackend

VERSIONS = list(WHEELS)
ORIN = GpuInfo("Orin", "8.7")
TESTS = Path(__file__).resolve().parent


def needs(version: str) -> None:
    reason = skip_reason(version)
    if reason:
        pytest.skip(reason)


def in_version(version: str, script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run Python code (or a script file) with this version's real bindings importable as `tensorrt`."""
    program = [script] if script.endswith(".py") else ["-c", textwrap.dedent(script)]
    return subprocess.run(
        [sys.executable, *program, *args],
        env=env or environment(version),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=TESTS.parent,
    )


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """A calibrated tiny bundle (fp32, fp16, int8) and a dynamic-batch one."""
    return recipe_bundle(tmp_path_factory, "unet-calibrated"), recipe_bundle(tmp_path_factory, "lraspp-dynamic-batch")


def exercise(version: str, fixed: Path, dynamic: Path, work: Path) -> list[dict]:
    """Run the builder, the backend and doctor's TensorRT query against the double for one version, recording
    every use of the TensorRT API they make."""
    records: list[dict] = []

    def module(**behaviour):
        return Recorder(RecordingTensorRT(version, dla_cores=2, **behaviour), records, owner="tensorrt")

    fixed_copy, dynamic_copy = work / "fixed", work / "dynamic"
    shutil.copytree(fixed, fixed_copy)
    shutil.copytree(dynamic, dynamic_copy)
    level = {"optimization_level": 3} if version >= "8.6" or int(version.split(".")[0]) >= 10 else {}
    cache = str(work / "timing.cache")
    options = dict(progress=False, workspace_mib=64, timing_cache=cache, **level)
    build(fixed_copy, BuildOptions(precisions=("fp32", "fp16", "int8"), **options), trt=module(), gpu=ORIN)
    build(fixed_copy, BuildOptions(precisions=("fp16",), **options), trt=module(cache_accepted=False), gpu=ORIN)
    build(dynamic_copy, BuildOptions(precisions=("fp32",), batch=(1, 2, 4), progress=False), trt=module(), gpu=ORIN)
    try:
        build(fixed_copy, BuildOptions(precisions=("fp16",), dla_core=1, progress=False), trt=module(), gpu=ORIN)
    except EdgesegError:
        assert version.startswith("11.")  # 11.0-11.4.0 have no DLA; refused before any TensorRT call
    with_errors = module(parse_errors=[(0, "/Resize", "unsupported")])
    try:
        build(fixed_copy, BuildOptions(precisions=("fp32",), progress=False), trt=with_errors, gpu=ORIN)
    except EdgesegError:
        pass
    for bundle_dir in (fixed_copy, dynamic_copy):
        bundle = Bundle.load(bundle_dir)
        for engine in (a for a in bundle.artifacts if a.kind == "engine"):
            backend = TensorRTBackend(bundle, engine, trt=module(), cuda=HostMemoryCuda())
            backend.open()
            batch = 2 if bundle_dir == dynamic_copy else 1
            backend.infer(np.zeros((batch, 64, 64, 3), np.uint8))
            backend.close()
    trt = module()
    assert create_builder(trt, trt.Logger(trt.Logger.ERROR)).num_DLA_cores == 2  # doctor's query
    return records


@pytest.mark.parametrize("version", VERSIONS)
def test_code_and_double_match_the_real_bindings(version, bundles, tmp_path):
    needs(version)
    records = exercise(version, *bundles, tmp_path)
    assert len(records) > 50  # the builder, the backend and doctor touch this much of the API
    (tmp_path / "records.json").write_text(json.dumps(records))
    done = in_version(version, str(TESTS / "tensorrt_surface.py"), version, str(tmp_path / "records.json"))
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["version"] == version and report["checked"] == len(records)
    problems = [f"edgeseg: {line}" for line in report["code"]] + [f"double: {line}" for line in report["double"]]
    assert problems == [], f"where the real TensorRT {version} bindings disagree:\n" + "\n".join(problems)


HELPERS = """
import json
from edgeseg.engines.build import BuildProgress, check_dla_version
from edgeseg.engines.compat import create_builder, create_runtime, network_flags, precision_flags
from edgeseg.errors import EdgesegError
from edgeseg.progress import Progress
import tensorrt as trt

out = {"network_flags": network_flags(trt),
       "precision_flags": {p: [f.name for f in precision_flags(trt, p)] for p in ("fp32", "fp16", "int8")}}
if hasattr(trt, "IProgressMonitor"):
    out["monitor"] = isinstance(BuildProgress.make(trt, Progress(1, "build", enabled=False)), trt.IProgressMonitor)
logger = trt.Logger(trt.Logger.WARNING)
for name, factory in (("builder", create_builder), ("runtime", create_runtime)):
    try:
        factory(trt, logger)
    except EdgesegError as exc:
        out[name] = str(exc)
try:
    check_dla_version(trt)
    out["dla"] = "allowed"
except EdgesegError as exc:
    out["dla"] = str(exc)
print(json.dumps(out))
"""


@pytest.mark.parametrize("version", VERSIONS)
def test_version_helpers_on_the_real_module(version):
    needs(version)
    done = in_version(version, HELPERS)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    major = int(version.split(".")[0])
    assert out["network_flags"] == {8: 1 << 0, 10: 1 << 1, 11: 0}[major]  # EXPLICIT_BATCH, STRONGLY_TYPED, none
    if major == 8:
        assert out["precision_flags"] == {"fp32": [], "fp16": ["FP16"], "int8": ["INT8", "FP16"]}
        assert "monitor" not in out  # IProgressMonitor arrived in 10.0
    else:
        assert out["precision_flags"] == {"fp32": [], "fp16": [], "int8": []} and out["monitor"] is True
    for name in ("Builder", "Runtime"):  # NULL from the native side: one line, not TypeError
        assert f"TensorRT {version} could not create its {name}: CUDA did not initialise" in out[name.lower()]
    assert (out["dla"] == "allowed") == (major < 11)


def test_doctor_with_real_11_4_and_a_null_builder_prints_its_whole_report():
    """Real 11.4 bindings; CUDA is HostMemoryCuda, a TEST DOUBLE reporting an Orin (no GPU here)."""
    needs("11.4.0.106")
    script = """
    import sys
    sys.path.insert(0, "tests")
    import edgeseg.engines.cuda
    from tensorrt_double import HostMemoryCuda
    edgeseg.engines.cuda.open_cuda = lambda device=0: HostMemoryCuda()
    edgeseg.engines.cuda.cuda_binding_installed = lambda: "test-double"
    from edgeseg.cli import main
    sys.exit(main(["doctor"]))
    """
    done = in_version("11.4.0.106", script)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    rows = {line.split("  ")[0]: line for line in done.stdout.splitlines()}
    for field in ("python", "onnxruntime", "tensorrt", "cuda binding", "gpu", "cuda driver", "cameras", "jetson"):
        assert field in rows, f"doctor lost its {field} row:\n{done.stdout}"
    assert "11.4.0.106" in rows["tensorrt"] and "Orin (compute capability 8.7)" in rows["gpu"]
    assert "could not create its Builder: CUDA did not initialise" in rows["tensorrt problem"]


def test_bindings_without_native_libraries_are_named_and_auto_falls_back(bundles, tmp_path, capsys):
    version = "10.3.0"
    needs(version)
    bundle = tmp_path / "b"
    shutil.copytree(bundles[0], bundle)
    build(bundle, BuildOptions(precisions=("fp32",), progress=False), trt=RecordingTensorRT(version), gpu=ORIN)
    env = environment(version)
    env["LD_LIBRARY_PATH"] = ""  # the bindings are importable; libnvinfer.so.10 is not
    cli = "import sys; from edgeseg.cli import main; sys.exit(main(sys.argv[1:]))"
    built = in_version(version, cli, "build", str(bundle), env=env)
    assert built.returncode == 1 and "Traceback" not in built.stderr
    # one error line; a warning before it (the tiny bundle's INT8 below its agreement bar) is not an error
    said = built.stderr.splitlines()
    errors = [line for line in said if not line.startswith(("edgeseg: warning:", "edgeseg: note:"))]
    assert len(errors) == 1, built.stderr
    assert "Python bindings are installed but cannot load its native libraries" in built.stderr
    assert "libnvinfer.so.10" in built.stderr or "libnv" in built.stderr
    args = ["run", str(bundle), "-i", "synthetic://driving?frames=3&size=64x64", "--frames", "3"]
    auto = in_version(version, cli, *args, "--backend", "auto", env=env)
    assert auto.returncode == 0, auto.stderr[-2000:]
    assert "onnxruntime" in auto.stdout + auto.stderr  # the summary names the backend it used
    forced = in_version(version, cli, *args, "--backend", "tensorrt", env=env)
    assert forced.returncode == 1 and forced.stderr.count("\n") == 1
    assert "--backend tensorrt: TensorRT's Python bindings are installed but cannot load" in forced.stderr
    assert os.path.isdir(bundle)
