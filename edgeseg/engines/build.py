"""Build TensorRT engines from a bundle's ONNX artifacts, on the machine that will run them.

Precision lives in the ONNX (calibrate); what differs between TensorRT versions is in compat.
"""

from __future__ import annotations

import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgeseg.bundle import Artifact, Bundle, utc_now, writing
from edgeseg.engines.compat import (
    BuildProgress,
    GpuInfo,
    create_builder,
    current_gpu,
    import_tensorrt,
    network_flags,
    parser_error_lines,
    precision_flags,
    trt_version,
)
from edgeseg.errors import EdgesegError
from edgeseg.fileio import atomic_path, sha256_file
from edgeseg.progress import Progress


@dataclass
class BuildOptions:
    precisions: tuple[str, ...] = ("fp32", "fp16", "int8")
    workspace_mib: int | None = None
    optimization_level: int | None = None  # 0-5, TensorRT 8.6+
    batch: tuple[int, int, int] | None = None  # min, opt, max for a dynamic-batch graph
    dla_core: int | None = None
    timing_cache: str | None = None
    progress: bool = True


def engine_name(artifact: Artifact, trt: Any, gpu: GpuInfo, dla_core: int | None = None) -> str:
    """One file per source, TensorRT, GPU and device: a DLA engine never replaces the GPU one."""
    slug = re.sub(r"[^a-z0-9]+", "-", gpu.name.lower()).strip("-")
    sm = gpu.compute_capability.replace(".", "")
    device = "" if dla_core is None else f".dla{dla_core}"
    return f"engines/{Path(artifact.path).stem}.trt{trt.__version__}.sm{sm}.{slug}{device}.engine"


