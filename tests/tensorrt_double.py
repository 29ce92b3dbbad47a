"""TEST DOUBLE for the `tensorrt` Python module (TensorRT cannot be installed here): it records the calls edgeseg makes.

Its surface follows NVIDIA's real bindings, per version, and tests/test_tensorrt_bindings.py checks it against
them (8.6.1, 10.3, 10.13, 10.16 and 11.4): class names, which attributes exist in which version, properties
versus methods, parameter names, enum values. Its classes have __slots__, so a misspelt attribute fails here as
on the real IBuilderConfig (which has no __dict__). It builds nothing: its "plan" is a marker followed by the
parsed graph's I/O, so its Runtime can hand the backend an engine with the right tensor names and shapes. Tests
that use it make no claim about what a real TensorRT does with a graph.
"""

from __future__ import annotations

import ctypes
import enum
import json
import mmap
import os
from typing import Any

import numpy as np
import onnx

PLAN_MARKER = b"TEST-DOUBLE-PLAN"
NULLPTR = "pybind11::init(): factory function returned nullptr"  # the real bindings' words when TensorRT returns NULL

ONNX_TO_TRT = {1: "FLOAT", 10: "HALF", 3: "INT8", 6: "INT32", 7: "INT64", 9: "BOOL", 2: "UINT8"}
NUMPY_OF = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "INT64": np.int64,
            "BOOL": np.bool_, "UINT8": np.uint8}  # fmt: skip


def _version_tuple(version: str) -> tuple[int, int]:
    major, minor = (int(v) for v in version.split(".")[:2])
    return major, minor


class RecordingTensorRT:
    """One TensorRT version's module. Behaviour knobs: `dla_cores`, `parse_errors` [(node index, node name, text)],
    `plan` (None: the build fails), `null_factories` (Builder/Runtime raise as when CUDA did not initialise),
    `cache_accepted` (set_timing_cache's answer), `damaged_cache` (create_timing_cache raises on non-empty data),
    `no_timing_cache` (get_timing_cache returns None), `input_shape_accepted` (set_input_shape's answer),
    `on_execute` (a test's stand-in for the engine's kernels, given the bound addresses and the stream handle)."""

    def __init__(
        self,
        version: str = "10.3.0",
        dla_cores: int = 0,
        parse_errors: list[tuple[int, str, str]] | None = None,
        plan: bytes | None = PLAN_MARKER,
        null_factories: bool = False,
        cache_accepted: bool = True,
        damaged_cache: bool = False,
        no_timing_cache: bool = False,
        input_shape_accepted: bool = True,
        on_execute: Any = None,
    ):
        self.__version__ = version
        self.major, self.minor = _version_tuple(version)
        self.calls: list[tuple] = []
        self.dla_cores, self.parse_errors, self.plan = dla_cores, parse_errors or [], plan
        self.null_factories, self.cache_accepted, self.damaged_cache = null_factories, cache_accepted, damaged_cache
        self.no_timing_cache, self.input_shape_accepted = no_timing_cache, input_shape_accepted
        self.addresses: dict[str, int] = {}  # tensor name -> the address set_tensor_address bound it to
        self.on_execute = on_execute  # test glue: called with (addresses, stream_handle) by execute_async_v3
        for name, members in self._enums().items():
            setattr(self, name, enum.IntEnum(name, members))
        for cls in _classes(self):
            setattr(self, cls.__name__, cls)

    def _enums(self) -> dict[str, dict[str, int]]:
        """Enum members edgeseg touches, with the real bindings' values for this version."""
        flags = {}
        if self.major < 11:
            flags["EXPLICIT_BATCH"] = 0
        if self.major >= 10:
            flags["STRONGLY_TYPED"] = 1 if self.major == 10 else 0  # 11.x: deprecated and ignored, value 0
        builder_flags = {"GPU_FALLBACK": 3, "TF32": 7 if self.major < 10 else 6}
        if self.major < 11:
            builder_flags.update(FP16=0, INT8=1)
        data_types = {"FLOAT": 0, "HALF": 1, "INT8": 2, "INT32": 3, "BOOL": 4, "UINT8": 5}
        if self.major >= 10:
            data_types["INT64"] = 8
        return {
            "NetworkDefinitionCreationFlag": flags,
            "BuilderFlag": builder_flags,
            "MemoryPoolType": {"WORKSPACE": 0},
            "DeviceType": {"GPU": 0, "DLA": 1},
            "TensorIOMode": {"NONE": 0, "INPUT": 1, "OUTPUT": 2},
            "DataType": data_types,
        }

    # Module-level functions of the real tensorrt package.
    def init_libnvinfer_plugins(self, logger: Any, namespace: str) -> bool:
        self.calls.append(("init_libnvinfer_plugins", namespace))
        return True

    def nptype(self, trt_type: Any) -> type:
        return NUMPY_OF[trt_type.name]


