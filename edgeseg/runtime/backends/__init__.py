"""Inference backends behind one contract: ONNX Runtime, TensorRT, Triton."""

from edgeseg.runtime.backends.base import Backend, TensorSpec
from edgeseg.runtime.backends.factory import (
    BACKENDS,
    open_backend,
    resolve_backend,
    tensorrt_problem,
    tensorrt_usable,
    usable_backends,
)
from edgeseg.runtime.backends.onnxruntime import ONNXRuntimeBackend
from edgeseg.runtime.backends.triton import TritonOptions

__all__ = [
    "BACKENDS",
    "Backend",
    "ONNXRuntimeBackend",
    "TensorSpec",
    "TritonOptions",
    "open_backend",
    "resolve_backend",
    "tensorrt_problem",
    "tensorrt_usable",
    "usable_backends",
]
