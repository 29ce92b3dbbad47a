"""The TensorRT builder and backend against a recording test double (TensorRT cannot be installed here).

These tests check edgeseg's own logic: which calls each TensorRT version gets, the metadata it
keeps, the refusals it makes. They make no claim about what a real TensorRT builds; the tests at
the bottom that need a real TensorRT and GPU skip with the reason.
"""

from __future__ import annotations

import ctypes
import importlib.util
import shutil

import numpy as np
import pytest
from conftest import TINY, assert_one_line_error, run_cli
from tensorrt_double import PLAN_MARKER, HostMemoryCuda, RecordingTensorRT

from edgeseg.bundle import Bundle
from edgeseg.engines import BuildOptions, GpuInfo, build, check_engine
from edgeseg.errors import EdgesegError

ORIN = GpuInfo("Orin", "8.7")


@pytest.fixture(scope="module")
def calibrated(tiny_bundle, tmp_path_factory):
    """The tiny bundle calibrated once for the module (fp32, fp16 and int8 variants)."""
    from edgeseg.cli import main

    bundle = tmp_path_factory.mktemp("calibrated") / "b"
    shutil.copytree(tiny_bundle, bundle)
    data = "synthetic://driving?seed=1&frames=20&size=64x64"
    argv = ["calibrate", str(bundle), "--data", data, "--count", "8", "--eval-count", "4", "--method", "minmax"]
    assert main(argv) == 0
    return bundle


@pytest.fixture()
def calibrated_copy(calibrated, tmp_path):
    """A private copy of the calibrated bundle: the builds write engines and manifest entries into it."""
    bundle = tmp_path / "b"
    shutil.copytree(calibrated, bundle)
    return bundle


def build_with(bundle, version, **options):
    """Build with the double; options that BuildOptions does not know set the double's behaviour."""
    known = set(BuildOptions.__dataclass_fields__)
    trt = RecordingTensorRT(version, **{k: options.pop(k) for k in list(options) if k not in known})
    result = build(bundle, BuildOptions(progress=False, **options), trt=trt, gpu=ORIN)
    return trt, result


def calls(trt, name):
    return [c for c in trt.calls if c[0] == name]


def test_tensorrt_8_is_explicit_batch_and_weakly_typed_with_flags(calibrated_copy):
    trt, _ = build_with(calibrated_copy, "8.5.2.2", precisions=("fp32", "fp16", "int8"))
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
    trt, _ = build_with(calibrated_copy, "11.4.0.106", precisions=("fp32", "int8"))
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
    assert (calibrated_copy / engine.path).read_bytes().startswith(PLAN_MARKER)
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
        build_with(calibrated_copy, "8.5.2.2", precisions=("fp32",), optimization_level=2)


def test_dynamic_batch_gets_a_profile(tmp_path, capsys):
    bundle = tmp_path / "dyn"
    assert (
        run_cli(
            capsys,
            "export",
            "lraspp",
            "-o",
            bundle,
            *TINY,
            "--dynamic-batch",
        )[0]
        == 0
    )
    trt, _ = build_with(bundle, "10.3.0", precisions=("fp32",), batch=(1, 2, 4))
    assert calls(trt, "set_shape") == [("set_shape", "frame", (1, 64, 64, 3), (2, 64, 64, 3), (4, 64, 64, 3))]


def test_dla_core_with_gpu_fallback(calibrated_copy):
    trt, _ = build_with(calibrated_copy, "8.5.2.2", precisions=("fp16",), dla_core=1, dla_cores=2)
    assert ("config.default_device_type", "DLA") in trt.calls and ("config.DLA_core", 1) in trt.calls
    assert ("set_flag", "GPU_FALLBACK") in trt.calls


def test_dla_on_a_machine_without_dla(calibrated_copy):
    with pytest.raises(EdgesegError, match="no DLA cores"):
        build_with(calibrated_copy, "10.3.0", precisions=("fp16",), dla_core=0, dla_cores=0)
    assert not (calibrated_copy / "engines").exists() or not list((calibrated_copy / "engines").iterdir())