def _classes(trt: RecordingTensorRT) -> list[type]:
    """The classes, made per version: an attribute a version lacks is not on its class at all."""
    severity = enum.IntEnum("Severity", {"INTERNAL_ERROR": 0, "ERROR": 1, "WARNING": 2, "INFO": 3, "VERBOSE": 4})

    def slotted(name: str, members: dict[str, Any], slots: tuple[str, ...] = ()) -> type:
        return type(name, (), {"__slots__": slots, **members})

    def recorded_property(label: str, slot: str) -> property:
        def get(self):
            return getattr(self, slot)

        def put(self, value):
            trt.calls.append((label, getattr(value, "name", value) if label != "config.progress_monitor" else
                              type(value).__name__))  # fmt: skip
            setattr(self, slot, value)

        return property(get, put)

    def logger_init(self, min_severity=severity.WARNING):
        self._severity = min_severity

    logger = slotted("Logger", {"__init__": logger_init, **dict(severity.__members__)}, ("_severity",))

    def builder_init(self, logger):
        if trt.null_factories:
            raise TypeError(NULLPTR)

    def create_network(self, flags=0):
        trt.calls.append(("create_network", flags))
        return network_cls()

    def build_serialized_network(self, network, config):
        trt.calls.append(("build_serialized_network",))
        if trt.plan is None:
            return None
        return trt.plan + (b"" if trt.plan != PLAN_MARKER else json.dumps(network._io).encode())

    builder = slotted("Builder", {
        "__init__": builder_init,
        "num_DLA_cores": property(lambda self: trt.dla_cores),
        "create_network": create_network,
        "create_builder_config": lambda self: config_cls(),
        "create_optimization_profile": lambda self: profile_cls(),
        "build_serialized_network": build_serialized_network,
    })  # fmt: skip

    tensor_cls = slotted("ITensor", {"name": property(lambda self: self._name), "shape":
                         property(lambda self: self._shape)}, ("_name", "_shape"))  # fmt: skip

    def make_tensor(name, shape):
        tensor = tensor_cls()
        tensor._name, tensor._shape = name, shape
        return tensor

    def network_init(self):
        self._io = []  # [name, mode, shape, dtype] as the parser found them

    def get_input(self, index):
        name, _, shape, _ = [t for t in self._io if t[1] == "INPUT"][index]
        return make_tensor(name, tuple(shape))

    network_cls = slotted("INetworkDefinition", {
        "__init__": network_init,
        "num_inputs": property(lambda self: sum(t[1] == "INPUT" for t in self._io)),
        "get_input": get_input,
    }, ("_io",))  # fmt: skip

    def parser_init(self, network, logger):
        self._network = network

    def parse_from_file(self, model):
        trt.calls.append(("parse_from_file", model))
        graph = onnx.load(model, load_external_data=False).graph
        for mode, values in (("INPUT", graph.input), ("OUTPUT", graph.output)):
            for value in values:
                dims = [d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim]
                self._network._io.append([value.name, mode, dims, ONNX_TO_TRT[value.type.tensor_type.elem_type]])
        return not trt.parse_errors

    def get_error(self, index):
        error = error_cls()
        error._fields = trt.parse_errors[index]
        return error

    parser_cls = slotted("OnnxParser", {
        "__init__": parser_init,
        "parse_from_file": parse_from_file,
        "num_errors": property(lambda self: len(trt.parse_errors)),
        "get_error": get_error,
    }, ("_network",))  # fmt: skip

    error_members = {
        "node": lambda self: self._fields[0],
        "desc": lambda self: self._fields[2],
        "code": lambda self: 8,
    }
    if trt.major >= 10:  # node_name()/node_operator() arrived in 10.0
        error_members.update(node_name=lambda self: self._fields[1], node_operator=lambda self: "Resize")
    error_cls = slotted("ParserError", error_members, ("_fields",))

    def config_init(self):
        self._cache = None
        self._level, self._device, self._core, self._monitor = 3, None, 0, None

    def set_memory_pool_limit(self, pool, pool_size):
        trt.calls.append(("set_memory_pool_limit", pool.name, pool_size))

    def create_timing_cache(self, serialized_timing_cache):
        data = bytes(serialized_timing_cache)
        trt.calls.append(("create_timing_cache", data))
        if trt.damaged_cache and data:
            raise RuntimeError("Error Code 1: Serialization (Invalid timing cache blob)")
        cache = cache_cls()
        cache._data = data
        return cache

    def set_timing_cache(self, cache, ignore_mismatch):
        accepted = trt.cache_accepted or not cache._data
        if accepted:
            self._cache = cache
        return accepted

    config_members = {
        "__init__": config_init,
        "set_memory_pool_limit": set_memory_pool_limit,
        "set_flag": lambda self, flag: trt.calls.append(("set_flag", flag.name)),
        "add_optimization_profile": lambda self, profile: trt.calls.append(("add_optimization_profile",)) or 0,
        "create_timing_cache": create_timing_cache,
        "set_timing_cache": set_timing_cache,
        "get_timing_cache": lambda self: None if trt.no_timing_cache else self._cache,
        "default_device_type": recorded_property("config.default_device_type", "_device"),
        "DLA_core": recorded_property("config.DLA_core", "_core"),
    }
    if (trt.major, trt.minor) >= (8, 6):
        config_members["builder_optimization_level"] = recorded_property("config.builder_optimization_level", "_level")
    if trt.major >= 10:
        config_members["progress_monitor"] = recorded_property("config.progress_monitor", "_monitor")
    config_cls = slotted("IBuilderConfig", config_members, ("_cache", "_level", "_device", "_core", "_monitor"))

    cache_cls = slotted("ITimingCache", {"serialize": lambda self: self._data + b"+updated"}, ("_data",))

    def set_shape(self, input, min, opt, max):  # noqa: A002 - the real bindings' parameter names
        trt.calls.append(("set_shape", input, tuple(min), tuple(opt), tuple(max)))
        self._shapes[input] = (tuple(min), tuple(opt), tuple(max))

    def profile_init(self):
        self._shapes = {}

    profile_cls = slotted("IOptimizationProfile", {"__init__": profile_init, "set_shape": set_shape}, ("_shapes",))

    def runtime_init(self, logger):
        if trt.null_factories:
            raise TypeError(NULLPTR)
        self._core = 0

    def deserialize_cuda_engine(self, serialized_engine):
        data = bytes(serialized_engine)
        if not data.startswith(PLAN_MARKER):
            return None  # what TensorRT returns (after logging why) for a damaged or foreign plan
        engine = engine_cls()
        engine._io = json.loads(data[len(PLAN_MARKER) :] or b"[]")
        return engine

    runtime_cls = slotted("Runtime", {
        "__init__": runtime_init,
        "DLA_core": recorded_property("runtime.DLA_core", "_core"),
        "deserialize_cuda_engine": deserialize_cuda_engine,
    }, ("_core",))  # fmt: skip

    def tensor(engine, name):
        return next(t for t in engine._io if t[0] == name)

    def get_tensor_profile_shape(self, name, profile_index):
        dims = tensor(self, name)[2]
        return [
            tuple(1 if d < 0 else d for d in dims),
            tuple(1 if d < 0 else d for d in dims),
            tuple(4 if d < 0 else d for d in dims),
        ]  # fmt: skip  a double's profile: batch 1..4

    def create_execution_context(self):
        context = context_cls()
        context._engine, context._shapes = self, {t[0]: tuple(t[2]) for t in self._io}
        return context

    engine_cls = slotted("ICudaEngine", {
        "num_io_tensors": property(lambda self: len(self._io)),
        "get_tensor_name": lambda self, index: self._io[index][0],
        "get_tensor_mode": lambda self, name: trt.TensorIOMode[tensor(self, name)[1]],
        "get_tensor_shape": lambda self, name: tuple(tensor(self, name)[2]),
        "get_tensor_dtype": lambda self, name: trt.DataType[tensor(self, name)[3]],
        "get_tensor_profile_shape": get_tensor_profile_shape,
        "create_execution_context": create_execution_context,
    }, ("_io",))  # fmt: skip

    def set_input_shape(self, name, shape):
        trt.calls.append(("set_input_shape", name, tuple(shape)))
        if not trt.input_shape_accepted:
            return False
        self._shapes[name] = tuple(shape)
        height, width = shape[1:3]  # edgeseg's fused input is NHWC uint8
        for other in self._engine._io:  # this double's shape inference: batch from the input, -1 spatial dims H, W
            if other[1] == "OUTPUT":
                rest = list(other[2][1:])
                if -1 in rest:
                    rest[-2:] = [height, width]
                self._shapes[other[0]] = (shape[0], *rest)
        return True

    def execute_async_v3(self, stream_handle):
        trt.calls.append(("execute_async_v3", stream_handle))
        if trt.on_execute is not None:
            trt.on_execute(dict(trt.addresses), stream_handle)
        return True

    def set_tensor_address(self, name, memory):
        trt.calls.append(("set_tensor_address", name))
        trt.addresses[name] = int(memory)
        return True

    context_cls = slotted("IExecutionContext", {
        "set_input_shape": set_input_shape,
        "get_tensor_shape": lambda self, name: self._shapes[name],
        "set_tensor_address": set_tensor_address,
        "execute_async_v3": execute_async_v3,
    }, ("_engine", "_shapes"))  # fmt: skip

    classes = [logger, builder, network_cls, tensor_cls, parser_cls, error_cls, config_cls, cache_cls, profile_cls,
               runtime_cls, engine_cls, context_cls]  # fmt: skip
    if trt.major >= 10:
        classes.append(slotted("IProgressMonitor", {"__init__": lambda self: None}, ("__dict__",)))
    return classes


