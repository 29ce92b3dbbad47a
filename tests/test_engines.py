"""The TensorRT builder and backend against a recording test double (TensorRT cannot be installed here).

These tests check edgeseg's own logic: which calls each TensorRT version gets, the metadata it
keeps, the refusals it makes. They make no claim about what a real TensorRT builds; the tests at
the bottom that need a real TensorRT and GPU skip with the reason.
"""

from __future__ import annotations

import importlib.util
import shutil

import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli
from tensorrt_double import RecordingTensorRT

from edgeseg.bundle import Bundle
from edgeseg.engines import BuildOptions, GpuInfo, build, check_engine
from edgeseg.errors import EdgesegError

ORIN = GpuInfo("Orin", "8.7")


@pytest.fixture()
def calibrated_copy(tiny_bundle, tmp_path, capsys):
    bundle = tmp_path / "b"
    shutil.copytree(tiny_bundle, bundle)
    code, _, err = run_cli(
        capsys,
        "calibrate",
        bundle,
        "--data",
        "synthetic://driving?seed=1&frames=20&size=64x64",
        "--count",
        "8",
        "--eval-count",
        "4",
        "--method",
        "minmax",
    )
    assert code == 0, err
    return bundle


def build_with(bundle, version, **options):
    trt = RecordingTensorRT(
        version, **{k: options.pop(k) for k in ("dla_cores", "parse_errors", "plan") if k in options}
    )
    result = build(bundle, BuildOptions(progress=False, **options), trt=trt, gpu=ORIN)
    return trt, result


def calls(trt, name):
    return [c for c in trt.calls if c[0] == name]


def test_tensorrt_8_is_explicit_batch_and_weakly_typed_with_flags(calibrated_copy):
    trt, _ = build_with(calibrated_copy, "8.5.2", precisions=("fp32", "fp16", "int8"))
    assert calls(trt, "create_network") == [("create_network", 1 << 0)] * 3
    assert [c[1] for c in calls(trt, "set_flag")] == ["FP16", "INT8", "FP16"]  # fp16 graph; Q/DQ graph gets INT8 + FP16
    assert all(
        path.endswith(("model.onnx", "model.fp16.onnx", "model.int8-tensorrt.onnx"))
        for _, path in calls(trt, "parse_from_file")
    )
    assert calls(trt, "parse_from_file")[2][1].endswith("model.int8-tensorrt.onnx")  # the Q/DQ graph, not the CPU one


def test_tensorrt_10_is_strongly_typed_without_precision_flags(calibrated_copy):
    trt, _ = build_with(calibrated_copy, "10.3.0", precisions=("fp16", "int8"))
    assert calls(trt, "create_network") == [("create_network", 1 << 1)] * 2
    assert calls(trt, "set_flag") == []
    assert ("config.progress_monitor", "Monitor") in trt.calls  # IProgressMonitor exists from 10.0


def test_tensorrt_11_has_no_explicit_batch_and_no_precision_flags(calibrated_copy):
    trt, _ = build_with(calibrated_copy, "11.1.0", precisions=("fp32", "int8"))
    assert calls(trt, "create_network") == [("create_network", 0)] * 2
    assert (
        not hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH") and "INT8" not in trt.BuilderFlag.__members__
    )
    assert calls(trt, "set_flag") == []


def test_engine_metadata_in_the_manifest(calibrated_copy):
    _, bundle = build_with(calibrated_copy, "10.3.0", precisions=("int8",), workspace_mib=512)
    (engine,) = [a for a in bundle.artifacts if a.kind == "engine"]
    source = next(a for a in bundle.artifacts if a.path == "model.int8-tensorrt.onnx")
    assert engine.precision == "int8" and engine.tools == {"tensorrt": "10.3.0"}
    assert engine.extra["gpu"] == "Orin" and engine.extra["compute_capability"] == "8.7"
    assert engine.extra["source"] == source.path and engine.extra["source_sha256"] == source.sha256
    assert engine.extra["build_options"]["workspace_mib"] == 512
    assert (calibrated_copy / engine.path).read_bytes() == b"TEST-DOUBLE-PLAN"
    assert engine.path.startswith("engines/") and "trt10.3.0.sm87" in engine.path