@pytest.mark.parametrize(
    "version,expected", [("10.3.0", "node /model/Resize (Resize)"), ("8.5.2.2", "node /Cast (Cast)")]
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
        check_engine(engine, RecordingTensorRT("10.13.3.9"), GpuInfo("NVIDIA H100", "9.0"), bundle)
    message = str(info.value)
    assert "TensorRT 10.3.0 (here 10.13.3.9)" in message and "GPU Orin sm8.7 (here NVIDIA H100 sm9.0)" in message
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


def test_an_onnx_file_builds_where_deepstreams_nvinfer_looks_for_its_engine(calibrated_copy, tmp_path):
    """`edgeseg build FILE.onnx` (deploy's DeepStream graphs): the precision is the graph's own, the engine goes
    beside the file as FILE_b{batch}_gpu0_{precision}.engine, the name nvinfer's model-engine-file gives it."""
    from edgeseg.engines import build_onnx_file

    for source, precision in (("model.int8-tensorrt.onnx", "int8"), ("model.onnx", "fp32")):
        onnx_file = tmp_path / source
        shutil.copy(calibrated_copy / source, onnx_file)
        trt = RecordingTensorRT("8.5.2.2")
        engine = build_onnx_file(onnx_file, BuildOptions(precisions=(), progress=False), trt=trt)
        assert engine == tmp_path / f"{source}_b1_gpu0_{precision}.engine"
        assert engine.read_bytes().startswith(PLAN_MARKER)
        assert calls(trt, "parse_from_file") == [("parse_from_file", str(onnx_file))]
        assert [c[1] for c in calls(trt, "set_flag")] == (["INT8", "FP16"] if precision == "int8" else [])
    with pytest.raises(EdgesegError, match="holds int8 layers; an ONNX file builds at its own precision"):
        build_onnx_file(tmp_path / "model.int8-tensorrt.onnx", BuildOptions(precisions=("fp16",), progress=False),
                        trt=RecordingTensorRT("8.5.2.2"))  # fmt: skip


def test_an_onnx_file_with_a_dynamic_batch_gets_its_profile_and_the_batch_in_its_name(tmp_path, capsys):
    from edgeseg.engines import build_onnx_file

    bundle = tmp_path / "dyn"
    assert run_cli(capsys, "export", "lraspp", "-o", bundle, *TINY, "--dynamic-batch")[0] == 0
    trt = RecordingTensorRT("10.3.0")
    engine = build_onnx_file(bundle / "model.onnx", BuildOptions(precisions=(), batch=(1, 4, 4), progress=False),
                             trt=trt)  # fmt: skip
    assert engine.name == "model.onnx_b4_gpu0_fp32.engine"
    assert calls(trt, "set_shape") == [("set_shape", "frame", (1, 64, 64, 3), (4, 64, 64, 3), (4, 64, 64, 3))]


# -- missing pieces and bad input through the CLI ---------------------------------------------------
def test_build_of_an_onnx_file_that_is_not_there(tmp_path, capsys):
    code, _, err = run_cli(capsys, "build", tmp_path / "nowhere.onnx")
    assert_one_line_error(code, err, "nowhere.onnx: no such ONNX file", "bundle directory or an .onnx file")


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
    assert_one_line_error(code, err, "--backend tensorrt: TensorRT is not installed", "edgeseg[tensorrt]")


def test_doctor_reports_this_machine(capsys):
    code, stdout, _ = run_cli(capsys, "doctor")
    assert code == 0
    for field in ("python", "onnxruntime", "tensorrt", "cuda binding", "gpu", "cuda driver", "cameras"):
        assert any(line.startswith(field) for line in stdout.splitlines()), field


# -- real hardware ---------------------------------------------------------------------------------
def gpu_problem() -> str | None:
    from edgeseg.engines import current_gpu
    from edgeseg.runtime.backends import tensorrt_problem

    try:
        current_gpu()
    except EdgesegError as exc:
        return str(exc)
    return tensorrt_problem()


needs_gpu = pytest.mark.skipif(
    gpu_problem() is not None,
    reason="needs TensorRT and a CUDA binding on an NVIDIA GPU; run `edgeseg doctor --gpu-check BUNDLE` there",
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


# -- what the real bindings showed (issue 15): each of these failed before its fix -------------------------
def open_engine(bundle_dir, engine, trt, cuda=None):
    from edgeseg.runtime.backends.tensorrt import TensorRTBackend

    backend = TensorRTBackend(Bundle.load(bundle_dir), engine, trt=trt, cuda=cuda or HostMemoryCuda())
    return backend.open()


def test_a_null_builder_or_runtime_is_one_line_not_a_type_error(calibrated_copy):
    """TensorRT returns NULL when CUDA does not initialise; the bindings then raise TypeError(... nullptr)."""
    with pytest.raises(EdgesegError, match="could not create its Builder: CUDA did not initialise.*driver"):
        build_with(calibrated_copy, "10.3.0", precisions=("fp32",), null_factories=True)
    trt, bundle = build_with(calibrated_copy, "10.3.0", precisions=("fp32",))
    engine = next(a for a in bundle.artifacts if a.kind == "engine")
    cuda = HostMemoryCuda()
    with pytest.raises(EdgesegError, match="could not create its Runtime"):
        open_engine(calibrated_copy, engine, RecordingTensorRT("10.3.0", null_factories=True), cuda)
    assert cuda.current == []  # the failed open released the device it had made current


def test_dla_engines_have_their_own_name_and_run_on_their_core(calibrated_copy):
    _, bundle = build_with(calibrated_copy, "10.3.0", precisions=("fp16",))
    _, bundle = build_with(calibrated_copy, "10.3.0", precisions=("fp16",), dla_core=1, dla_cores=2)
    engines = [a for a in bundle.artifacts if a.kind == "engine"]
    assert sorted(a.extra["dla_core"] is None for a in engines) == [False, True]  # both kept, not replaced
    dla = next(a for a in engines if a.extra["dla_core"] == 1)
    assert dla.path.endswith(".dla1.engine") and len({a.path for a in engines}) == 2
    trt = RecordingTensorRT("10.3.0")
    backend = open_engine(calibrated_copy, dla, trt)
    backend.infer(np.zeros((1, 64, 64, 3), np.uint8))
    backend.close()
    assert ("runtime.DLA_core", 1) in trt.calls  # without it, TensorRT runs a DLA engine on core 0


def test_dla_refuses_fp32_and_tensorrt_11_before_11_4_1(calibrated_copy, capsys):
    with pytest.raises(EdgesegError, match="DLA runs FP16 and INT8 layers only"):
        build_with(calibrated_copy, "8.6.1", precisions=("fp32",), dla_core=0, dla_cores=2)
    for version in ("11.0.0.1", "11.4.0.106"):
        with pytest.raises(EdgesegError, match=f"TensorRT {version} does not support the DLA"):
            build_with(calibrated_copy, version, precisions=("fp16",), dla_core=0, dla_cores=2)
    build_with(calibrated_copy, "11.4.1.5", precisions=("fp16",), dla_core=0, dla_cores=2)  # 11.4.1 has it again
    code, _, err = run_cli(capsys, "build", calibrated_copy, "--precision", "fp32,int8", "--dla", "0")
    assert_one_line_error(code, err, "--dla 0 with fp32", "--precision fp16 or int8")


def test_run_picks_the_gpu_or_the_dla_engine(calibrated_copy, monkeypatch):
    from edgeseg.runtime.backends import factory

    monkeypatch.setattr(factory, "tensorrt_problem", lambda: None)
    monkeypatch.setattr("edgeseg.engines.compat.import_tensorrt", lambda: RecordingTensorRT("10.3.0"))
    build_with(calibrated_copy, "10.3.0", precisions=("fp16",), dla_core=0, dla_cores=2)
    bundle = Bundle.load(calibrated_copy)
    assert ".dla0." in factory.open_backend(bundle, "tensorrt", "fp16", dla_core=0).artifact.path
    with pytest.raises(EdgesegError, match="no engine for the GPU.*edgeseg build"):
        factory.open_backend(bundle, "tensorrt", "fp16")
    with pytest.raises(EdgesegError, match="no engine for DLA core 1.*--dla 1"):
        factory.open_backend(bundle, "tensorrt", "fp16", dla_core=1)
    build_with(calibrated_copy, "10.3.0", precisions=("fp16",))
    bundle = Bundle.load(calibrated_copy)
    assert ".dla" not in factory.open_backend(bundle, "tensorrt", "fp16").artifact.path
    with pytest.raises(EdgesegError, match="--dla 0 runs a TensorRT engine"):
        factory.open_backend(bundle, "onnxruntime", "fp16", dla_core=0)


@pytest.mark.parametrize(
    "behaviour,said",
    [
        ({"cache_accepted": False}, "made by another TensorRT version or GPU"),
        ({"damaged_cache": True}, "is damaged (Error Code 1: Serialization"),
    ],
)
def test_a_timing_cache_tensorrt_will_not_take_is_replaced(calibrated_copy, tmp_path, capsys, behaviour, said):
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"a cache from elsewhere")
    trt, _ = build_with(calibrated_copy, "10.3.0", precisions=("fp32",), timing_cache=str(cache), **behaviour)
    err = capsys.readouterr().err
    assert said in err and "building without it" in err and err.count("\n") == 1
    assert calls(trt, "create_timing_cache")[-1] == ("create_timing_cache", b"")  # a fresh one for this build
    assert cache.read_bytes() == b"+updated"  # the fresh cache replaced the one TensorRT refused


def test_no_timing_cache_after_the_build_leaves_the_file(calibrated_copy, tmp_path, capsys):
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"kept")
    build_with(calibrated_copy, "10.3.0", precisions=("fp32",), timing_cache=str(cache), no_timing_cache=True)
    assert "returned no timing cache" in capsys.readouterr().err and cache.read_bytes() == b"kept"


