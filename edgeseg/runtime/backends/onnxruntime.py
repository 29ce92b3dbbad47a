"""ONNX Runtime backend: CPU, or its TensorRT/CUDA execution providers when the installed build has them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.errors import EdgesegError, require
from edgeseg.native_output import quiet_native_output
from edgeseg.runtime.backends.base import Backend, TensorSpec

_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}


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
        ort = require("onnxruntime", None)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads or usable_cores()
        # A spinning pool takes 16-54% of the throughput from an overlay thread beside it (measured on
        # 2 cores, DeepLabV3+ and U-Net at 720p and 1080p), so the pool sleeps when idle.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            with quiet_native_output():  # its C++ logger's warnings (--verbose shows them)
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
        """The providers asked for, else the fastest installed ones."""
        return list(self.requested_providers) if self.requested_providers else self.installed_providers()

    @staticmethod
    def installed_providers() -> list[str]:
        """The installed providers a session gets unasked, in ONNX Runtime's order of preference."""
        available = require("onnxruntime", None).get_available_providers()
        return [
            p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider") if p in available
        ]

    @property
    def runs_on_cpu(self) -> bool:
        return cpu_first(self.providers or self.planned_providers())

    def throughput_sessions(self) -> int:
        """Two sessions on the CPU when edgeseg chooses the threads (no --threads) and there are two cores or more.
        One session's operators leave cores idle between and within them, and two sessions with half the threads
        each fill them: on 2 cores, two single-thread sessions infer 1.5-1.9x the frames of one two-thread session
        for DeepLabV3+ (demo-driving), 2.0-2.3x for the hourglass (demo-medical-tips), 1.1-1.15x for Mask R-CNN.
        Two, not one per core: each holds its own copy of the weights, and a frame's latency grows as its session's
        threads shrink."""
        return 2 if self.runs_on_cpu and self.threads is None and usable_cores() >= 2 else 1

    def replica(self, sessions: int) -> ONNXRuntimeBackend:
        """The cores shared out: each of the `sessions` gets an equal part."""
        return ONNXRuntimeBackend(self.model_path, self.requested_providers, max(1, usable_cores() // sessions))

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self.outputs[0].name], {self.inputs[0].name: batch})[0]

    def _infer_outputs(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        values = self.session.run(None, {self.inputs[0].name: batch})
        return {spec.name: value for spec, value in zip(self.outputs, values)}

    def _close(self) -> None:
        self.session = None

    @property
    def artifact_name(self) -> str:
        return self.model_path.name

    def describe(self) -> str:
        providers = ", ".join(self.providers or self.requested_providers or ["not opened"])
        return f"onnxruntime ({providers}) on {self.model_path.name}"


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity where the OS has one (a container's or taskset's limit),
    else every core."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def cpu_first(providers: list[str]) -> bool:
    """A session on these providers runs on ONNX Runtime's CPU provider (it comes first)."""
    return providers[:1] == ["CPUExecutionProvider"]
