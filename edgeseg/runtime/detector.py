"""What instance and keypoint bundles share at run time: a graph with several or structured outputs on a backend
that returns them, and the sequential loop `edgeseg run` drives them with.

The loop is sequential (capture, infer, draw, write per frame): a file is read to its last frame, and a live
source hands over its newest frame each time. Each kind gives it one `analyse(frame, times)` that returns the
drawn picture and the Prediction the sinks store.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Tuple  # typing's forms: the alias below is evaluated on Python 3.8

import numpy as np

from edgeseg.bundle import Artifact, Bundle
from edgeseg.errors import EdgesegError
from edgeseg.runtime.backends import Backend, ONNXRuntimeBackend, open_backend
from edgeseg.runtime.frames import Frame, Prediction
from edgeseg.runtime.pipeline import RunSummary, StageTimes, close_all, stop_on_signals
from edgeseg.runtime.sinks import open_sinks
from edgeseg.runtime.sources import open_source
from edgeseg.runtime.tensors import frames_to_input


def refuse_triton(backend: str, what: str) -> None:
    """These bundles need every output of the graph (or its structured one); the Triton backend returns one tensor
    shaped as a class map."""
    if backend.startswith("triton://"):
        raise EdgesegError(f"{what} runs on onnxruntime or tensorrt so far, not through Triton")


class BundleModel:
    """A bundle's graph on any backend that returns every output (ONNX Runtime, TensorRT). It opens the backend it
    is given and closes it with `close()`."""

    what = "this bundle"  # how refusals name the kind

    def __init__(self, bundle: Bundle, backend: Backend):
        self.bundle, self.backend = bundle, backend.open()
        self.name = backend.artifact_name

    @classmethod
    def for_bundle(cls, bundle: Bundle, backend: str = "auto", precision: str = "best", threads: int | None = None,
                   dla_core: int | None = None) -> Any:  # fmt: skip
        """The artifact `edgeseg run` would pick for this backend and precision."""
        refuse_triton(backend, cls.what)
        return cls(bundle, open_backend(bundle, backend, precision, threads, dla_core=dla_core))

    @classmethod
    def for_file(cls, bundle: Bundle, path: Path, threads: int | None = None) -> Any:
        """An ONNX file of this bundle's graph on ONNX Runtime's CPU provider (a variant calibrate measures)."""
        return cls(bundle, ONNXRuntimeBackend(path, providers=["CPUExecutionProvider"], threads=threads))

    @property
    def artifact(self) -> Artifact:
        """The bundle's artifact this model runs."""
        return next(a for a in self.bundle.artifacts if Path(a.path).name == self.name)

    def close(self) -> None:
        self.backend.close()

    def model_input(self, image: np.ndarray) -> np.ndarray:
        """The graph input for one frame of any size: resized to the model's, then as the contract says."""
        return frames_to_input([image], self.bundle.input)


class SequentialRun:
    """What the pipeline's signal handling needs of a run: its summary, and a way to ask it to stop."""

    def __init__(self, summary: RunSummary):
        self.summary, self.stopped = summary, False

    def request_stop(self) -> None:
        self.stopped = True


Analyse = Callable[[Frame, StageTimes], Tuple[np.ndarray, Prediction]]


def run_sequential(options: Any, description: str, analyse: Analyse, closing: list[Any]) -> RunSummary:
    """Read, analyse, write each frame in turn until the source ends, --frames are written or a signal comes.
    `closing` holds what the run opened before (models), closed when it ends however it ends."""
    summary, times = RunSummary(backend=description), StageTimes()
    try:
        source = open_source(options.inputs[0], options.stream)
        try:
            sinks = open_sinks(options.outputs, source.fps or 30.0, options.save_mask, options.view)
        except BaseException:
            source.close()
            raise
    except BaseException:
        for model in closing:
            model.close()
        raise
    run, errors = SequentialRun(summary), []
    started = time.perf_counter()
    try:
        with stop_on_signals(run):
            while not run.stopped and (options.frames is None or summary.frames_written < options.frames):
                with times.stage("capture"):
                    frame = source.read()
                if frame is None:
                    break
                summary.frames_read += 1
                drawn, prediction = analyse(frame, times)
                summary.frames_processed += 1
                with times.stage("sink"):
                    for sink in sinks:
                        sink.write(drawn, prediction)
                summary.frames_written += 1
                times.add("latency", time.perf_counter() - frame.timestamp)
                summary.first_written = summary.first_written or time.perf_counter()
                summary.last_written = time.perf_counter()
    finally:
        close_all(sinks, [source], errors)
        for model in closing:
            model.close()
    if errors:
        raise errors[0]
    summary.seconds = time.perf_counter() - started
    summary.bad_frames, summary.gaps = source.bad_frames, list(source.gaps)
    summary.stages = times.summary()
    return summary