def build_plan(onnx_path: Path, precision: str, options: BuildOptions, trt: Any, bar: Progress) -> bytes:
    """A serialized engine for the ONNX file at onnx_path, whose layers are at `precision`."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = create_builder(trt, logger)
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):  # from the file, so external weights resolve
        errors = parser_error_lines(parser, onnx_path)
        raise EdgesegError(
            f"TensorRT {trt.__version__} cannot parse {onnx_path.name}: {errors[0] if errors else 'unknown error'}"
        )
    config = builder.create_builder_config()
    if options.workspace_mib:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
    if options.optimization_level is not None:
        if not hasattr(config, "builder_optimization_level"):
            raise EdgesegError(f"--optimization-level needs TensorRT 8.6 or newer; this is {trt.__version__}")
        config.builder_optimization_level = options.optimization_level
    for flag in precision_flags(trt, precision):
        config.set_flag(flag)
    add_profile(builder, network, config, options)
    if options.dla_core is not None:
        use_dla(builder, config, trt, options.dla_core)
    cache = load_timing_cache(config, options.timing_cache, trt)
    if hasattr(trt, "IProgressMonitor"):
        config.progress_monitor = BuildProgress.make(trt, bar)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EdgesegError(
            f"TensorRT {trt.__version__} failed to build {onnx_path.name} (its log above says why); try --workspace "
            "with more MiB"
        )
    if cache is not None:
        save_timing_cache(config, options.timing_cache)
    return bytes(plan)


def build_engine(
    bundle: Bundle, source: Artifact, options: BuildOptions, trt: Any, gpu: GpuInfo, bar: Progress
) -> Artifact:
    plan = build_plan(bundle.artifact_path(source), source.precision, options, trt, bar)
    relative = engine_name(source, trt, gpu, options.dla_core)
    target = bundle.root / relative
    with atomic_path(target) as temp:
        temp.write_bytes(plan)
    build_options = {k: v for k, v in asdict(options).items() if k not in ("precisions", "progress")}
    return Artifact(
        path=relative,
        kind="engine",
        precision=source.precision,
        target="tensorrt",
        sha256=sha256_file(target),
        size=target.stat().st_size,
        tools={"tensorrt": trt.__version__},
        created=utc_now(),
        extra={
            "gpu": gpu.name,
            "compute_capability": gpu.compute_capability,
            "source": source.path,
            "source_sha256": source.sha256,
            "dla_core": options.dla_core,  # the runtime sets it on its TensorRT Runtime; None means the GPU
            "build_options": build_options,
            "strongly_typed": trt_version(trt)[0] >= 10,
        },
    )


def graph_precision_and_batch(onnx_path: Path) -> tuple[str, int]:
    """What the graph holds: int8 with QuantizeLinear nodes, fp16 with float16 weights, else fp32; and its input's
    batch (1 where the batch is dynamic: the profile's default)."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    if any(node.op_type == "QuantizeLinear" for node in model.graph.node):
        precision = "int8"
    elif any(tensor.data_type == onnx.TensorProto.FLOAT16 for tensor in model.graph.initializer):
        precision = "fp16"
    else:
        precision = "fp32"
    return precision, model.graph.input[0].type.tensor_type.shape.dim[0].dim_value or 1


def nvinfer_engine_path(onnx_path: Path, batch: int, precision: str, dla_core: int | None = None) -> Path:
    """Where DeepStream's nvinfer looks for the engine of onnx-file: FILE_b{batch}_{gpu0|dla0}_{precision}.engine
    beside it (the name nvinfer gives the engines it builds)."""
    device = "gpu0" if dla_core is None else f"dla{dla_core}"
    return onnx_path.with_name(f"{onnx_path.name}_b{batch}_{device}_{precision}.engine")


def build_onnx_file(onnx_path: Path, options: BuildOptions, trt: Any = None) -> Path:
    """An engine for one ONNX file outside a bundle (deploy's DeepStream graphs), at the precision its layers
    hold, written where nvinfer looks for it (nvinfer_engine_path)."""
    precision, fixed_batch = graph_precision_and_batch(onnx_path)
    check_dla_precisions((precision,), options.dla_core)
    asked = set(options.precisions)
    if asked and asked != {precision}:
        raise EdgesegError(
            f"{onnx_path.name} holds {precision} layers; an ONNX file builds at its own precision (leave out "
            "--precision, or build the bundle for another)"
        )
    trt = trt or import_tensorrt()
    bar = Progress(1, "build", enabled=options.progress)
    plan = build_plan(onnx_path, precision, options, trt, bar)
    batch = options.batch[2] if options.batch else fixed_batch
    target = nvinfer_engine_path(onnx_path, batch, precision, options.dla_core)
    with atomic_path(target) as temp:
        temp.write_bytes(plan)
    bar.advance(target.name)
    return target


def add_profile(builder: Any, network: Any, config: Any, options: BuildOptions) -> None:
    """An optimisation profile for each input with a dynamic dimension (the batch): min, opt, max."""
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    dynamic = [tensor for tensor in inputs if -1 in tuple(tensor.shape)]
    if not dynamic:
        if options.batch:
            raise EdgesegError(
                "--batch min,opt,max needs a graph exported with --dynamic-batch; this one has a fixed batch"
            )
        return
    low, optimum, high = options.batch or (1, 1, 1)
    profile = builder.create_optimization_profile()
    for tensor in dynamic:
        rest = tuple(tensor.shape)[1:]
        if -1 in rest:
            raise EdgesegError(
                f"input {tensor.name} has a dynamic height or width; build needs fixed spatial dims (export without "
                "--dynamic-size)"
            )
        profile.set_shape(tensor.name, (low, *rest), (optimum, *rest), (high, *rest))
    config.add_optimization_profile(profile)


def use_dla(builder: Any, config: Any, trt: Any, core: int) -> None:
    check_dla_version(trt)
    available = getattr(builder, "num_DLA_cores", 0)
    if available == 0:
        raise EdgesegError(
            "--dla: this machine has no DLA cores (Jetson AGX Orin, Orin NX and Xavier have them; Orin Nano and Thor "
            "do not)"
        )
    if not 0 <= core < available:
        raise EdgesegError(f"--dla {core}: this machine has DLA cores 0..{available - 1}")
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = core
    config.set_flag(trt.BuilderFlag.GPU_FALLBACK)  # layers the DLA cannot run go to the GPU


def check_dla_version(trt: Any) -> None:
    """NVIDIA's notes: TensorRT 11.0 to 11.4.0 do not support the DLA; 11.4.1 does on AGX Orin with JetPack 7.2.2+."""
    numbers = tuple(int(v) for v in re.findall(r"\d+", trt.__version__)[:3])
    if (11, 0, 0) <= numbers[:3] < (11, 4, 1):
        raise EdgesegError(
            f"--dla: TensorRT {trt.__version__} does not support the DLA (11.0 to 11.4.0 do not; 11.4.1 does on AGX "
            "Orin with JetPack 7.2.2+); build for the DLA with JetPack 6's TensorRT 10.3, or leave out --dla"
        )


def check_dla_precisions(precisions: tuple[str, ...], core: int | None) -> None:
    """The DLA runs FP16 and INT8 only: an FP32 engine would put every layer back on the GPU. Its INT8 comes from
    calibration scales (implicit quantization), not from a Q/DQ graph (NVIDIA/TensorRT#2222; the DLA team's
    qdq-translator turns Q/DQ graphs into a calibration cache for it)."""
    if core is not None and "fp32" in precisions:
        raise EdgesegError(
            f"--dla {core} with fp32: the DLA runs FP16 and INT8 layers only, so every layer would fall back to the "
            "GPU; build with --precision fp16 or int8 (edgeseg calibrate makes them)"
        )
    if core is not None and "int8" in precisions:
        raise EdgesegError(
            f"--dla {core} with int8: TensorRT's DLA takes INT8 from calibration scales, not from a Q/DQ graph "
            "(explicit quantization), so its layers would leave the DLA; build --precision fp16 for the DLA, or "
            "deploy --target deepstream --precision int8 and set enable-dla=1 in its nvinfer config (nvinfer builds "
            "the DLA engine from the FP32 graph and the calibration cache)"
        )


def load_timing_cache(config: Any, path: str | None, trt: Any) -> Any:
    """The timing cache for this build: the file's when TensorRT takes it, else a fresh one that replaces it."""
    if not path:
        return None
    data = Path(path).read_bytes() if Path(path).is_file() else b""
    cache = None
    if data:
        try:
            cache = config.create_timing_cache(data)
        except Exception as exc:  # TensorRT rejects a damaged blob; the exception type differs between versions
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            warn(f"timing cache {path} is damaged ({reason}); building without it and writing a fresh one")
        # False: made by another TensorRT or GPU. ignore_mismatch=True would risk tactics timed on other hardware.
        if cache is not None and not config.set_timing_cache(cache, ignore_mismatch=False):
            warn(f"timing cache {path} was made by another TensorRT version or GPU (TensorRT {trt.__version__} "
                 "here); building without it and writing a fresh one")  # fmt: skip
            cache = None
    if cache is None:
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
    return cache


def save_timing_cache(config: Any, path: str) -> None:
    cache = config.get_timing_cache()
    if cache is None:
        warn(f"TensorRT returned no timing cache after the build; {path} was left as it was")
        return
    with atomic_path(Path(path)) as temp:
        temp.write_bytes(bytes(cache.serialize()))


def warn(line: str) -> None:
    print(f"edgeseg build: {line}", file=sys.stderr)


def sources_to_build(bundle: Bundle, precisions: tuple[str, ...]) -> list[Artifact]:
    """The ONNX artifact per precision: the TensorRT-shaped Q/DQ graph for INT8, the generic ones otherwise."""
    chosen = []
    for precision in precisions:
        chosen.append(bundle.select("onnx", precision, targets=("tensorrt", "any")))
    return chosen


def build(bundle_dir: Path, options: BuildOptions, trt: Any = None, gpu: GpuInfo | None = None) -> Bundle:
    """Build an engine per asked precision; the manifest lists them once all are written."""
    with writing(Path(bundle_dir), "build"):
        return _build_locked(Path(bundle_dir), options, trt, gpu)


def _build_locked(bundle_dir: Path, options: BuildOptions, trt: Any, gpu: GpuInfo | None) -> Bundle:
    bundle = Bundle.load(bundle_dir)
    check_dla_precisions(options.precisions, options.dla_core)
    sources = sources_to_build(bundle, options.precisions)
    trt = trt or import_tensorrt()
    gpu = gpu or current_gpu()
    bar = Progress(len(sources), "build", enabled=options.progress)
    engines = []
    for source in sources:
        engines.append(build_engine(bundle, source, options, trt, gpu, bar))
        bar.advance(f"{engines[-1].path}")
    for engine in engines:
        bundle.add_artifact(engine)
    bundle.save()
    return bundle
