"""Build TensorRT engines from a bundle's ONNX artifacts, on the machine that will run them.

Precision lives in the ONNX (calibrate); what differs between TensorRT versions is in compat.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgeseg.bundle import Artifact, Bundle, utc_now, writing
from edgeseg.engines.compat import (
    BuildProgress,
    GpuInfo,
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


def engine_name(artifact: Artifact, trt: Any, gpu: GpuInfo) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", gpu.name.lower()).strip("-")
    sm = gpu.compute_capability.replace(".", "")
    return f"engines/{Path(artifact.path).stem}.trt{trt.__version__}.sm{sm}.{slug}.engine"


def build_engine(
    bundle: Bundle, source: Artifact, options: BuildOptions, trt: Any, gpu: GpuInfo, bar: Progress
) -> Artifact:
    onnx_path = bundle.artifact_path(source)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):  # from the file, so external weights resolve
        errors = parser_error_lines(parser, onnx_path)
        raise EdgesegError(
            f"TensorRT {trt.__version__} cannot parse {source.path}: {errors[0] if errors else 'unknown error'}"
        )
    config = builder.create_builder_config()
    if options.workspace_mib:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
    if options.optimization_level is not None:
        if not hasattr(config, "builder_optimization_level"):
            raise EdgesegError(f"--optimization-level needs TensorRT 8.6 or newer; this is {trt.__version__}")
        config.builder_optimization_level = options.optimization_level
    for flag in precision_flags(trt, source.precision):
        config.set_flag(flag)
    add_profile(builder, network, config, options)
    if options.dla_core is not None:
        use_dla(builder, config, trt, options.dla_core)
    cache = load_timing_cache(config, options.timing_cache)
    if hasattr(trt, "IProgressMonitor"):
        config.progress_monitor = BuildProgress.make(trt, bar)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EdgesegError(
            f"TensorRT {trt.__version__} failed to build {source.path} (its log above says why); try --workspace "
            "with more MiB"
        )
    if cache is not None:
        save_timing_cache(config, options.timing_cache)
    relative = engine_name(source, trt, gpu)
    target = bundle.root / relative
    with atomic_path(target) as temp:
        temp.write_bytes(bytes(plan))
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
            "build_options": build_options,
            "strongly_typed": trt_version(trt)[0] >= 10,
        },
    )


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


def load_timing_cache(config: Any, path: str | None) -> Any:
    if not path:
        return None
    data = Path(path).read_bytes() if Path(path).is_file() else b""
    cache = config.create_timing_cache(data)
    config.set_timing_cache(cache, ignore_mismatch=False)
    return cache


def save_timing_cache(config: Any, path: str) -> None:
    with atomic_path(Path(path)) as temp:
        temp.write_bytes(bytes(config.get_timing_cache().serialize()))


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