def test_workspace_level_and_timing_cache(calibrated_copy, tmp_path):
    cache = tmp_path / "timing.cache"
    trt, _ = build_with(
        calibrated_copy, "8.6.1", precisions=("fp32",), workspace_mib=256, optimization_level=5, timing_cache=str(cache)
    )
    assert ("set_memory_pool_limit", "WORKSPACE", 256 << 20) in trt.calls
    assert ("config.builder_optimization_level", 5) in trt.calls
    assert calls(trt, "create_timing_cache") == [("create_timing_cache", b"")]
    assert cache.read_bytes() == b"+updated"
    trt, _ = build_with(calibrated_copy, "8.6.1", precisions=("fp32",), timing_cache=str(cache))
    assert calls(trt, "create_timing_cache") == [("create_timing_cache", b"+updated")]  # reused, then updated
    assert cache.read_bytes() == b"+updated+updated"


def test_optimization_level_needs_8_6(calibrated_copy):
    with pytest.raises(EdgesegError, match="needs TensorRT 8.6"):
        build_with(calibrated_copy, "8.5.2", precisions=("fp32",), optimization_level=2)


def test_dynamic_batch_gets_a_profile(tmp_path, capsys):
    bundle = tmp_path / "dyn"
    assert (
        run_cli(
            capsys,
            "export",
            "lraspp",
            "-o",
            bundle,
            "--size",
            "64x64",
            "--classes",
            "3",
            "--arg",
            "width=4",
            "--dynamic-batch",
        )[0]
        == 0
    )
    trt, _ = build_with(bundle, "10.3.0", precisions=("fp32",), batch=(1, 2, 4))
    assert calls(trt, "set_shape") == [("set_shape", "frame", (1, 64, 64, 3), (2, 64, 64, 3), (4, 64, 64, 3))]


def test_dla_core_with_gpu_fallback(calibrated_copy):
    trt, _ = build_with(calibrated_copy, "8.5.2", precisions=("fp16",), dla_core=1, dla_cores=2)
    assert ("config.default_device_type", "DLA") in trt.calls and ("config.DLA_core", 1) in trt.calls
    assert ("set_flag", "GPU_FALLBACK") in trt.calls


def test_dla_on_a_machine_without_dla(calibrated_copy):
    with pytest.raises(EdgesegError, match="no DLA cores"):
        build_with(calibrated_copy, "10.3.0", precisions=("fp16",), dla_core=0, dla_cores=0)
    assert not (calibrated_copy / "engines").exists() or not list((calibrated_copy / "engines").iterdir())


@pytest.mark.parametrize(
    "version,expected", [("10.3.0", "node /model/Resize (Resize)"), ("8.5.2", "node /Cast (Cast)")]
)
def test_parser_errors_name_the_node(calibrated_copy, version, expected):
    errors = [(0, "/model/Resize", "Assertion failed: mode == linear")]
    with pytest.raises(EdgesegError) as info:
        build_with(calibrated_copy, version, precisions=("fp32",), parse_errors=errors)
    message = str(info.value)
    assert (
        f"TensorRT {version} cannot parse model.onnx" in message and expected in message and "mode == linear" in message
    )
    assert not any(a.kind == "engine" for a in Bundle.load(calibrated_copy).artifacts)


def test_failed_build_leaves_nothing_listed(calibrated_copy):
    with pytest.raises(EdgesegError, match="failed to build"):
        build_with(calibrated_copy, "10.3.0", precisions=("fp32",), plan=None)
    assert not any(a.kind == "engine" for a in Bundle.load(calibrated_copy).artifacts)


def test_engine_for_another_tensorrt_or_gpu_is_refused(calibrated_copy):
    _, bundle = build_with(calibrated_copy, "10.3.0", precisions=("fp16",))
    engine = next(a for a in bundle.artifacts if a.kind == "engine")
    check_engine(engine, RecordingTensorRT("10.3.0"), ORIN, bundle)  # same: accepted
    with pytest.raises(EdgesegError) as info:
        check_engine(engine, RecordingTensorRT("10.13.3"), GpuInfo("NVIDIA H100", "9.0"), bundle)
    message = str(info.value)
    assert "TensorRT 10.3.0 (here 10.13.3)" in message and "GPU Orin sm8.7 (here NVIDIA H100 sm9.0)" in message
    assert f"edgeseg build {bundle.root} --precision fp16" in message


