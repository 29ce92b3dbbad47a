"""A bundle's graph on a backend, answering through its head; and the sequential loop that runs instance and keypoint
bundles (until the threaded pipeline runs every head).

`pick_backend` is the one choice of artifact for `run`, `--also` and the Python API: open_backend's, and on a CPU it
passes over FP16 as open_backend already passes over an INT8 form no faster than FP32.

The loop is sequential (capture, infer, draw, write per frame): a file is read to its last frame, and a live
source hands over its newest frame each time.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable, Tuple  # typing's forms: the alias below is evaluated on Python 3.8

import numpy as np

from edgeseg.bundle import Artifact, Bundle
from edgeseg.errors import EdgesegError
from edgeseg.runtime.backends import Backend, ONNXRuntimeBackend, TritonOptions, open_backend
from edgeseg.runtime.frames import Frame, Prediction
from edgeseg.runtime.heads import Head, Result, head_for
from edgeseg.runtime.heads.keypoints import KeypointSpec
from edgeseg.runtime.pipeline import RunSummary, StageTimes, close_all, stop_on_signals
from edgeseg.runtime.sinks import open_sinks
from edgeseg.runtime.sinks.base import Sink
from edgeseg.runtime.sources import open_source
from edgeseg.runtime.tensors import frames_to_input, pad_batch, resize_frame


def refuse_triton(backend: str, what: str) -> None:
    """These bundles need every output of the graph (or its structured one); the Triton backend returns one tensor
    shaped as a class map."""
    if backend.startswith("triton://"):
        raise EdgesegError(f"{what} runs on onnxruntime or tensorrt so far, not through Triton")


def pick_backend(bundle: Bundle, backend: str = "auto", precision: str = "best", threads: int | None = None,
                 triton: TritonOptions | None = None, dla_core: int | None = None) -> Backend:  # fmt: skip
    """The backend and artifact a run takes (not yet open): open_backend's choice, except that `best` on ONNX
    Runtime's CPU provider passes over an FP16 graph that calibrate did not measure faster than FP32 there (ONNX
    Runtime's CPU kernels run FP16 at FP32's speed or slower: 1.03x measured)."""
    net = open_backend(bundle, backend, precision, threads, triton, dla_core)
    if precision != "best" or not isinstance(net, ONNXRuntimeBackend) or not net.runs_on_cpu:
        return net
    artifact = artifact_named(bundle, net.model_path.name)
    if artifact is None or artifact.precision != "fp16" or artifact.extra.get("cpu_latency_ratio", 1.0) < 1.0:
        return net
    print(f"edgeseg: note: --precision best passes over {artifact.path} (FP16 is no faster than FP32 on ONNX "
          "Runtime's CPU provider)", file=sys.stderr)  # fmt: skip
    return open_backend(bundle, backend, "fp32", threads, triton, dla_core)


def artifact_named(bundle: Bundle, name: str) -> Artifact | None:
    return next((a for a in bundle.artifacts if Path(a.path).name == name), None)


class BundleModel:
    """A bundle's graph on a backend, answering through the head of its kind. It opens the backend it is given
    and closes it with `close()`."""

    what = "this bundle"  # how refusals name the kind
    infer_stage = "infer"  # the stage its inference is timed as

    def __init__(self, bundle: Bundle, backend: Backend, options: Any = None):
        self.head: Head = head_for(bundle, options)
        self.bundle, self.backend = bundle, backend.open()
        self.name = backend.artifact_name

    @classmethod
    def for_bundle(cls, bundle: Bundle, backend: str = "auto", precision: str = "best", threads: int | None = None,
                   dla_core: int | None = None, options: Any = None,
                   triton: TritonOptions | None = None) -> Any:  # fmt: skip
        """The artifact `edgeseg run` would pick for this backend and precision."""
        return cls(bundle, pick_backend(bundle, backend, precision, threads, triton, dla_core), options)

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

    def answer(self, image: np.ndarray, times: StageTimes, feed: np.ndarray | None = None,
               frame_size: tuple[int, int] | None = None) -> Result:  # fmt: skip
        """One frame's Result at `frame_size` (the image's own by default); `feed` is its graph input where the
        caller made it already."""
        if feed is None:
            with times.stage("preprocess"):
                feed = self.model_input(image)
        with times.stage(self.infer_stage):
            outputs = self.head.infer(self.backend, feed)
        with times.stage("postprocess"):
            return self.head.decode(outputs, [frame_size or image.shape[:2]])[0]

    def answers(self, images: list[np.ndarray]) -> list[Result]:
        """Results for several frames, in batches of the graph's (the last padded), one call each where the head
        decodes a batch; a detector, whose graph answers one frame, gets one call per frame."""
        size = 1 if self.head.all_outputs else self.backend.batch_size
        results: list[Result] = []
        for start in range(0, len(images), size):
            chunk = images[start : start + size]
            outputs = self.head.infer(self.backend, frames_to_input(pad_batch(chunk, size), self.bundle.input))
            results.extend(self.head.decode(outputs, [image.shape[:2] for image in chunk])[: len(chunk)])
        return results

    def detect(self, image: np.ndarray, times: StageTimes, feed: np.ndarray | None = None) -> Any:
        """The head's own answer for one frame (detections, peaks, class maps), as bench and calibration use it."""
        return self.answer(image, times, feed).answer


