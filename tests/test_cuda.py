"""The CUDA interface (edgeseg.engines.cuda): cuda-python for real without a GPU, pycuda's release order, the
zero-copy path of an integrated GPU (through RecordingCudart, a test double whose every name, parameter and enum
value is checked here against the installed cuda-bindings), doctor's line for each path, and on a GPU machine real
pinned, mapped and device buffers."""

from __future__ import annotations

import ctypes
import enum
import inspect
import sys

import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli
from tensorrt_double import RecordingCudart

from edgeseg.engines import cuda as cuda_module
from edgeseg.engines.cuda import NO_CUDA_PATH, CudaPython, DeviceMemory, PyCuda, import_cudart, open_cuda
from edgeseg.errors import EdgesegError

cudart = import_cudart()
needs_cuda_python = pytest.mark.skipif(cudart is None, reason="cuda-python (cuda-bindings) is not installed")


def device_count() -> int:
    if cudart is None:
        return 0
    error, count = cudart.cudaGetDeviceCount()
    return count if error == cudart.cudaError_t.cudaSuccess else 0


@needs_cuda_python
@pytest.mark.skipif(device_count() > 0, reason="this machine has a GPU; the no-device path is for machines without")
def test_cuda_python_without_a_device_says_so_in_one_line():
    """Real cuda-bindings on a machine with no NVIDIA driver: its runtime API answers cudaErrorInsufficientDriver."""
    cuda = open_cuda()
    assert isinstance(cuda, CudaPython) and cuda.binding == "cuda-python"
    assert cuda.driver_version() == "none (no NVIDIA driver is loaded)"
    for call in (cuda.gpu, cuda.activate, cuda.stream):
        with pytest.raises(EdgesegError) as raised:
            call()
        message = str(raised.value)
        assert message.startswith("no usable CUDA GPU: ") and "cudaErrorInsufficientDriver" in message
        assert "\n" not in message


@needs_cuda_python
@pytest.mark.skipif(device_count() > 0, reason="this machine has a GPU")
def test_doctor_reports_the_cuda_binding_and_no_device(capsys):
    code, out, _ = run_cli(capsys, "doctor")
    rows = {line.split("  ")[0]: line for line in out.splitlines()}
    assert code == 0 and "cuda-python" in rows["cuda binding"]
    assert "cudaErrorInsufficientDriver" in rows["gpu"] and "no NVIDIA driver" in rows["cuda driver"]


def test_no_cuda_binding_is_one_line_naming_both(monkeypatch, capsys):
    monkeypatch.setattr(cuda_module, "import_cudart", lambda: None)
    monkeypatch.setitem(sys.modules, "pycuda", None)  # import pycuda.driver now raises ImportError
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    with pytest.raises(EdgesegError) as raised:
        open_cuda()
    message = str(raised.value)
    assert message.startswith("no CUDA binding for Python is installed")
    assert "cuda-bindings>=12,<13" in message and "nvcc on PATH" in message and "2025.1.2" in message


class PyCudaContextDouble:
    """TEST DOUBLE for pycuda's primary-context object, following pycuda's C++ (src/cpp/cuda.hpp): pop() pops the
    thread's CUDA context stack; detach() of a context that is not current pushes it (cuCtxPushCurrent) and calls
    cuDevicePrimaryCtxRelease, which by CUDA's documentation never pops."""

    def __init__(self, stack, released):
        self.stack, self.released = stack, released

    def push(self):
        self.stack.append("primary")

    def pop(self):
        self.stack.pop()

    def detach(self):
        if not self.stack or self.stack[-1] != "primary":
            self.stack.append("primary")
        self.released.append(True)


class LibcudaDouble:
    """TEST DOUBLE for libcuda's cuCtxGetCurrent / cuCtxPopCurrent_v2 over the same stack."""

    def __init__(self, stack):
        self.stack = stack

    def cuCtxGetCurrent(self, pointer):  # noqa: N802 - the driver API's name
        ctypes.cast(pointer, ctypes.POINTER(ctypes.c_void_p))[0] = 1 if self.stack else None
        return 0

    def cuCtxPopCurrent_v2(self, pointer):  # noqa: N802 - the driver API's name
        self.stack.pop()
        return 0