def test_garbage_engine_file_is_refused(calibrated_copy):
    from edgeseg.runtime.backends.tensorrt import TensorRTBackend

    _, bundle = build_with(calibrated_copy, "10.3.0", precisions=("fp32",))
    engine = next(a for a in bundle.artifacts if a.kind == "engine")
    backend = TensorRTBackend(bundle, engine)
    trt = RecordingTensorRT("10.3.0")
    trt.Runtime = lambda logger: type(
        "Runtime", (), {"deserialize_cuda_engine": lambda self, data: None}
    )()  # what TensorRT returns for a bad plan
    backend.trt = trt
    with pytest.raises(EdgesegError, match="damaged or not an engine.*edgeseg build"):
        backend._load(trt)
    assert ("init_libnvinfer_plugins", "") in trt.calls  # plugins registered before deserialising


def test_batch_outside_the_profile_is_refused(calibrated_copy):
    from edgeseg.runtime.backends import TensorSpec
    from edgeseg.runtime.backends.tensorrt import TensorRTBackend

    _, bundle = build_with(calibrated_copy, "10.3.0", precisions=("fp32",))
    backend = TensorRTBackend(bundle, next(a for a in bundle.artifacts if a.kind == "engine"))
    backend.input_names = ["frame"]
    backend.inputs = [TensorSpec("frame", (None, 64, 64, 3), np.dtype(np.uint8))]
    backend.engine = type(
        "Engine",
        (),
        {"get_tensor_profile_shape": lambda self, name, index: ((1, 64, 64, 3), (2, 64, 64, 3), (4, 64, 64, 3))},
    )()
    backend.batch = None
    with pytest.raises(EdgesegError, match=r"batch 8 is outside the engine's profile \(1..4\).*--batch 1,8,8"):
        backend._prepare(8)


# -- missing pieces and bad input through the CLI ---------------------------------------------------
def test_build_without_tensorrt_says_how_to_get_it(tiny_bundle, capsys):
    if importlib.util.find_spec("tensorrt"):
        pytest.skip("TensorRT is installed here")
    code, _, err = run_cli(capsys, "build", tiny_bundle)
    assert_one_line_error(code, err, "TensorRT is not installed", "JetPack", "edgeseg[tensorrt]")


def test_build_a_precision_the_bundle_lacks(tiny_bundle, capsys):
    code, _, err = run_cli(capsys, "build", tiny_bundle, "--precision", "int8")
    assert_one_line_error(code, err, "no int8 onnx artifact", "edgeseg calibrate")


def test_run_with_tensorrt_backend_missing(tiny_bundle, capsys):
    if importlib.util.find_spec("tensorrt"):
        pytest.skip("TensorRT is installed here")
    code, _, err = run_cli(
        capsys, "run", tiny_bundle, "-i", "synthetic://driving?frames=2&size=64x64", "--backend", "tensorrt"
    )
    assert_one_line_error(code, err, "TensorRT or pycuda is not installed", "edgeseg[tensorrt]")


def test_doctor_reports_this_machine(capsys):
    code, stdout, _ = run_cli(capsys, "doctor")
    assert code == 0
    for field in ("python", "onnxruntime", "tensorrt", "pycuda", "gpu", "cameras"):
        assert any(line.startswith(field) for line in stdout.splitlines()), field


# -- real hardware ---------------------------------------------------------------------------------
needs_gpu = pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is None or importlib.util.find_spec("pycuda") is None,
    reason="needs TensorRT and pycuda on an NVIDIA GPU; run `edgeseg doctor --gpu-check BUNDLE` on the device",
)


@needs_gpu
def test_real_engine_matches_onnxruntime(calibrated_copy, capsys):
    from edgeseg.engines import BuildOptions as Options
    from edgeseg.runtime.backends import open_backend
    from edgeseg.runtime.tensors import frames_to_input

    bundle = build(calibrated_copy, Options(precisions=("fp32",), progress=False))
    frame = np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)
    batch = frames_to_input([frame], bundle.input)
    with open_backend(bundle, "tensorrt", "fp32") as engine, open_backend(bundle, "onnxruntime", "fp32") as reference:
        assert (engine.infer(batch) == reference.infer(batch)).mean() >= 0.999
