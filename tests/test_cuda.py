"""The CUDA interface (edgeseg.engines.cuda): cuda-python for real without a GPU, pycuda's release order, and on a
GPU machine real pinned and device buffers."""

from __future__ import annotations

import ctypes
import sys

import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli

from edgeseg.engines import cuda as cuda_module
from edgeseg.engines.cuda import CudaPython, PyCuda, import_cudart, open_cuda
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