def test_a_refused_input_shape_is_one_line_naming_shape_and_profile(tmp_path, capsys):
    bundle = tmp_path / "dyn"
    assert run_cli(capsys, "export", "lraspp", "-o", bundle, *TINY,
                   "--dynamic-batch")[0] == 0  # fmt: skip
    build_with(bundle, "10.3.0", precisions=("fp32",), batch=(1, 2, 4))
    engine = next(a for a in Bundle.load(bundle).artifacts if a.kind == "engine")
    backend = open_engine(bundle, engine, RecordingTensorRT("10.3.0", input_shape_accepted=False))
    with pytest.raises(EdgesegError, match=r"refused input shape \(2, 64, 64, 3\) for frame \(profile 0 allows "
                       r"batch 1..4\)"):  # fmt: skip
        backend.infer(np.zeros((2, 64, 64, 3), np.uint8))
    backend.close()


def test_the_backend_runs_and_releases_through_the_cuda_interface(calibrated_copy):
    """HostMemoryCuda is a TEST DOUBLE for the GPU: this checks edgeseg's sequence (buffers, copies, release)."""
    _, bundle = build_with(calibrated_copy, "10.3.0", precisions=("int8",))
    engine = next(a for a in bundle.artifacts if a.kind == "engine")
    cuda, trt = HostMemoryCuda(), RecordingTensorRT("10.3.0")
    backend = open_engine(calibrated_copy, engine, trt, cuda)
    assert cuda.current == ["Orin"]
    out = backend.infer(np.full((1, 64, 64, 3), 7, np.uint8))
    assert out.shape == (1, 64, 64) and out.dtype == np.uint8
    assert ("execute_async_v3", cuda.stream_handle(backend.stream)) in trt.calls
    backend.close()
    assert cuda.current == [] and cuda.live_buffers == 0