class HostMemoryCuda:
    """TEST DOUBLE for edgeseg.engines.cuda.Cuda (no GPU here): "device" buffers are host memory, copies are
    numpy copies, and a per-thread stack of current devices stands in for CUDA's context stack, so tests can see
    that close() leaves nothing current. It says nothing about a real device."""

    binding = "test-double"

    def __init__(self, name: str = "Orin", compute_capability: str = "8.7", integrated: bool = False):
        """`integrated` picks the path the backend takes (mapped zero-copy when True); copies by default."""
        from edgeseg.engines.cuda import DeviceMemory, GpuInfo

        self.info = GpuInfo(name, compute_capability)
        self.memory = DeviceMemory(integrated=integrated, can_map_host=True)
        self.current: list[str] = []  # this double's stand-in for the thread's context stack
        self.live_buffers = 0
        self.copies = 0

    def device_memory(self):
        return self.memory

    def mapped(self, shape, dtype):
        array = np.zeros(shape, dtype)
        self.live_buffers += 1
        return array, array.ctypes.data

    def gpu(self):
        return self.info

    def driver_version(self) -> str:
        return "12.6"

    def activate(self) -> None:
        self.current.append(self.info.name)

    def release(self) -> None:
        self.current.pop()

    def stream(self):
        return object()

    def stream_handle(self, stream) -> int:
        return id(stream)

    def free_stream(self, stream) -> None:
        pass

    def synchronize(self, stream) -> None:
        pass

    def pinned(self, shape, dtype):
        return np.zeros(shape, dtype)

    def free_pinned(self, array) -> None:
        if self.memory.zero_copy:
            self.live_buffers -= 1

    def device_buffer(self, nbytes: int):
        from edgeseg.engines.cuda import DeviceBuffer

        memory = np.zeros(max(nbytes, 1), np.uint8)
        self.live_buffers += 1

        def free():
            self.live_buffers -= 1

        buffer = DeviceBuffer(memory.ctypes.data, nbytes, free)
        buffer.memory = memory
        return buffer

    def to_device(self, target, source, stream) -> None:
        self.copies += 1
        target.memory[: source.nbytes] = source.reshape(-1).view(np.uint8)

    def to_host(self, target, source, stream) -> None:
        self.copies += 1
        target.reshape(-1).view(np.uint8)[:] = source.memory[: target.nbytes]