def test_pycuda_release_leaves_no_context_current():
    stack, released = [], []
    driver = type("Driver", (), {"init": staticmethod(lambda: None)})()
    device = type("Device", (), {"retain_primary_context": lambda self: PyCudaContextDouble(stack, released)})()
    driver.Device = lambda index: device
    cuda = PyCuda(driver, libcuda=LibcudaDouble(stack))
    cuda.activate()
    assert stack == ["primary"]
    cuda.release()
    assert released == [True] and stack == []  # popped, released, and not left current on the thread


def test_build_with_real_cuda_python_and_no_device_is_one_line(tiny_bundle, capsys, monkeypatch):
    """The TensorRT module is the recording TEST DOUBLE here; cuda-python is the real one, answering "no driver"."""
    if cudart is None or device_count() > 0:
        pytest.skip("needs cuda-python on a machine without a GPU")
    from tensorrt_double import RecordingTensorRT

    # sys.modules: the package re-exports a function named `build`, which hides the module of that name
    monkeypatch.setattr(sys.modules["edgeseg.engines.build"], "import_tensorrt", lambda: RecordingTensorRT("10.3.0"))
    code, _, err = run_cli(capsys, "build", tiny_bundle)
    assert_one_line_error(code, err, "no usable CUDA GPU: cudaGetDeviceCount failed with cudaErrorInsufficientDriver")


@needs_cuda_python
@pytest.mark.skipif(device_count() == 0, reason="needs an NVIDIA GPU (cuda-python sees none here)")
def test_real_buffers_and_async_copies_of_a_1080p_frame():
    cuda = open_cuda()
    cuda.activate()
    stream = cuda.stream()
    frame = np.random.default_rng(0).integers(0, 256, (1, 1080, 1920, 3), np.uint8)
    host_in, host_out = cuda.pinned(frame.shape, np.uint8), cuda.pinned(frame.shape, np.uint8)
    device = cuda.device_buffer(frame.nbytes)
    np.copyto(host_in, frame)
    cuda.to_device(device, host_in, stream)
    cuda.to_host(host_out, device, stream)
    cuda.synchronize(stream)
    assert np.array_equal(host_out, frame)
    device.free()
    cuda.free_pinned(host_in)
    cuda.free_pinned(host_out)
    cuda.free_stream(stream)
    cuda.release()


# -- zero-copy on an integrated GPU ------------------------------------------------------------------------
def real_call_problems(double: RecordingCudart) -> list[str]:
    """Each call the code made on the double, taken to the real runtime module: the function exists, its real
    signature takes these arguments, and every enum argument is the real enum member of that name and value."""
    problems = []
    for name, *args in double.calls:
        real = getattr(cudart, name, None)
        if real is None:
            problems.append(f"{name}: not in the real bindings")
            continue
        try:
            inspect.signature(real).bind(*args)
        except TypeError as exc:
            problems.append(f"{name}{tuple(args)}: does not fit the real signature {inspect.signature(real)}: {exc}")
        for arg in args:
            if isinstance(arg, enum.IntEnum):
                real_member = getattr(getattr(cudart, type(arg).__name__, None), arg.name, None)
                if real_member is None or int(real_member) != int(arg):
                    problems.append(f"{name}: {type(arg).__name__}.{arg.name}={int(arg)}, real {real_member!r}")
    return problems


@needs_cuda_python
def test_the_cudart_double_has_the_real_names_parameters_and_values():
    double = RecordingCudart(integrated=True)
    functions = [n for n, v in vars(RecordingCudart).items() if n.startswith("cuda") and callable(v)]
    for name in functions:
        mine = [p for p in inspect.signature(getattr(RecordingCudart, name)).parameters if p != "self"]
        assert list(inspect.signature(getattr(cudart, name)).parameters) == mine, name
    for enum_name in ("cudaError_t", "cudaDeviceAttr", "cudaMemcpyKind"):
        for member in getattr(double, enum_name):
            assert int(getattr(getattr(cudart, enum_name), member.name)) == int(member), f"{enum_name}.{member.name}"
    assert cudart.cudaHostAllocMapped == double.cudaHostAllocMapped == 2
    assert cudart.cudaHostAllocDefault == double.cudaHostAllocDefault == 0
    assert int(cudart.cudaDeviceAttr.cudaDevAttrIntegrated) == 18
    assert int(cudart.cudaDeviceAttr.cudaDevAttrCanMapHostMemory) == 19