# -- zero-copy on an integrated GPU (issue 30): the backend through CudaPython over RecordingCudart -----------------
def run_with_cudart(bundle_dir, engine, integrated: bool, frames: int = 2):
    """Open the engine on CudaPython over RecordingCudart (a TEST DOUBLE of cuda-python's runtime module, checked
    against the real bindings in tests/test_cuda.py) and run `frames` frames. The TensorRT double's stand-in for
    the engine's kernels is queued on the stream: it reads the input where the engine's input is bound and writes
    channel 0 + 1 where its output is bound, so what comes back shows what crossed and when."""
    from tensorrt_double import RecordingCudart

    from edgeseg.engines.cuda import CudaPython

    cudart = RecordingCudart(integrated=integrated)
    backend = None

    def kernels(addresses, stream):
        def run():
            frame_host = backend.buffers[backend.input_names[0]][0]
            frame = np.ctypeslib.as_array(
                (ctypes.c_uint8 * frame_host.nbytes).from_address(addresses[backend.input_names[0]])
            ).reshape(frame_host.shape)
            out_host = backend.buffers[backend.output_names[0]][0]
            out = np.ctypeslib.as_array(
                (ctypes.c_uint8 * out_host.nbytes).from_address(addresses[backend.output_names[0]])
            ).reshape(out_host.shape)
            out[:] = frame[..., 0] + 1

        cudart.enqueue(stream, run)

    trt = RecordingTensorRT("10.3.0", on_execute=kernels)
    backend = open_engine(bundle_dir, engine, trt, CudaPython(cudart))
    frames_in = [np.full((1, 64, 64, 3), 10 * (i + 1), np.uint8) for i in range(frames)]
    answers = [backend.infer(frame) for frame in frames_in]
    return backend, trt, cudart, frames_in, answers


