"""The CUDA edgeseg needs beside TensorRT, behind one small interface: cuda-python (preferred) or pycuda.

cuda-python (`cuda-bindings`) ships binary wheels for x86_64 and aarch64 and is what NVIDIA's TensorRT
samples use from 10.14; it imports without a GPU and its runtime API then answers every call with an
error code (cudaErrorInsufficientDriver), so the no-device path is the real one. pycuda is source-only on
PyPI and builds only with `nvcc` on PATH (JetPack does not put it there).

What TensorRT needs: the device's name and compute capability (engines are tied to them), a stream,
page-locked host buffers (async copies overlap only from pinned memory), device buffers, async copies
and a stream sync. On an integrated GPU (a Jetson: CPU and GPU share one DRAM) it needs no device buffers
and no copies: page-locked host memory mapped into the device's address space (cudaHostAlloc with
cudaHostAllocMapped, then cudaHostGetDevicePointer) is bound to TensorRT directly, as jetson-inference's
cudaAllocMapped does for every image. `device_memory()` says which of the two a device takes.

The runtime API uses the device's primary context implicitly on every thread; pycuda works through
the driver API, where the primary context must be retained, made current on the thread that uses it,
and on close popped and then released (cuDevicePrimaryCtxRelease does not pop it).
"""

from __future__ import annotations

import ctypes
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeseg.errors import EdgesegError

CUDA_INSTALL_HINT = (
    "install cuda-python matching the CUDA of your JetPack or driver: pip install 'cuda-bindings>=12,<13' for "
    "CUDA 12.x (JetPack 6), 'cuda-bindings>=13,<14' for CUDA 13 (JetPack 7), 'cuda-python==11.8.*' for CUDA 11.4 "
    "(JetPack 5); or pycuda, which builds only with nvcc on PATH (>= 2025.1.2 for CUDA 13)"
)


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: str  # e.g. "8.7"


@dataclass(frozen=True)
class DeviceMemory:
    """How a device reaches host memory: cudaDevAttrIntegrated and cudaDevAttrCanMapHostMemory."""

    integrated: bool  # the GPU shares the CPU's DRAM (a Jetson's iGPU)
    can_map_host: bool  # page-locked host memory can be mapped into the device's address space

    @property
    def zero_copy(self) -> bool:
        """TensorRT binds mapped host memory and no copy crosses: only where the DRAM is shared and mappable."""
        return self.integrated and self.can_map_host

    def describe(self, gpu_name: str) -> str:
        """One line for doctor: which path a TensorRT run takes on this device, and why."""
        if self.zero_copy:
            return (
                f"mapped zero-copy: {gpu_name} is integrated (CPU and GPU share DRAM); TensorRT reads and writes "
                "page-locked mapped host memory, no copies per frame"
            )
        why = "is integrated but cannot map host memory" if self.integrated else "is discrete"
        return (
            f"copies: {gpu_name} {why}; page-locked host buffers, a host-to-device and a device-to-host async "
            "copy per frame"
        )


NO_CUDA_PATH = "none: no usable CUDA GPU, so no TensorRT run"


class DeviceBuffer:
    """Device memory: `pointer` is what TensorRT's set_tensor_address takes."""

    def __init__(self, pointer: int, nbytes: int, free: Any):
        self.pointer, self.nbytes, self._free = pointer, nbytes, free

    def free(self) -> None:
        if self._free is not None:
            self._free()
            self._free = None