@needs_cuda_python
def test_the_real_bindings_answer_the_zero_copy_calls_without_a_driver():
    """The calls the zero-copy path makes exist in the real module and, with no driver, return an error code (a
    one-line EdgesegError through CudaPython) rather than raising."""
    if device_count() > 0:
        pytest.skip("this machine has a GPU")
    cuda = CudaPython(cudart)
    for call in (cuda.device_memory, lambda: cuda.mapped((4,), np.uint8)):
        with pytest.raises(EdgesegError, match="^no usable CUDA GPU: cuda(DeviceGetAttribute|HostAlloc) failed with "
                           "cudaErrorInsufficientDriver"):  # fmt: skip
            call()


@needs_cuda_python
def test_an_integrated_device_gets_mapped_memory_and_its_device_pointer():
    double = RecordingCudart(integrated=True)
    cuda = CudaPython(double)
    memory = cuda.device_memory()
    assert memory == DeviceMemory(integrated=True, can_map_host=True) and memory.zero_copy
    assert [c[1].name for c in double.called("cudaDeviceGetAttribute")] == [
        "cudaDevAttrIntegrated",
        "cudaDevAttrCanMapHostMemory",
    ]
    array, device_pointer = cuda.mapped((2, 3), np.float32)
    (_, size, flags), = double.called("cudaHostAlloc")  # fmt: skip
    assert size == 24 and flags == cudart.cudaHostAllocMapped
    host_pointer = array.ctypes.data
    assert double.called("cudaHostGetDevicePointer") == [("cudaHostGetDevicePointer", host_pointer, 0)]
    assert device_pointer == double.device_of[host_pointer] != host_pointer  # what cudaHostGetDevicePointer gave
    array[:] = 7.5  # the CPU's write is what the device sees at its pointer (the double's second mapping)
    seen = np.ctypeslib.as_array((ctypes.c_float * 6).from_address(device_pointer))
    assert (seen == 7.5).all()
    del seen
    cuda.free_pinned(array)
    assert double.called("cudaFreeHost") == [("cudaFreeHost", host_pointer)] and not double.live
    assert not double.called("cudaMallocHost") and not double.called("cudaMalloc")
    assert real_call_problems(double) == []


@needs_cuda_python
@pytest.mark.parametrize("integrated,can_map", [(False, True), (True, False)])
def test_a_discrete_device_or_one_that_cannot_map_is_not_zero_copy(integrated, can_map):
    double = RecordingCudart(integrated=integrated, can_map_host=can_map)
    assert not CudaPython(double).device_memory().zero_copy
    assert real_call_problems(double) == []


def test_a_failed_device_pointer_frees_the_mapped_memory():
    double = RecordingCudart(integrated=True, can_map_host=False)  # the double then refuses the device pointer
    with pytest.raises(EdgesegError, match="cudaHostGetDevicePointer failed with cudaErrorInvalidValue"):
        CudaPython(double).mapped((8,), np.uint8)
    assert [c[0] for c in double.calls] == ["cudaHostAlloc", "cudaHostGetDevicePointer", "cudaFreeHost"]
    assert not double.live


class PyCudaMappedDouble:
    """TEST DOUBLE for the parts of pycuda.driver the zero-copy path uses, named as in pycuda's
    src/wrapper/wrap_cudadrv.cpp: device_attribute.INTEGRATED / CAN_MAP_HOST_MEMORY, Device.get_attribute,
    host_alloc_flags.DEVICEMAP, pagelocked_empty(shape, dtype, order="C", mem_flags=0), and the array's base
    (a HostAllocation) with get_device_pointer(). pycuda is not installed here, so nothing is checked against it."""

    device_attribute = type("device_attribute", (), {"INTEGRATED": 18, "CAN_MAP_HOST_MEMORY": 19})
    host_alloc_flags = type("host_alloc_flags", (), {"DEVICEMAP": 2})

    def __init__(self, integrated):
        self.integrated, self.allocations = integrated, []
        driver = self

        class Device:
            def __init__(self, index):
                pass

            def get_attribute(self, attribute):
                return {18: int(driver.integrated), 19: 1}[attribute]

        self.Device = Device

    def init(self):
        pass

    def pagelocked_empty(self, shape, dtype, order="C", mem_flags=0):
        self.allocations.append(mem_flags)
        driver = self

        class HostAllocation(bytearray):
            def get_device_pointer(self):
                return 0xD000

            def free(self):
                driver.allocations.append("freed")

        allocation = HostAllocation(int(np.prod(shape)) * np.dtype(dtype).itemsize)
        return np.ndarray(shape, dtype, buffer=allocation, order=order)  # as pycuda's: the allocation is its base