class InstanceDetector(BundleModel):
    """An instance graph: frames in, detections at frame resolution out."""

    what = "an instance bundle"


class KeypointDetector(BundleModel):
    """A keypoint graph: frames in, (K, peaks, 3) of x, y in frame pixels and confidence out."""

    what = "a keypoint bundle"

    @property
    def spec(self) -> KeypointSpec:
        return self.head.spec


class Segmentation(BundleModel):
    """The `--also` bundle: a semantic model taking the same resized frame, drawn as the overlay under the points.
    It runs its best precision (the lowest that met its accuracy bar): --precision chooses the keypoint model's."""

    infer_stage = "infer also"

    def __init__(self, bundle: Bundle, options: Any):
        backend = pick_backend(bundle, options.backend, "best", options.threads, dla_core=options.dla_core)
        super().__init__(bundle, backend, options)
        self.overlay = self.head.overlay

    def class_map(self, resized: np.ndarray, times: StageTimes) -> tuple[np.ndarray, np.ndarray | None]:
        """The class map and logits (where the overlay upsamples them) at model resolution."""
        answer = self.answer(resized, times).answer
        return answer.class_map, answer.logits


class SequentialRun:
    """What the pipeline's signal handling needs of a run: its summary, and a way to ask it to stop."""

    def __init__(self, summary: RunSummary):
        self.summary, self.stopped = summary, False

    def request_stop(self) -> None:
        self.stopped = True


Analyse = Callable[[Frame, StageTimes], Tuple[np.ndarray, Prediction]]


def run_sequential(options: Any, description: str, analyse: Analyse, closing: list[Any],
                   tap: Sink | None = None) -> RunSummary:  # fmt: skip
    """Read, analyse, write each frame in turn until the source ends, --frames are written or a signal comes.
    `closing` holds what the run opened before (models), closed when it ends however it ends; `tap` is a sink
    beside the outputs (the Python API's stream)."""
    summary, times = RunSummary(backend=description), StageTimes()
    try:
        source = open_source(options.inputs[0], options.stream)
        try:
            sinks = open_sinks(options.outputs, source.fps or 30.0, options.save_mask, options.view)
            sinks += [tap] if tap is not None else []
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
                run.stopped = run.stopped or any(sink.stop_requested for sink in sinks)
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


def run_model(bundle: Bundle, options: Any, tap: Sink | None = None) -> RunSummary:
    """`edgeseg run` in the sequential loop, for any head: every frame of a file, the newest of a live source; with
    --also, a semantic bundle's answer for the same resized frame drawn under this one's."""
    model = BundleModel.for_bundle(bundle, options.backend, options.precision, options.threads, options.dla_core,
                                   options)  # fmt: skip
    try:
        under = Segmentation(Bundle.load(options.also), options) if getattr(options, "also", None) else None
    except BaseException:
        model.close()
        raise
    head, size = model.head, bundle.input.size

    def analyse(frame: Frame, times: StageTimes) -> tuple[np.ndarray, Prediction]:
        with times.stage("preprocess"):
            resized = resize_frame(frame.image, size)
            feed = frames_to_input([resized], bundle.input)
        result = model.answer(frame.image, times, feed)
        if under is not None:
            result.under = under.answer(resized, times, frame_size=frame.image.shape[:2])
        with times.stage("overlay"):
            drawn = head.draw(frame.image, result)
        return drawn, head.prediction(frame, result, options.save_mask)

    closing = [model] + ([under] if under is not None else [])
    description = model.backend.describe() + (f" + {under.backend.describe()} (--also)" if under else "")
    return run_sequential(options, description, analyse, closing, tap)