class RecordingCudart:
    """TEST DOUBLE for cuda-python's runtime module (`cuda.bindings.runtime`; no GPU here), for CudaPython.

    What follows the real bindings, and is checked against the installed cuda-bindings by tests/test_cuda.py:
    the function names and parameter names, the tuple (cudaError_t, value...) each returns, and the values of the
    enum members and flags below. Everything else is this double's own: device memory is host memory, a "device
    pointer" of mapped memory is a second mapping of the same pages (so the code must bind what
    cudaHostGetDevicePointer returned, as the real docstring allows it to differ from the host pointer), and work
    queued on a stream (async copies, and a test's `enqueue`d stand-in for TensorRT's kernels) runs only at
    cudaStreamSynchronize. It says nothing about how a real GPU performs or behaves beyond those signatures.
    `calls` records (function name, positional arguments) in order."""

    cudaHostAllocDefault, cudaHostAllocMapped = 0, 2  # noqa: N815 - the runtime's names

    def __init__(self, integrated: bool, can_map_host: bool = True, name: str = "Orin", compute_capability=(8, 7)):
        self.integrated, self.can_map_host = integrated, can_map_host
        self.name, self.compute_capability = name, compute_capability
        self.cudaError_t = enum.IntEnum("cudaError_t", {"cudaSuccess": 0, "cudaErrorInvalidValue": 1})
        self.cudaDeviceAttr = enum.IntEnum(
            "cudaDeviceAttr", {"cudaDevAttrIntegrated": 18, "cudaDevAttrCanMapHostMemory": 19}
        )
        self.cudaMemcpyKind = enum.IntEnum("cudaMemcpyKind", {"cudaMemcpyHostToDevice": 1, "cudaMemcpyDeviceToHost": 2})
        self.calls: list[tuple] = []
        self.live: dict[int, Any] = {}  # address -> what keeps that allocation alive (host and device memory)
        self.device_of: dict[int, int] = {}  # mapped host address -> its device alias
        self.pending: dict[int, list] = {}  # stream handle -> queued work
        self._next_stream = 0x5000

    def _record(self, name: str, *args: Any) -> None:
        self.calls.append((name, *args))

    def called(self, name: str) -> list[tuple]:
        return [c for c in self.calls if c[0] == name]

    # -- device and errors
    def cudaGetDeviceCount(self):  # noqa: N802 - the runtime's names, here and below
        self._record("cudaGetDeviceCount")
        return self.cudaError_t.cudaSuccess, 1

    def cudaGetDeviceProperties(self, device):  # noqa: N802
        self._record("cudaGetDeviceProperties", device)
        major, minor = self.compute_capability
        properties = type("cudaDeviceProp", (), {"name": self.name.encode(), "major": major, "minor": minor})()
        return self.cudaError_t.cudaSuccess, properties

    def cudaDriverGetVersion(self):  # noqa: N802
        self._record("cudaDriverGetVersion")
        return self.cudaError_t.cudaSuccess, 12060

    def cudaSetDevice(self, device):  # noqa: N802
        self._record("cudaSetDevice", device)
        return (self.cudaError_t.cudaSuccess,)

    def cudaDeviceGetAttribute(self, attr, device):  # noqa: N802
        self._record("cudaDeviceGetAttribute", attr, device)
        values = {"cudaDevAttrIntegrated": self.integrated, "cudaDevAttrCanMapHostMemory": self.can_map_host}
        return self.cudaError_t.cudaSuccess, int(values[attr.name])

    def cudaGetErrorName(self, error):  # noqa: N802
        return self.cudaError_t.cudaSuccess, error.name.encode()

    def cudaGetErrorString(self, error):  # noqa: N802
        return self.cudaError_t.cudaSuccess, b"invalid argument"

    # -- streams
    def cudaStreamCreate(self):  # noqa: N802
        self._record("cudaStreamCreate")
        self._next_stream += 1
        self.pending[self._next_stream] = []
        return self.cudaError_t.cudaSuccess, self._next_stream

    def cudaStreamDestroy(self, stream):  # noqa: N802
        self._record("cudaStreamDestroy", stream)
        del self.pending[int(stream)]
        return (self.cudaError_t.cudaSuccess,)

    def cudaStreamSynchronize(self, stream):  # noqa: N802
        self._record("cudaStreamSynchronize", stream)
        work, self.pending[int(stream)] = self.pending[int(stream)], []
        for item in work:
            item()
        return (self.cudaError_t.cudaSuccess,)

    def enqueue(self, stream: int, work: Any) -> None:
        """Test glue, not the runtime's: queue `work` on a stream, as a kernel launch would be."""
        self.pending[int(stream)].append(work)

    # -- memory
    def _host_buffer(self, size: int) -> int:
        buffer = ctypes.create_string_buffer(size)
        self.live[ctypes.addressof(buffer)] = buffer
        return ctypes.addressof(buffer)

    def cudaMallocHost(self, size):  # noqa: N802
        self._record("cudaMallocHost", size)
        return self.cudaError_t.cudaSuccess, self._host_buffer(size)

    def cudaMalloc(self, size):  # noqa: N802
        self._record("cudaMalloc", size)
        return self.cudaError_t.cudaSuccess, self._host_buffer(size)

    def cudaFree(self, devPtr):  # noqa: N802, N803
        self._record("cudaFree", devPtr)
        return (self.cudaError_t.cudaSuccess if self.live.pop(int(devPtr), None) is not None else
                self.cudaError_t.cudaErrorInvalidValue,)  # fmt: skip

    def cudaHostAlloc(self, size, flags):  # noqa: N802
        self._record("cudaHostAlloc", size, flags)
        if not flags & self.cudaHostAllocMapped:
            return self.cudaError_t.cudaSuccess, self._host_buffer(size)
        descriptor = os.memfd_create("cudart-double")  # two mappings of one memory: host and "device" views
        os.ftruncate(descriptor, size)
        views = [mmap.mmap(descriptor, size) for _ in range(2)]
        os.close(descriptor)
        anchors = [ctypes.c_char.from_buffer(view) for view in views]
        host, device = (ctypes.addressof(anchor) for anchor in anchors)
        self.live[host], self.device_of[host] = (views, anchors), device
        return self.cudaError_t.cudaSuccess, host

    def cudaHostGetDevicePointer(self, pHost, flags):  # noqa: N802, N803
        self._record("cudaHostGetDevicePointer", pHost, flags)
        device = self.device_of.get(int(pHost))
        if device is None or flags != 0 or not self.can_map_host:
            return self.cudaError_t.cudaErrorInvalidValue, None
        return self.cudaError_t.cudaSuccess, device

    def cudaFreeHost(self, ptr):  # noqa: N802
        self._record("cudaFreeHost", ptr)
        kept = self.live.pop(int(ptr), None)
        if kept is None:
            return (self.cudaError_t.cudaErrorInvalidValue,)
        if int(ptr) in self.device_of:
            del self.device_of[int(ptr)]
            views, anchors = kept
            del anchors, kept  # the exported buffers must go before the mappings close
            for view in views:
                view.close()
        return (self.cudaError_t.cudaSuccess,)

    def cudaMemcpyAsync(self, dst, src, count, kind, stream):  # noqa: N802
        self._record("cudaMemcpyAsync", dst, src, count, kind, stream)
        self.enqueue(stream, lambda: ctypes.memmove(int(dst), int(src), int(count)))
        return (self.cudaError_t.cudaSuccess,)
