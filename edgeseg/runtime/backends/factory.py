"""Which backend and artifact run a bundle: the one place `--backend` is resolved."""

from __future__ import annotations

import functools

from edgeseg.bundle import Bundle
from edgeseg.errors import EdgesegError
from edgeseg.runtime.backends.base import Backend
from edgeseg.runtime.backends.onnxruntime import ONNXRuntimeBackend, cpu_first
from edgeseg.runtime.backends.triton import TritonBackend, TritonOptions

BACKENDS = ("auto", "onnxruntime", "tensorrt")


@functools.lru_cache(maxsize=None)
def tensorrt_problem() -> str | None:
    """Why the TensorRT backend cannot load here (one line), or None when TensorRT and a CUDA binding import.

    TensorRT is imported for real: bindings whose native libraries are missing are found out here, not
    when the first frame arrives.
    """
    from edgeseg.engines.compat import import_tensorrt
    from edgeseg.engines.cuda import CUDA_INSTALL_HINT, cuda_binding_installed

    try:
        import_tensorrt()
    except EdgesegError as exc:
        return str(exc)
    if cuda_binding_installed() is None:
        return f"TensorRT needs a CUDA binding for Python beside it: {CUDA_INSTALL_HINT}"
    return None


def tensorrt_usable() -> bool:
    return tensorrt_problem() is None


def has_engines(bundle: Bundle) -> bool:
    return any(a.kind == "engine" for a in bundle.artifacts)


def resolve_backend(name: str, bundle: Bundle) -> str:
    """A --backend value checked and, for auto, chosen: TensorRT when it can run the bundle here, else ONNX Runtime.

    triton:// URLs pass through; the server decides what runs.
    """
    if name.startswith("triton://"):
        return name
    if name not in BACKENDS:
        raise EdgesegError(
            f"unknown backend '{name}'; choose one of: {', '.join(BACKENDS)}, or triton://HOST:PORT/MODEL"
        )
    if name == "auto":
        return "tensorrt" if has_engines(bundle) and tensorrt_usable() else "onnxruntime"
    if name == "tensorrt" and not tensorrt_usable():
        raise EdgesegError(f"--backend tensorrt: {tensorrt_problem()}")
    return name


def usable_backends(bundle: Bundle) -> list[str]:
    """Every backend that can run the bundle here, ONNX Runtime first (its FP32 is the reference)."""
    return ["onnxruntime"] + (["tensorrt"] if resolve_backend("auto", bundle) == "tensorrt" else [])


def open_backend(
    bundle: Bundle,
    backend: str = "auto",
    precision: str = "best",
    threads: int | None = None,
    triton: TritonOptions | None = None,
    dla_core: int | None = None,
) -> Backend:
    """Choose and construct (not yet open) the backend and artifact for a bundle.

    `dla_core` picks TensorRT's engine built for that DLA core; None picks a GPU engine.
    """
    backend = resolve_backend(backend, bundle)
    if backend.startswith("triton://"):
        return TritonBackend(backend, bundle, triton or TritonOptions())
    if backend == "tensorrt":
        return _tensorrt_backend(bundle, precision, dla_core)
    if dla_core is not None:
        raise EdgesegError(f"--dla {dla_core} runs a TensorRT engine built with --dla; this run uses {backend}")
    # The CPU-shaped int8 artifact runs fastest on ONNX Runtime; a generic one is the fallback. What `best` passes
    # over is Bundle.passed_over_because's to say, told whether this run is on the CPU provider.
    on_cpu = cpu_first(ONNXRuntimeBackend.installed_providers())
    artifact = bundle.select("onnx", precision, targets=("cpu", "any"), on_cpu=on_cpu)
    return ONNXRuntimeBackend(bundle.artifact_path(artifact), threads=threads)


def _tensorrt_backend(bundle: Bundle, precision: str, dla_core: int | None) -> Backend:
    if not has_engines(bundle):
        raise EdgesegError(f"bundle {bundle.root} has no TensorRT engine; build one with: edgeseg build {bundle.root}")
    from edgeseg.engines.compat import import_tensorrt
    from edgeseg.runtime.backends.tensorrt import TensorRTBackend

    version = import_tensorrt().__version__
    on_device = [a for a in bundle.artifacts if a.kind == "engine" and a.extra.get("dla_core") == dla_core]
    if not on_device:
        device = "the GPU (built without --dla)" if dla_core is None else f"DLA core {dla_core}"
        flag = "" if dla_core is None else f" --dla {dla_core}"
        raise EdgesegError(f"bundle {bundle.root} has no engine for {device}; build one with: edgeseg build "
                           f"{bundle.root}{flag}")  # fmt: skip
    # A bundle may carry engines for several devices: take the one this TensorRT made.
    made_here = lambda a: a.tools.get("tensorrt") == version  # noqa: E731 - a one-line preference
    artifact = bundle.select(
        "engine", precision, targets=("tensorrt",), prefer=made_here, accept=lambda a: a in on_device
    )
    return TensorRTBackend(bundle, artifact)