def test_pycuda_maps_page_locked_memory_on_an_integrated_device():
    driver = PyCudaMappedDouble(integrated=True)
    cuda = PyCuda(driver, libcuda=LibcudaDouble([]))
    assert cuda.device_memory().zero_copy
    array, pointer = cuda.mapped((4, 4), np.uint8)
    assert pointer == 0xD000 and array.shape == (4, 4) and driver.allocations == [2]
    cuda.free_pinned(array)
    assert driver.allocations == [2, "freed"]
    assert not PyCuda(PyCudaMappedDouble(integrated=False)).device_memory().zero_copy


def doctor_rows(capsys, monkeypatch, cuda) -> dict[str, str]:
    monkeypatch.setattr(cuda_module, "open_cuda", lambda device=0: cuda)
    monkeypatch.setattr(cuda_module, "cuda_binding_installed", lambda: "cuda-python")
    code, out, _ = run_cli(capsys, "doctor")
    assert code == 0
    return {line.split("  ")[0]: line for line in out.splitlines()}


def test_doctor_says_an_integrated_gpu_takes_the_mapped_zero_copy_path(capsys, monkeypatch):
    rows = doctor_rows(capsys, monkeypatch, CudaPython(RecordingCudart(integrated=True, name="Orin")))
    assert rows["tensorrt buffers"].split("  ")[-1].strip() == (
        "mapped zero-copy: Orin is integrated (CPU and GPU share DRAM); TensorRT reads and writes page-locked "
        "mapped host memory, no copies per frame"
    )


def test_doctor_says_a_discrete_gpu_takes_the_copies(capsys, monkeypatch):
    cuda = CudaPython(RecordingCudart(integrated=False, name="NVIDIA H200", compute_capability=(9, 0)))
    rows = doctor_rows(capsys, monkeypatch, cuda)
    assert rows["tensorrt buffers"].split("  ")[-1].strip() == (
        "copies: NVIDIA H200 is discrete; page-locked host buffers, a host-to-device and a device-to-host async "
        "copy per frame"
    )


def test_doctor_without_cuda_says_no_tensorrt_run(capsys, monkeypatch):
    monkeypatch.setattr(cuda_module, "cuda_binding_installed", lambda: None)
    code, out, _ = run_cli(capsys, "doctor")
    rows = {line.split("  ")[0]: line for line in out.splitlines()}
    assert code == 0 and rows["tensorrt buffers"].endswith(NO_CUDA_PATH)
    if cudart is not None and device_count() == 0:  # the real bindings, no driver: the same line
        monkeypatch.undo()
        code, out, _ = run_cli(capsys, "doctor")
        rows = {line.split("  ")[0]: line for line in out.splitlines()}
        assert code == 0 and rows["tensorrt buffers"].endswith(NO_CUDA_PATH)


@needs_cuda_python
@pytest.mark.skipif(device_count() == 0, reason="needs an NVIDIA GPU (cuda-python sees none here)")
def test_real_mapped_memory_is_what_the_device_reads():
    """Real cudaHostAlloc(cudaHostAllocMapped) + cudaHostGetDevicePointer on whatever GPU this is (discrete GPUs
    can map host memory too): a device-to-device copy from the device pointer reads the host array's bytes."""
    cuda = open_cuda()
    cuda.activate()
    if not cuda.device_memory().can_map_host:
        pytest.skip("this GPU cannot map host memory")
    stream = cuda.stream()
    frame = np.random.default_rng(1).integers(0, 256, (1, 64, 64, 3), np.uint8)
    mapped, pointer = cuda.mapped(frame.shape, np.uint8)
    np.copyto(mapped, frame)
    device = cuda.device_buffer(frame.nbytes)
    kind = cudart.cudaMemcpyKind.cudaMemcpyDeviceToDevice
    cuda._check(cudart.cudaMemcpyAsync(device.pointer, pointer, frame.nbytes, kind, stream), "cudaMemcpyAsync")
    back = cuda.pinned(frame.shape, np.uint8)
    cuda.to_host(back, device, stream)
    cuda.synchronize(stream)
    assert np.array_equal(back, frame)
    for array in (mapped, back):
        cuda.free_pinned(array)
    device.free()
    cuda.free_stream(stream)
    cuda.release()
