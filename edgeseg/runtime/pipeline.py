"""The live pipeline: capture, inference and overlay+sinks on their own threads, every stage timed.

    source --[capture thread: read, resize/normalise]--> frames --[inference thread: infer, argmax]-->
        predictions --[main thread]--> overlay -> sinks

Live sources hand over only their newest frame (latency over completeness); files, folders and
synthetic scenes go through a bounded queue that blocks, so they never lose a frame. The backend
is opened on the inference thread because CUDA contexts belong to the thread that made them.
A stop request (Ctrl-C, SIGTERM, 'q' in a window) stops capture; what was captured is still
inferred, drawn and written, then the sinks close, so a recording holds every processed frame.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import queue
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np

from edgeseg.bundle import InputContract, OutputContract
from edgeseg.runtime.backends.base import Backend
from edgeseg.runtime.figures import RunSummary, StageTimes, percentiles_ms  # noqa: F401 - bench.rows imports it here
from edgeseg.runtime.frames import Frame, Prediction
from edgeseg.runtime.overlay import Overlay
from edgeseg.runtime.sinks.base import Sink
from edgeseg.runtime.sources import Source, StreamOptions
from edgeseg.runtime.tensors import frames_to_input, output_to_class_maps, pad_batch

END = object()  # end-of-stream marker passed down the queues
POLL_SECONDS = 0.1


class LatestFrame:
    """A one-slot hand-over for live sources: a new frame replaces the one not yet taken."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.item: Any = None
        self.closed = False
        self.dropped = 0

    def put(self, item: Any) -> None:
        with self.condition:
            if item is END:
                self.closed = True
            else:
                self.dropped += self.item is not None
                self.item = item
            self.condition.notify()

    def get(self, timeout: float) -> Any:
        with self.condition:
            if self.item is None and not self.closed:
                self.condition.wait(timeout)
            if self.item is not None:
                item, self.item = self.item, None
                return item
            if self.closed:
                return END
            raise queue.Empty


def source_options(backend: Backend, options: StreamOptions | None = None) -> StreamOptions:
    """How a pipeline around `backend` opens its source. With inference on the CPU, a video file is
    decoded on one thread: it already has the capture thread to itself, and FFmpeg's extra decoder
    threads would only contend for the cores inference needs (720p MPEG-4: 2.8 -> 2.2 CPU-ms per
    frame; demo-driving pipelined 181 -> 198 FPS on 2 cores). Live streams arrive at camera rate
    and keep FFmpeg's choice."""
    options = options or StreamOptions()
    return (
        dataclasses.replace(options, decode_threads=1)
        if backend.runs_on_cpu and options.decode_threads is None
        else options
    )


