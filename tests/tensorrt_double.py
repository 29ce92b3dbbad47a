"""TEST DOUBLE for the `tensorrt` Python module (and a GPU): it records the calls edgeseg makes.

TensorRT cannot be installed on these machines. This double exposes only the names each real
TensorRT version has (per NVIDIA's Python API: EXPLICIT_BATCH gone in 11, IProgressMonitor from 10.0,
the precision BuilderFlags gone in 11), so a call to an API a version lacks fails the way
it would on a device. It builds nothing: its "plan" is a byte string, and tests that use it make
no claim about what a real TensorRT does with the graph.
"""

from __future__ import annotations

import enum
from types import SimpleNamespace

import onnx


class RecordingTensorRT:
    def __init__(
        self,
        version: str = "10.3.0",
        dla_cores: int = 0,
        parse_errors: list[tuple[int, str, str]] | None = None,
        plan: bytes | None = b"TEST-DOUBLE-PLAN",
    ):
        self.__version__ = version
        self.major, self.minor = (int(v) for v in version.split(".")[:2])
        self.calls: list[tuple] = []
        self.dla_cores, self.parse_errors, self.plan = dla_cores, parse_errors or [], plan
        flags = {}
        if self.major < 11:
            flags["EXPLICIT_BATCH"] = 0
        if self.major >= 10:
            flags["STRONGLY_TYPED"] = 1 if self.major == 10 else 5
        self.NetworkDefinitionCreationFlag = (
            enum.IntEnum("NetworkDefinitionCreationFlag", flags) if flags else SimpleNamespace()
        )
        builder_flags = ["GPU_FALLBACK", "TF32"] + ([] if self.major >= 11 else ["FP16", "INT8"])
        self.BuilderFlag = enum.Enum("BuilderFlag", builder_flags)
        self.MemoryPoolType = enum.Enum("MemoryPoolType", ["WORKSPACE"])
        self.DeviceType = enum.Enum("DeviceType", ["GPU", "DLA"])
        self.TensorIOMode = enum.Enum("TensorIOMode", ["INPUT", "OUTPUT"])
        if self.major >= 10:
            self.IProgressMonitor = type("IProgressMonitor", (), {"__init__": lambda self: None})

    # -- module-level classes -----------------------------------------------------------------
    def Logger(self, severity=None):  # noqa: N802 - mirrors tensorrt.Logger
        return SimpleNamespace(severity=severity)

    def Builder(self, logger):  # noqa: N802 - TensorRT's own name
        return _Builder(self)

    def OnnxParser(self, network, logger):  # noqa: N802 - TensorRT's own name
        return _Parser(self, network)

    def init_libnvinfer_plugins(self, logger, namespace):
        self.calls.append(("init_libnvinfer_plugins", namespace))
        return True

    # Logger.WARNING / Logger.ERROR as attributes of the callable
    Logger.WARNING = "WARNING"  # type: ignore[attr-defined]
    Logger.ERROR = "ERROR"  # type: ignore[attr-defined]


class _Builder:
    def __init__(self, trt: RecordingTensorRT):
        self.trt = trt
        self.num_DLA_cores = trt.dla_cores

    def create_network(self, flags):
        self.trt.calls.append(("create_network", flags))
        return _Network()

    def create_builder_config(self):
        return _Config(self.trt)

    def create_optimization_profile(self):
        return _Profile(self.trt)

    def build_serialized_network(self, network, config):
        self.trt.calls.append(("build_serialized_network",))
        return self.trt.plan


class _Network:
    def __init__(self):
        self.inputs = []

    @property
    def num_inputs(self):
        return len(self.inputs)

    def get_input(self, index):
        return self.inputs[index]


class _Parser:
    def __init__(self, trt, network):
        self.trt, self.network = trt, network

    def parse_from_file(self, path):
        self.trt.calls.append(("parse_from_file", path))
        model = onnx.load(path, load_external_data=False)
        for value in model.graph.input:
            dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim)
            self.network.inputs.append(SimpleNamespace(name=value.name, shape=dims))
        return not self.trt.parse_errors

    @property
    def num_errors(self):
        return len(self.trt.parse_errors)

    def get_error(self, index):
        node, name, desc = self.trt.parse_errors[index]
        error = SimpleNamespace(node=lambda: node, desc=lambda: desc, code=lambda: 8)
        if self.trt.major >= 10:  # node_name()/node_operator() arrived in 10.0
            error.node_name, error.node_operator = (lambda: name), (lambda: "Resize")
        return error


class _Config:
    def __init__(self, trt):
        self.trt = trt
        if (trt.major, trt.minor) >= (8, 6):
            object.__setattr__(self, "builder_optimization_level", 3)
        self._cache = None

    def set_memory_pool_limit(self, pool, size):
        self.trt.calls.append(("set_memory_pool_limit", pool.name, size))

    def set_flag(self, flag):
        self.trt.calls.append(("set_flag", flag.name))

    def add_optimization_profile(self, profile):
        self.trt.calls.append(("add_optimization_profile",))

    def create_timing_cache(self, data):
        self.trt.calls.append(("create_timing_cache", bytes(data)))
        return SimpleNamespace(serialize=lambda: bytes(data) + b"+updated")

    def set_timing_cache(self, cache, ignore_mismatch):
        self._cache = cache

    def get_timing_cache(self):
        return self._cache

    def __setattr__(self, name, value):
        if name in ("default_device_type", "DLA_core", "progress_monitor", "builder_optimization_level") and hasattr(
            self, "trt"
        ):
            self.trt.calls.append(
                (
                    "config." + name,
                    getattr(value, "name", value) if name != "progress_monitor" else type(value).__name__,
                )
            )
        object.__setattr__(self, name, value)


class _Profile:
    def __init__(self, trt):
        self.trt = trt

    def set_shape(self, name, low, optimum, high):
        self.trt.calls.append(("set_shape", name, low, optimum, high))
