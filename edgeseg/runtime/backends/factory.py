"""Which backend and artifact run a bundle: the one place `--backend` is resolved."""

from __future__ import annotations

import importlib.util

from edgeseg.bundle import Bundle
from edgeseg.errors import TENSORRT_INSTALL_HINT, EdgesegError
from edgeseg.runtime.backends.base import Backend
from edgeseg.runtime.backends.onnxruntime import ONNXRuntimeBackend
from edgeseg.runtime.backends.triton import TritonBackend, TritonOptions

BACKENDS = ("auto", "onnxruntime", "tensorrt")


def tensorrt_usable() -> bool:
    """True when TensorRT and a CUDA binding import; cheap enough for --backend auto."""
    return importlib.util.find_spec("tensorrt") is not None and importlib.util.find_spec("pycuda") is not None


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
        return "tensorrt" if tensorrt_usable() and has_engines(bundle) else "onnxruntime"
    if name == "tensorrt" and not tensorrt_usable():
        raise EdgesegError(f"--backend tensorrt: TensorRT or pycuda is not installed here. {TENSORRT_INSTALL_HINT}")
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
) -> Backend:
    """Choose and construct (not yet open) the backend and artifact for a bundle."""
    backend = resolve_backend(backend, bundle)
    if backend.startswith("triton://"):
        return TritonBackend(backend, bundle, triton or TritonOptions())
    if backend == "tensorrt":
        return _tensorrt_backend(bundle, precision)
    # The CPU-shaped int8 artifact runs fastest on ONNX Runtime; a generic one is the fallback.
    artifact = bundle.select("onnx", precision, targets=("cpu", "any"))
    if precision == "best" and artifact.extra.get("cpu_latency_ratio", 0) >= 1.0:
        # calibrate measured this INT8 form no faster than FP32 here (thin nets gain little): run FP32.
        artifact = bundle.select("onnx", "fp32", targets=("any",))
    return ONNXRuntimeBackend(bundle.artifact_path(artifact), threads=threads)


def _tensorrt_backend(bundle: Bundle, precision: str) -> Backend:
    if not has_engines(bundle):
        raise EdgesegError(f"bundle {bundle.root} has no TensorRT engine; build one with: edgeseg build {bundle.root}")
    import tensorrt

    from edgeseg.runtime.backends.tensorrt import TensorRTBackend

    # A bundle may carry engines for several devices: take the one this TensorRT made.
    made_here = lambda a: a.tools.get("tensorrt") == tensorrt.__version__  # noqa: E731 - a one-line preference
    return TensorRTBackend(bundle, bundle.select("engine", precision, targets=("tensorrt",), prefer=made_here))
