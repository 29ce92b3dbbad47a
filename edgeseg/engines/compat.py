"""What differs between the TensorRT versions edgeseg builds for and runs on: 8.5 (JetPack 5) to 11.x.

Precision lives in the ONNX (calibrate), so the builder only branches on what the installed
TensorRT offers:
  8.5 / 8.6   explicit-batch network (EXPLICIT_BATCH flag), weakly typed: FP16/INT8 builder flags
              set from the artifact's precision (INT8 only for a Q/DQ graph, never a calibrator);
  10.x        strongly typed network (STRONGLY_TYPED flag): types come from the ONNX, no flags;
  11.x        always strongly typed; EXPLICIT_BATCH and the BuilderFlag FP16/INT8 no longer exist.
Other per-version facts used here: IProgressMonitor and ParserError.node_name() exist from 10.0;
an engine deserialises only on the TensorRT version and GPU (compute capability) that built it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from edgeseg.bundle import Artifact, Bundle
from edgeseg.engines.cuda import GpuInfo, open_cuda
from edgeseg.errors import TENSORRT_INSTALL_HINT, EdgesegError
from edgeseg.progress import Progress


def import_tensorrt() -> Any:
    """The tensorrt module, or one line saying what is wrong: not installed, or bindings without their libraries."""
    try:
        import tensorrt
    except ImportError as exc:
        raise EdgesegError(tensorrt_import_problem(exc)) from None
    return tensorrt


def tensorrt_import_problem(exc: ImportError) -> str:
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] in ("tensorrt", "tensorrt_bindings"):
        return f"TensorRT is not installed here: {TENSORRT_INSTALL_HINT}"
    # The bindings are there but a native library they link (libnvinfer, libnvonnxparser...) is not loadable.
    return (
        f"TensorRT's Python bindings are installed but cannot load its native libraries ({exc}); install the "
        "TensorRT libraries of the same version (JetPack's libnvinfer packages, or NVIDIA's tensorrt-libs wheel) or "
        "put their folder on LD_LIBRARY_PATH"
    )


def trt_version(trt: Any) -> tuple[int, int]:
    major, minor = (int(v) for v in re.findall(r"\d+", trt.__version__)[:2])
    return major, minor


def current_gpu() -> GpuInfo:
    """The GPU CUDA sees first, through the CUDA binding the runtime uses (cuda-python or pycuda)."""
    return open_cuda().gpu()


# TensorRT returns NULL from its object factories when its native side cannot start: CUDA failed to
# initialise (no device visible, or a driver older than the CUDA this TensorRT was built against). The
# Python bindings then raise TypeError("... factory function returned nullptr").
def create_builder(trt: Any, logger: Any) -> Any:
    return _create(trt, "Builder", logger)


def create_runtime(trt: Any, logger: Any) -> Any:
    return _create(trt, "Runtime", logger)


def _create(trt: Any, what: str, logger: Any) -> Any:
    try:
        return getattr(trt, what)(logger)
    except TypeError as exc:
        if "nullptr" not in str(exc):
            raise
        raise EdgesegError(
            f"TensorRT {trt.__version__} could not create its {what}: CUDA did not initialise for it (no NVIDIA GPU "
            "visible, or a driver older than the CUDA this TensorRT was built for); check nvidia-smi (tegrastats on "
            "a Jetson) and that TensorRT matches the installed CUDA"
        ) from None


def network_flags(trt: Any) -> int:
    major, _ = trt_version(trt)
    if major < 10:
        return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    if major == 10:
        return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return 0  # 11.x: every network is strongly typed, and EXPLICIT_BATCH is gone


def precision_flags(trt: Any, precision: str) -> list[Any]:
    """Builder flags for a weakly typed (8.x) network; none where the network is strongly typed."""
    major, _ = trt_version(trt)
    if major >= 10 or precision == "fp32":
        return []
    if precision == "fp16":
        return [trt.BuilderFlag.FP16]
    return [trt.BuilderFlag.INT8, trt.BuilderFlag.FP16]  # Q/DQ layers run INT8; the rest may use FP16


def parser_error_lines(parser: Any, onnx_path: Path) -> list[str]:
    """Parser errors with the node's name: node_name() from 10.0, else the node index looked up in the ONNX."""
    names = _node_names(onnx_path)
    lines = []
    for index in range(parser.num_errors):
        error = parser.get_error(index)
        if hasattr(error, "node_name"):
            node = f"{error.node_name()} ({error.node_operator()})"
        else:
            position = error.node()
            node = names[position] if 0 <= position < len(names) else f"#{position}"
        lines.append(f"node {node}: {error.desc()}")
    return lines


def _node_names(onnx_path: Path) -> list[str]:
    try:
        import onnx
    except ImportError:
        return []
    model = onnx.load(str(onnx_path), load_external_data=False)
    return [f"{n.name or '#' + str(i)} ({n.op_type})" for i, n in enumerate(model.graph.node)]


class BuildProgress:
    """Adapts TensorRT's IProgressMonitor (10.0+) to edgeseg's progress bar; subclassed at build time."""

    @staticmethod
    def make(trt: Any, bar: Progress) -> Any:
        class Monitor(trt.IProgressMonitor):
            def __init__(self) -> None:
                trt.IProgressMonitor.__init__(self)

            def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
                if parent_phase is None:
                    bar.advance(f"{phase_name}", steps=0)

            def step_complete(self, phase_name: str, step: int) -> bool:
                return True  # never cancel

            def phase_finish(self, phase_name: str) -> None:
                pass

        return Monitor()


def check_engine(artifact: Artifact, trt: Any, gpu: GpuInfo, bundle: Bundle) -> None:
    """Refuse an engine made by another TensorRT or for another GPU, with the command that rebuilds it."""
    differences = []
    if artifact.tools.get("tensorrt") != trt.__version__:
        differences.append(f"TensorRT {artifact.tools.get('tensorrt')} (here {trt.__version__})")
    if artifact.extra.get("compute_capability") != gpu.compute_capability or artifact.extra.get("gpu") != gpu.name:
        differences.append(
            f"GPU {artifact.extra.get('gpu')} sm{artifact.extra.get('compute_capability')} (here {gpu.name} "
            f"sm{gpu.compute_capability})"
        )
    if differences:
        raise EdgesegError(
            f"engine {artifact.path} was built for {' and '.join(differences)}; rebuild it here with: edgeseg build "
            f"{bundle.root} --precision {artifact.precision}"
        )
