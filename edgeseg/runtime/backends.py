"""Inference backends: one small contract (open, specs, infer, close; a context manager) and ONNX Runtime.

Modelled on Polygraphy's runners: the heavy library is imported when a backend opens, not before.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.bundle import Bundle
from edgeseg.errors import EdgesegError, require

BACKENDS = ("auto", "onnxruntime", "tensorrt")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | None, ...]  # None marks a dynamic dimension
    dtype: np.dtype


class Backend:
    """Base contract. Subclasses implement `_open`, `_infer` and `_close`."""

    name = "backend"

    def __init__(self) -> None:
        self.is_open = False
        self.inputs: list[TensorSpec] = []
        self.outputs: list[TensorSpec] = []

    def open(self) -> "Backend":
        if not self.is_open:
            self._open()
            self.is_open = True
        return self

    def close(self) -> None:
        if self.is_open:
            self._close()
            self.is_open = False

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch through the graph's single input; return its first output."""
        if not self.is_open:
            raise RuntimeError(f"{self.name} backend used before open()")
        return self._infer(batch)

    @property
    def runs_on_cpu(self) -> bool:
        """True when inference shares the host's cores with capture and drawing."""
        return False

    @property
    def batch_size(self) -> int:
        """Frames per infer call: the graph's fixed batch, or 1 for a dynamic batch."""
        first = self.inputs[0].shape[0] if self.inputs else None
        return first if isinstance(first, int) and first > 0 else 1

    def __enter__(self) -> "Backend":
        return self.open()

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def describe(self) -> str:
        return self.name

    def _open(self) -> None:
        raise NotImplementedError

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _close(self) -> None:
        pass


_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8, "tensor(int64)": np.int64, "tensor(int32)": np.int32}


class ONNXRuntimeBackend(Backend):
    """ONNX Runtime session: TensorRT or CUDA execution providers when the installed build has them, else CPU."""

    name = "onnxruntime"

    def __init__(self, model_path: Path, providers: list[str] | None = None, threads: int | None = None):
        super().__init__()
        self.model_path = Path(model_path)
        self.requested_providers = providers
        self.threads = threads
        self.session: Any = None
        self.providers: list[str] = []

    def _open(self) -> None:
        ort = require("onnxruntime", "onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads or max(1, (os.cpu_count() or 2))
        # A spinning pool steals 16-54% from the overlay thread beside it (shared/PROBES.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(self.model_path), options, providers=self.planned_providers())
        except Exception as exc:  # ORT raises its own exception types for bad graphs
            raise EdgesegError(f"ONNX Runtime cannot load {self.model_path}: {str(exc).splitlines()[0]}") from None
        self.providers = self.session.get_providers()
        self.inputs = [self._spec(i) for i in self.session.get_inputs()]
        self.outputs = [self._spec(o) for o in self.session.get_outputs()]

    @staticmethod
    def _spec(node: Any) -> TensorSpec:
        shape = tuple(d if isinstance(d, int) else None for d in node.shape)
        return TensorSpec(node.name, shape, np.dtype(_ORT_TYPES.get(node.type, np.float32)))

    def planned_providers(self) -> list[str]:
        """The providers asked for, else the fastest installed ones, in ONNX Runtime's order of preference."""
        if self.requested_providers:
            return list(self.requested_providers)
        available = require("onnxruntime", "onnxruntime").get_available_providers()
        return [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider") if p in available]

    @property
    def runs_on_cpu(self) -> bool:
        return (self.providers or self.planned_providers())[:1] == ["CPUExecutionProvider"]

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self.outputs[0].name], {self.inputs[0].name: batch})[0]

    def _close(self) -> None:
        self.session = None

    def describe(self) -> str:
        return f"onnxruntime ({', '.join(self.providers or self.requested_providers or ['not opened'])}) on {self.model_path.name}"


def tensorrt_usable() -> bool:
    """True when TensorRT and a CUDA binding import; cheap enough for --backend auto."""
    import importlib.util

    return importlib.util.find_spec("tensorrt") is not None and importlib.util.find_spec("pycuda") is not None


def open_backend(bundle: Bundle, backend: str = "auto", precision: str = "best", threads: int | None = None, stream: Any = None) -> Backend:
    """Choose and construct (not yet open) the backend and artifact for a bundle.

    `stream` (StreamOptions) sets the timeout and retries of a remote backend, as for live sources.
    """
    if backend.startswith("triton://"):
        from edgeseg.runtime.triton_backend import TritonBackend

        if stream is None:
            return TritonBackend(backend, bundle)
        retries = stream.retries if stream.retries >= 0 else 8
        return TritonBackend(backend, bundle, timeout=stream.timeout, retries=retries, backoff_cap=stream.backoff_cap)
    if backend not in BACKENDS:
        raise EdgesegError(f"unknown backend '{backend}'; choose one of: {', '.join(BACKENDS)}, or triton://HOST:PORT/MODEL")
    if backend == "auto":
        backend = "tensorrt" if tensorrt_usable() and any(a.kind == "engine" for a in bundle.artifacts) else "onnxruntime"
    if backend == "tensorrt":
        if not tensorrt_usable():
            raise EdgesegError(
                "--backend tensorrt: TensorRT or pycuda is not installed here. JetPack ships TensorRT (make the venv with "
                "--system-site-packages); on a desktop install NVIDIA's tensorrt wheels; pip install 'edgeseg[tensorrt]' adds pycuda"
            )
        from edgeseg.runtime.tensorrt_backend import TensorRTBackend

        engines = [a for a in bundle.artifacts if a.kind == "engine"]
        if not engines:
            raise EdgesegError(f"bundle {bundle.root} has no TensorRT engine; build one with: edgeseg build {bundle.root}")
        import tensorrt

        # A bundle may carry engines for several devices: take the one this TensorRT made.
        return TensorRTBackend(bundle, bundle.select("engine", precision, targets=("tensorrt",), prefer=lambda a: a.tools.get("tensorrt") == tensorrt.__version__))
    # The CPU-shaped int8 artifact runs fastest on ONNX Runtime; a generic one is the fallback.
    artifact = bundle.select("onnx", precision, targets=("cpu", "any"))
    if precision == "best" and artifact.extra.get("cpu_latency_ratio", 0) >= 1.0:
        # calibrate measured this INT8 form no faster than FP32 here (thin nets gain little): run FP32.
        artifact = bundle.select("onnx", "fp32", targets=("any",))
    return ONNXRuntimeBackend(bundle.artifact_path(artifact), threads=threads)


def class_maps(backend: Backend, images: list[np.ndarray], input_contract: Any, output_contract: Any) -> list[np.ndarray]:
    """uint8 class maps for BGR frames through an open backend, in batches of its size (the last padded)."""
    from edgeseg.runtime.tensors import frames_to_input, output_to_class_maps

    size = backend.batch_size
    maps: list[np.ndarray] = []
    for start in range(0, len(images), size):
        chunk = images[start : start + size]
        padded = chunk + [chunk[-1]] * (size - len(chunk))
        maps.extend(output_to_class_maps(backend.infer(frames_to_input(padded, input_contract)), output_contract)[: len(chunk)])
    return maps