def test_an_integrated_gpu_binds_mapped_memory_and_copies_nothing(calibrated_copy):
    _, bundle = build_with(calibrated_copy, "10.3.0", precisions=("int8",))
    engine = next(a for a in bundle.artifacts if a.kind == "engine")
    backend, trt, cudart, frames_in, answers = run_with_cudart(calibrated_copy, engine, integrated=True)
    assert backend.zero_copy and "mapped zero-copy" in backend.describe()
    for frame, answer in zip(frames_in, answers):  # read after the stream's sync: the "kernels" ran first
        assert answer.shape == (1, 64, 64) and (answer == frame[0, 0, 0, 0] + 1).all()
    assert cudart.called("cudaMemcpyAsync") == [] and cudart.called("cudaMalloc") == []
    assert cudart.called("cudaMallocHost") == []
    names = backend.input_names + backend.output_names
    allocations = cudart.called("cudaHostAlloc")
    assert len(allocations) == len(names) and all(flags == cudart.cudaHostAllocMapped for _, _, flags in allocations)
    hosts = [backend.buffers[name][0].ctypes.data for name in names]
    assert [c[1:] for c in cudart.called("cudaHostGetDevicePointer")] == [(host, 0) for host in hosts]
    # TensorRT is bound to the device pointers cudaHostGetDevicePointer gave, not to the host addresses
    assert [trt.addresses[name] for name in names] == [cudart.device_of[host] for host in hosts]
    assert not set(trt.addresses.values()) & set(hosts)
    assert len(cudart.called("cudaStreamSynchronize")) == len(frames_in)
    backend.close()
    assert sorted(c[1] for c in cudart.called("cudaFreeHost")) == sorted(hosts) and not cudart.live


def test_a_discrete_gpu_copies_in_and_out_of_device_buffers(calibrated_copy):
    _, bundle = build_with(calibrated_copy, "10.3.0", precisions=("int8",))
    engine = next(a for a in bundle.artifacts if a.kind == "engine")
    backend, trt, cudart, frames_in, answers = run_with_cudart(calibrated_copy, engine, integrated=False)
    assert not backend.zero_copy and "zero-copy" not in backend.describe()
    for frame, answer in zip(frames_in, answers):
        assert (answer == frame[0, 0, 0, 0] + 1).all()
    assert cudart.called("cudaHostAlloc") == [] and cudart.called("cudaHostGetDevicePointer") == []
    kinds = [c[4].name for c in cudart.called("cudaMemcpyAsync")]
    assert kinds == ["cudaMemcpyHostToDevice", "cudaMemcpyDeviceToHost"] * len(frames_in)  # one in, one out a frame
    devices = [c for c in cudart.calls if c[0] == "cudaMalloc"]
    assert len(devices) == len(backend.input_names + backend.output_names) == len(cudart.called("cudaMallocHost"))
    backend.close()
    assert not cudart.live


def test_the_host_memory_double_takes_the_mapped_path_when_integrated(calibrated_copy):
    _, bundle = build_with(calibrated_copy, "10.3.0", precisions=("int8",))
    engine = next(a for a in bundle.artifacts if a.kind == "engine")
    for integrated, copies in ((True, 0), (False, 2)):
        cuda = HostMemoryCuda(integrated=integrated)
        backend = open_engine(calibrated_copy, engine, RecordingTensorRT("10.3.0"), cuda)
        backend.infer(np.zeros((1, 64, 64, 3), np.uint8))
        assert cuda.copies == copies and backend.zero_copy == integrated
        backend.close()
        assert cuda.live_buffers == 0 and cuda.current == []