class Pipeline:
    def __init__(
        self,
        source: Source,
        backend: Backend,
        input_contract: InputContract,
        output_contract: OutputContract,
        overlay: Overlay,
        sinks: list[Sink],
        max_frames: int | None = None,
        queue_size: int = 4,
        readout: bool = True,
    ):
        self.source, self.backend, self.overlay, self.sinks = source, backend, overlay, sinks
        self.input_contract, self.output_contract = input_contract, output_contract
        self.max_frames = max_frames
        self.readout = readout
        self.frames: LatestFrame | queue.Queue = LatestFrame() if source.live else queue.Queue(queue_size)
        self.predictions: queue.Queue = queue.Queue(queue_size)
        self.stop = source.stop_event  # stop capturing; drain what is queued (a reconnecting stream stops waiting)
        self.abort = threading.Event()  # a stage failed: everyone leaves now
        self.errors: list[BaseException] = []
        self.times = StageTimes()
        self.summary = RunSummary()
        self.started = time.perf_counter()
        self.capture_done = False
        for sink in sinks:
            sink.show_stats(self.live_stats)
        self.keep_logits = output_contract.kind == "logits" and overlay.filter_mode == "linear"

    def request_stop(self) -> None:
        self.stop.set()

    def live_stats(self) -> dict[str, Any]:
        """Figures for a live view while the run goes on: FPS, per-stage milliseconds, stream gaps."""
        elapsed = time.perf_counter() - self.started
        stages = {name: round(values["mean_ms"], 2) for name, values in self.times.summary().items()}
        return {
            "fps": round(self.summary.frames_written / elapsed, 2) if elapsed > 0 else 0.0,
            "frames": self.summary.frames_written,
            "dropped": self.dropped,
            "stages_ms": stages,
            "gaps_s": [round(g, 2) for g in self.source.gaps],
            "reconnecting": self.source.reconnecting,
        }

    @property
    def dropped(self) -> int:
        """Frames a live source replaced before inference took them; a file's queue drops none."""
        return self.frames.dropped if isinstance(self.frames, LatestFrame) else 0

    # -- hand-over helpers that never block forever -----------------------------------------
    def _put(self, channel: Any, item: Any) -> None:
        if isinstance(channel, LatestFrame):
            channel.put(item)
            return
        while not self.abort.is_set():
            try:
                channel.put(item, timeout=POLL_SECONDS)
                return
            except queue.Full:
                continue

    def _get(self, channel: Any) -> Any:
        while not self.abort.is_set():
            try:
                return channel.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
        return END

    def _fail(self, exc: BaseException) -> None:
        self.errors.append(exc)
        self.abort.set()

    # -- the three stages -------------------------------------------------------------------
    def _capture(self) -> None:
        try:
            while not self.stop.is_set() and (self.max_frames is None or self.summary.frames_read < self.max_frames):
                with self.times.stage("capture"):
                    frame = self.source.read()
                if frame is None:
                    break
                # Preprocessing (the resize to the model's size) runs here, off the inference
                # thread's critical path: inference then does nothing but infer.
                with self.times.stage("preprocess"):
                    frame.tensor = frames_to_input([frame.image], self.input_contract)
                self.summary.frames_read += 1
                self._put(self.frames, frame)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the main thread
            self._fail(exc)
        finally:
            self._put(self.frames, END)

    def _next_batch(self, size: int) -> list[Frame]:
        batch: list[Frame] = []
        while len(batch) < size and not self.capture_done:
            item = self._get(self.frames)
            if item is END:
                self.capture_done = True
            else:
                batch.append(item)
        return batch

    def _infer(self) -> None:
        try:
            with self.backend:
                size = self.backend.batch_size
                while frames := self._next_batch(size):
                    self._infer_batch(frames, size)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the main thread
            self._fail(exc)
        finally:
            self._put(self.predictions, END)

    def _infer_batch(self, frames: list[Frame], size: int) -> None:
        for prediction in predict(self.backend, frames, size, self.output_contract, self.times, self.keep_logits):
            self._put(self.predictions, prediction)
            self.summary.frames_processed += 1

    def _draw_and_write(self, prediction: Prediction, recent: deque) -> None:
        with self.times.stage("overlay"):
            image = self.overlay.render(
                prediction.frame.image, prediction.class_map, prediction.logits, self._readout(recent)
            )
        with self.times.stage("sink"):
            for sink in self.sinks:
                sink.write(image, prediction)
        done = time.perf_counter()
        self.times.add("latency", done - prediction.frame.timestamp)
        recent.append(done)
        self.summary.first_written = self.summary.first_written or done
        self.summary.last_written = done
        self.summary.frames_written += 1
        if any(sink.stop_requested for sink in self.sinks):
            self.request_stop()

    def _readout(self, recent: deque) -> str:
        """The FPS and inference time drawn on the frame, from the last 30 frames."""
        if not self.readout or len(recent) < 2:
            return ""
        infer_ms = np.mean(self.times.samples["infer"][-30:]) * 1000
        return f"{(len(recent) - 1) / (recent[-1] - recent[0]):.1f} FPS | infer {infer_ms:.1f} ms"

    def run(self) -> RunSummary:
        """Run to the end of the source (or a stop request); close the sinks; return the figures."""
        started = self.started = time.perf_counter()
        workers = [
            threading.Thread(target=self._capture, name="capture", daemon=True),
            threading.Thread(target=self._infer, name="inference", daemon=True),
        ]
        for worker in workers:
            worker.start()
        recent: deque = deque(maxlen=30)
        try:
            with stop_on_signals(self), opencv_threads_beside(self.backend):
                while (item := self._get(self.predictions)) is not END:
                    self._draw_and_write(item, recent)
        except BaseException as exc:
            self._fail(exc)
        finally:
            self.stop.set()
            for worker in workers:
                worker.join()
            self._close_all()
        if self.errors:
            raise self.errors[0]
        self.summary.seconds = time.perf_counter() - started
        self.summary.frames_dropped = self.dropped
        self.summary.bad_frames = self.source.bad_frames
        self.summary.gaps = list(self.source.gaps)
        self.summary.backend = self.backend.describe()
        self.summary.stages = self.times.summary()
        return self.summary

    def _close_all(self) -> None:
        close_all(self.sinks, [self.source], self.errors)


def close_all(sinks: list[Sink], sources: list[Source], errors: list[BaseException]) -> None:
    """Close every sink (a failing one does not stop the others; its error joins `errors`), then the sources."""
    for sink in sinks:
        try:
            sink.close()
        except BaseException as exc:  # noqa: BLE001 - close the others, report the first
            errors.append(exc)
    for source in sources:
        source.close()


def predict(
    backend: Backend,
    frames: list[Frame],
    size: int,
    contract: OutputContract,
    times: StageTimes,
    keep_logits: bool = False,
) -> list[Prediction]:
    """Preprocessed frames through one inference call (padded to `size`), each paired with its class map."""
    tensors = pad_batch([f.tensor for f in frames], size)
    with times.stage("infer"):
        output = backend.infer(tensors[0] if size == 1 else np.concatenate(tensors))
    with times.stage("postprocess"):
        class_maps = output_to_class_maps(output, contract)
    return [Prediction(frame, class_maps[i], output[i] if keep_logits else None) for i, frame in enumerate(frames)]


@contextlib.contextmanager
def opencv_threads_beside(backend: Backend) -> Iterator[None]:
    """With inference on the CPU, OpenCV runs single-threaded for the run, and is restored afterwards.

    The stages already run side by side: OpenCV's own worker threads in capture and drawing would only
    preempt inference's parallel operators, which then wait for their slowest chunk (demo-driving, 720p,
    2 cores: 169 -> 190 FPS).
    """
    previous = cv2.getNumThreads()
    if backend.runs_on_cpu:
        cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


@contextlib.contextmanager
def stop_on_signals(pipeline: Pipeline) -> Iterator[None]:
    """First SIGINT/SIGTERM: stop capture and drain. Second: exit at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, _frame: Any) -> None:
        if pipeline.summary.interrupted:
            os._exit(128 + signum)
        pipeline.summary.interrupted = True
        print(
            "edgeseg: stopping: finishing queued frames and closing outputs (again to exit at once)",
            file=sys.stderr,
            flush=True,
        )
        pipeline.request_stop()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