class Cuda(ABC):
    """One GPU, used from the thread that called `activate()`."""

    binding: str

    @abstractmethod
    def gpu(self) -> GpuInfo: ...

    @abstractmethod
    def driver_version(self) -> str: ...

    @abstractmethod
    def activate(self) -> None:
        """Make the device usable on the calling thread."""

    @abstractmethod
    def release(self) -> None:
        """Undo activate() on the same thread."""

    @abstractmethod
    def device_memory(self) -> DeviceMemory:
        """Whether the device is integrated and can map host memory (then `mapped` replaces buffers and copies)."""

    @abstractmethod
    def stream(self) -> Any:
        """A new stream; `stream_handle(s)` gives the int TensorRT's execute_async_v3 takes."""

    @abstractmethod
    def stream_handle(self, stream: Any) -> int: ...

    @abstractmethod
    def free_stream(self, stream: Any) -> None: ...

    @abstractmethod
    def synchronize(self, stream: Any) -> None: ...

    @abstractmethod
    def pinned(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A page-locked host array (freed with free_pinned)."""

    @abstractmethod
    def free_pinned(self, array: np.ndarray) -> None:
        """Free an array from `pinned` or `mapped`."""

    @abstractmethod
    def mapped(self, shape: tuple[int, ...], dtype: Any) -> tuple[np.ndarray, int]:
        """A page-locked host array mapped into the device's address space, and the device pointer to it (what
        set_tensor_address takes). For a device whose `device_memory().zero_copy`; freed with free_pinned."""

    @abstractmethod
    def device_buffer(self, nbytes: int) -> DeviceBuffer: ...

    @abstractmethod
    def to_device(self, target: DeviceBuffer, source: np.ndarray, stream: Any) -> None: ...

    @abstractmethod
    def to_host(self, target: np.ndarray, source: DeviceBuffer, stream: Any) -> None: ...


class CudaPython(Cuda):
    """NVIDIA's cuda-python, runtime API (`cuda.bindings.runtime`; `cuda.cudart` before 12.6)."""

    binding = "cuda-python"

    def __init__(self, cudart: Any, device: int = 0):
        self.cudart, self.device = cudart, device
        self._pinned: dict[int, int] = {}  # id(array) -> host pointer

    def _call(self, name: str, *args: Any) -> Any:
        """Call a runtime function; its values, or one line for its error. cuda-python 11.x (JetPack 5's) raises
        RuntimeError from any call where libcuda cannot be loaded; 12 and later return an error code."""
        try:
            result = getattr(self.cudart, name)(*args)
        except RuntimeError as exc:
            raise EdgesegError(f"no usable CUDA GPU: {name} failed: {exc} (no NVIDIA driver is loaded)") from None
        return self._check(result, name)

    def _check(self, result: Any, call: str) -> Any:
        error, *values = result if isinstance(result, tuple) else (result,)
        if error != self.cudart.cudaError_t.cudaSuccess:
            _, name = self.cudart.cudaGetErrorName(error)
            _, text = self.cudart.cudaGetErrorString(error)
            raise EdgesegError(f"no usable CUDA GPU: {call} failed with {name.decode()} ({text.decode()})")
        return values[0] if len(values) == 1 else tuple(values) or None

    def gpu(self) -> GpuInfo:
        count = self._call("cudaGetDeviceCount")
        if count <= self.device:
            raise EdgesegError(f"no usable CUDA GPU: CUDA sees {count} device(s), not device {self.device}")
        properties = self._call("cudaGetDeviceProperties", self.device)
        name = properties.name.decode() if isinstance(properties.name, bytes) else str(properties.name)
        return GpuInfo(name.rstrip("\x00"), f"{properties.major}.{properties.minor}")

    def driver_version(self) -> str:
        version = self._call("cudaDriverGetVersion")  # e.g. 12060
        return f"{version // 1000}.{version % 1000 // 10}" if version else "none (no NVIDIA driver is loaded)"

    def activate(self) -> None:
        self._call("cudaSetDevice", self.device)

    def device_memory(self) -> DeviceMemory:
        attributes = self.cudart.cudaDeviceAttr
        integrated = self._call("cudaDeviceGetAttribute", attributes.cudaDevAttrIntegrated, self.device)
        can_map = self._call("cudaDeviceGetAttribute", attributes.cudaDevAttrCanMapHostMemory, self.device)
        return DeviceMemory(bool(integrated), bool(can_map))

    def release(self) -> None:
        pass  # the runtime API's primary context belongs to the process; resetting it would break other users

    def stream(self) -> Any:
        return self._call("cudaStreamCreate")

    def stream_handle(self, stream: Any) -> int:
        return int(stream)

    def free_stream(self, stream: Any) -> None:
        self._call("cudaStreamDestroy", stream)

    def synchronize(self, stream: Any) -> None:
        self._call("cudaStreamSynchronize", stream)

    def pinned(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        nbytes = _nbytes(shape, dtype)
        pointer = int(self._call("cudaMallocHost", max(nbytes, 1)))
        return self._host_array(pointer, shape, dtype)

    def mapped(self, shape: tuple[int, ...], dtype: Any) -> tuple[np.ndarray, int]:
        nbytes = _nbytes(shape, dtype)
        flags = self.cudart.cudaHostAllocMapped
        pointer = int(self._call("cudaHostAlloc", max(nbytes, 1), flags))
        array = self._host_array(pointer, shape, dtype)
        try:  # flags must be 0 (cudaHostGetDevicePointer's documentation); the device pointer may differ from it
            device = int(self._call("cudaHostGetDevicePointer", pointer, 0))
        except EdgesegError:
            self.free_pinned(array)
            raise
        return array, device

    def _host_array(self, pointer: int, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A numpy view of page-locked memory at `pointer`, remembered so free_pinned can give it back."""
        nbytes = _nbytes(shape, dtype)
        raw = (ctypes.c_byte * max(nbytes, 1)).from_address(pointer)
        array = np.frombuffer(raw, dtype=np.uint8, count=nbytes).view(dtype).reshape(shape)
        self._pinned[id(array)] = pointer
        return array

    def free_pinned(self, array: np.ndarray) -> None:
        pointer = self._pinned.pop(id(array), None)
        if pointer is not None:  # cudaFreeHost frees both cudaMallocHost's and cudaHostAlloc's memory
            self._call("cudaFreeHost", pointer)

    def device_buffer(self, nbytes: int) -> DeviceBuffer:
        pointer = int(self._call("cudaMalloc", max(nbytes, 1)))
        return DeviceBuffer(pointer, nbytes, lambda: self._call("cudaFree", pointer))

    def to_device(self, target: DeviceBuffer, source: np.ndarray, stream: Any) -> None:
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._call("cudaMemcpyAsync", target.pointer, source.ctypes.data, source.nbytes, kind, stream)

    def to_host(self, target: np.ndarray, source: DeviceBuffer, stream: Any) -> None:
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._call("cudaMemcpyAsync", target.ctypes.data, source.pointer, target.nbytes, kind, stream)


class PyCuda(Cuda):
    """pycuda, through the driver API and the device's retained primary context."""

    binding = "pycuda"

    def __init__(self, driver: Any, device: int = 0, libcuda: Any = None):
        """`libcuda` is the driver library (ctypes); loaded on first release when not given."""
        self.driver, self.libcuda = driver, libcuda
        try:
            driver.init()
            self.device = driver.Device(device)
        except Exception as exc:  # pycuda raises its own LogicError/RuntimeError without a driver or device
            raise EdgesegError(f"no usable CUDA GPU: {exc}") from None
        self.context: Any = None

    def gpu(self) -> GpuInfo:
        major, minor = self.device.compute_capability()
        return GpuInfo(self.device.name(), f"{major}.{minor}")

    def driver_version(self) -> str:
        version = self.driver.get_driver_version()
        return f"{version // 1000}.{version % 1000 // 10}"

    def activate(self) -> None:
        self.context = self.device.retain_primary_context()
        self.context.push()

    def release(self) -> None:
        """Pop, then release the retained primary context, and leave nothing current on this thread.

        pycuda's detach() of a context that is not current pushes it and calls cuDevicePrimaryCtxRelease,
        which by CUDA's documentation never pops; so the context is popped once more through the driver.
        """
        if self.context is None:
            return
        self.context.pop()
        self.context.detach()
        self.context = None
        _pop_current_context(self.libcuda or _load_libcuda())

    def device_memory(self) -> DeviceMemory:
        attribute = self.driver.device_attribute
        return DeviceMemory(
            bool(self.device.get_attribute(attribute.INTEGRATED)),
            bool(self.device.get_attribute(attribute.CAN_MAP_HOST_MEMORY)),
        )

    def stream(self) -> Any:
        return self.driver.Stream()

    def stream_handle(self, stream: Any) -> int:
        return int(stream.handle)

    def free_stream(self, stream: Any) -> None:
        pass  # pycuda destroys a Stream when it is collected

    def synchronize(self, stream: Any) -> None:
        stream.synchronize()

    def pinned(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        return self.driver.pagelocked_empty(shape, dtype)

    def free_pinned(self, array: np.ndarray) -> None:
        base = getattr(array, "base", None)
        if hasattr(base, "free"):
            base.free()

    def mapped(self, shape: tuple[int, ...], dtype: Any) -> tuple[np.ndarray, int]:
        """pagelocked_empty with host_alloc_flags.DEVICEMAP (cuMemHostAlloc's CU_MEMHOSTALLOC_DEVICEMAP); its
        HostAllocation's get_device_pointer() is cuMemHostGetDevicePointer. The retained primary context is the
        one the runtime API uses, for which mapping is always enabled."""
        array = self.driver.pagelocked_empty(shape, dtype, mem_flags=self.driver.host_alloc_flags.DEVICEMAP)
        return array, int(array.base.get_device_pointer())

    def device_buffer(self, nbytes: int) -> DeviceBuffer:
        allocation = self.driver.mem_alloc(max(nbytes, 1))
        return DeviceBuffer(int(allocation), nbytes, allocation.free)

    def to_device(self, target: DeviceBuffer, source: np.ndarray, stream: Any) -> None:
        self.driver.memcpy_htod_async(target.pointer, source, stream)

    def to_host(self, target: np.ndarray, source: DeviceBuffer, stream: Any) -> None:
        self.driver.memcpy_dtoh_async(target, source.pointer, stream)


def _nbytes(shape: tuple[int, ...], dtype: Any) -> int:
    return int(np.prod(shape)) * np.dtype(dtype).itemsize


def _load_libcuda() -> Any:
    try:
        return ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None


def _pop_current_context(libcuda: Any) -> None:
    """cuCtxPopCurrent through libcuda itself: pycuda keeps no handle on a context it has released."""
    if libcuda is None:
        return
    handle = ctypes.c_void_p()
    if libcuda.cuCtxGetCurrent(ctypes.byref(handle)) == 0 and handle.value:
        libcuda.cuCtxPopCurrent_v2(ctypes.byref(handle))


def import_cudart() -> Any:
    """cuda-python's runtime API module, by its 12.6+ path or its older one; None when not installed."""
    try:
        from cuda.bindings import runtime

        return runtime
    except ImportError:
        pass
    try:
        from cuda import cudart  # cuda-python before 12.6

        return cudart
    except ImportError:
        return None


def cuda_binding_installed() -> str | None:
    """Which CUDA binding would be used ("cuda-python", "pycuda"), without touching the GPU; None if neither."""
    if import_cudart() is not None:
        return "cuda-python"
    try:
        import pycuda.driver  # noqa: F401 - only whether it imports
    except ImportError:
        return None
    return "pycuda"


def open_cuda(device: int = 0) -> Cuda:
    """The CUDA interface for a device: cuda-python when installed, else pycuda; one clear line otherwise."""
    cudart = import_cudart()
    if cudart is not None:
        return CudaPython(cudart, device)
    try:
        import pycuda.driver as driver
    except ImportError:
        raise EdgesegError(f"no CUDA binding for Python is installed: {CUDA_INSTALL_HINT}") from None
    return PyCuda(driver, device)
