"""TensorRT backend: a deserialised engine, CUDA buffers, one stream, the name-based I/O API.

The name-based API (num_io_tensors, get_tensor_name, set_input_shape, set_tensor_address,
execute_async_v3) exists from TensorRT 8.5 to 11, unlike the binding-index API 10.0 removed.
CUDA comes through edgeseg.engines.cuda (cuda-python or pycuda). `open()` makes the device usable
on the calling thread (the pipeline calls it on the inference thread) and `close()` releases it there.

Two ways to move a frame, decided once per open from the device's attributes:
- discrete GPU: page-locked host buffers and device buffers, an async copy in, execute, an async copy out
  of each wanted output, then a stream sync;
- integrated GPU (a Jetson, where CPU and GPU share one DRAM; jetson-inference maps every image buffer):
  TensorRT's inputs and outputs are bound to mapped page-locked host memory, so the frame is written where
  TensorRT reads it and no copy is made; the stream is synchronised before the outputs are read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.bundle import Artifact, Bundle
from edgeseg.errors import EdgesegError
from edgeseg.runtime.backends.base import Backend, TensorSpec


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, bundle: Bundle, artifact: Artifact, trt: Any = None, cuda: Any = None):
        """`trt` and `cuda` default to the installed tensorrt module and CUDA binding (tests pass their own)."""
        super().__init__()
        self.bundle, self.artifact = bundle, artifact
        self.model_path = bundle.artifact_path(artifact)
        self.trt, self.cuda = trt, cuda
        self.active = False
        # name -> (page-locked host array, device buffer; None where the host array is mapped: zero-copy)
        self.buffers: dict[str, tuple[np.ndarray, Any]] = {}
        self.zero_copy = False

    def _open(self) -> None:
        from edgeseg.engines.compat import check_engine, import_tensorrt
        from edgeseg.engines.cuda import open_cuda

        self.trt = self.trt or import_tensorrt()
        self.cuda = self.cuda or open_cuda()
        check_engine(self.artifact, self.trt, self.cuda.gpu(), self.bundle)
        self.cuda.activate()
        self.active = True
        try:
            self.zero_copy = self.cuda.device_memory().zero_copy
            self._load(self.trt)
        except BaseException:
            self._close()
            raise

    def _load(self, trt: Any) -> None:
        from edgeseg.engines.compat import create_runtime

        logger = trt.Logger(trt.Logger.WARNING)
        trt.init_libnvinfer_plugins(logger, "")  # as Polygraphy's EngineFromBytes does: plugin layers deserialise
        self.runtime = create_runtime(trt, logger)
        dla_core = self.artifact.extra.get("dla_core")
        if dla_core is not None:  # an engine built for a DLA core runs on the core the Runtime names (default 0)
            self.runtime.DLA_core = int(dla_core)
        self.engine = self.runtime.deserialize_cuda_engine(Path(self.model_path).read_bytes())
        if self.engine is None:  # TensorRT logs why and returns None on a damaged or foreign plan
            raise EdgesegError(
                f"TensorRT {trt.__version__} cannot load {self.artifact.path}: the file is damaged or not an engine; "
                f"rebuild with: edgeseg build {self.bundle.root} --precision {self.artifact.precision}"
            )
        self.context = self.engine.create_execution_context()
        self.stream = self.cuda.stream()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_names = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.output_names = [n for n in names if n not in self.input_names]
        self.inputs = [self._spec(n) for n in self.input_names]
        self.outputs = [self._spec(n) for n in self.output_names]
        self.batch = None

    def _spec(self, name: str) -> TensorSpec:
        shape = tuple(d if d >= 0 else None for d in self.engine.get_tensor_shape(name))
        return TensorSpec(name, shape, np.dtype(self.trt.nptype(self.engine.get_tensor_dtype(name))))

    def profile_range(self, name: str) -> tuple[int, int]:
        low, _, high = self.engine.get_tensor_profile_shape(name, 0)
        return low[0], high[0]

    def _prepare(self, batch: int) -> None:
        """Shapes and buffers for a batch size; reallocated only when the batch changes."""
        if batch == self.batch:
            return
        name = self.input_names[0]
        if self.inputs[0].shape[0] is None:
            low, high = self.profile_range(name)
            if not low <= batch <= high:
                raise EdgesegError(
                    f"batch {batch} is outside the engine's profile ({low}..{high}); rebuild with: edgeseg build "
                    f"{self.bundle.root} --batch {low},{batch},{max(high, batch)}"
                )
            shape = (batch, *self.inputs[0].shape[1:])
            if not self.context.set_input_shape(name, shape):  # False: TensorRT refused it (and logged why)
                raise EdgesegError(
                    f"TensorRT refused input shape {shape} for {name} (profile 0 allows batch {low}..{high}); "
                    f"rebuild with: edgeseg build {self.bundle.root} --batch {low},{batch},{max(high, batch)}"
                )
        elif batch != self.inputs[0].shape[0]:
            raise EdgesegError(f"the engine takes batch {self.inputs[0].shape[0]}, not {batch}")
        self._free()
        for tensor in self.input_names + self.output_names:
            shape = tuple(self.context.get_tensor_shape(tensor))
            dtype = self.trt.nptype(self.engine.get_tensor_dtype(tensor))
            if self.zero_copy:
                host, pointer = self.cuda.mapped(shape, dtype)
                self.buffers[tensor] = (host, None)
            else:
                host = self.cuda.pinned(shape, dtype)
                device = self.cuda.device_buffer(host.nbytes)
                self.buffers[tensor] = (host, device)
                pointer = device.pointer
            self.context.set_tensor_address(tensor, pointer)
        self.batch = batch

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        return self._execute(batch, self.output_names[:1])[self.output_names[0]]

    def _infer_outputs(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return self._execute(batch, self.output_names)

    def _execute(self, batch: np.ndarray, wanted: list[str]) -> dict[str, np.ndarray]:
        """Copy the batch in, run, copy the `wanted` outputs back (only those cross the bus); on an integrated
        GPU the batch is written into the mapped input and the outputs are read from where TensorRT wrote them.
        The returned arrays are copies: the next frame reuses the buffers."""
        self._prepare(batch.shape[0])
        host_in, device_in = self.buffers[self.input_names[0]]
        np.copyto(host_in, batch, casting="no")
        if not self.zero_copy:
            self.cuda.to_device(device_in, host_in, self.stream)
        if not self.context.execute_async_v3(stream_handle=self.cuda.stream_handle(self.stream)):
            raise EdgesegError(f"TensorRT execution of {self.artifact.path} failed (see the TensorRT log above)")
        if not self.zero_copy:
            for name in wanted:
                host_out, device_out = self.buffers[name]
                self.cuda.to_host(host_out, device_out, self.stream)
        self.cuda.synchronize(self.stream)  # zero-copy too: TensorRT's outputs are written once the stream is done
        return {name: self.buffers[name][0].copy() for name in wanted}

    def _free(self) -> None:
        for host, device in self.buffers.values():
            if device is not None:
                device.free()
            self.cuda.free_pinned(host)
        self.buffers.clear()

    def _close(self) -> None:
        if not self.active:
            return
        self._free()
        if getattr(self, "stream", None) is not None:
            self.cuda.free_stream(self.stream)
        for attribute in ("context", "engine", "runtime", "stream"):
            setattr(self, attribute, None)
        self.cuda.release()
        self.active = False

    @property
    def artifact_name(self) -> str:
        return Path(self.artifact.path).name

    def describe(self) -> str:
        version, gpu = self.artifact.tools.get("tensorrt"), self.artifact.extra.get("gpu")
        path = ", mapped zero-copy" if self.zero_copy else ""
        return f"tensorrt {version} on {gpu} ({self.artifact_name}{path})"
