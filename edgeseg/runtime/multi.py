"""Several cameras in one run: a capture thread per source, their frames batched into one inference call.

    source 0 --[capture]--\\
    source 1 --[capture]----> slots --[inference: gather a batch within a deadline, infer once]--> main thread:
    source N --[capture]--/                                              overlay -> the stream's sinks + the tiled view

A batch holds at most one frame per stream: every stream that has one ready when the batch starts, and
any that gets one before the deadline. A stream that stalls or dies (and reconnects on its own thread)
does not hold the others. Live sources keep only their newest frame; files queue theirs and never lose
one: what misses a batch goes in the next. A dynamic-batch graph takes the batch as it is; a graph with
a fixed batch equal to the stream count gets a padded batch; a batch-1 graph gets one call per frame.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeseg.bundle import InputContract, OutputContract
from edgeseg.errors import EdgesegError
from edgeseg.redact import redact
from edgeseg.runtime.backends.base import Backend
from edgeseg.runtime.frames import Frame, Prediction
from edgeseg.runtime.overlay import Overlay
from edgeseg.runtime.pipeline import (
    END,
    RunSummary,
    StageTimes,
    close_all,
    opencv_threads_beside,
    predict,
    stop_on_signals,
)
from edgeseg.runtime.sinks.base import Sink
from edgeseg.runtime.sinks.factory import stream_names  # noqa: F401 - tests import it from here until multi.py goes
from edgeseg.runtime.sources import Source
from edgeseg.runtime.tensors import frames_to_input

BATCH_DEADLINE = 0.02  # seconds a started batch waits for the streams not yet ready
FILE_QUEUE = 4  # frames a file source may have waiting


class Slot:
    """One stream's hand-over to inference: the newest frame of a live source, a short queue for a file."""

    def __init__(self, live: bool, ready: threading.Condition):
        self.live, self.ready = live, ready
        self.items: collections.deque = collections.deque()
        self.ended = False
        self.dropped = 0

    def put(self, item: Any, abort: threading.Event) -> None:
        with self.ready:
            if item is END:
                self.ended = True
            elif self.live:
                self.dropped += len(self.items)
                self.items.clear()
                self.items.append(item)
            else:
                while len(self.items) >= FILE_QUEUE and not abort.is_set():
                    self.ready.wait(0.1)
                self.items.append(item)
            self.ready.notify_all()

    def take(self) -> Frame | None:
        """The next frame if one is waiting (the caller holds `ready`)."""
        if self.items:
            self.ready.notify_all()  # a file's capture thread may be waiting for room
            return self.items.popleft()
        return None

    @property
    def finished(self) -> bool:
        return self.ended and not self.items


@dataclass
class StreamFigures:
    name: str
    uri: str  # as shown: redacted
    frames_read: int = 0
    frames_processed: int = 0
    frames_written: int = 0
    frames_dropped: int = 0
    bad_frames: int = 0
    gaps: list[float] = field(default_factory=list)
    first_written: float = 0.0
    last_written: float = 0.0

    @property
    def fps(self) -> float:
        span = self.last_written - self.first_written
        return (self.frames_written - 1) / span if self.frames_written > 1 and span > 0 else 0.0


class MultiStreamPipeline:
    def __init__(
        self,
        sources: list[Source],
        names: list[str],
        backend: Backend,
        input_contract: InputContract,
        output_contract: OutputContract,
        overlay: Overlay,
        stream_sinks: list[list[Sink]],
        shared_sinks: list[Sink],
        max_frames: int | None = None,
    ):
        self.sources, self.names, self.backend, self.overlay = sources, names, backend, overlay
        self.input_contract, self.output_contract = input_contract, output_contract
        self.stream_sinks, self.shared_sinks = stream_sinks, shared_sinks
        self.max_frames = max_frames
        self.ready = threading.Condition()
        self.slots = [Slot(source.live, self.ready) for source in sources]
        self.predictions: queue.Queue = queue.Queue(4 * len(sources))
        self.stop = threading.Event()
        self.abort = threading.Event()
        self.errors: list[BaseException] = []
        self.batch_sizes: list[int] = []
        self.times = StageTimes()
        self.figures = [StreamFigures(name, redact(source.uri)) for name, source in zip(names, sources)]
        self.summary = RunSummary()
        self.started = time.perf_counter()
        for sink in self.all_sinks:
            sink.show_stats(self.live_stats)

    @property
    def all_sinks(self) -> list[Sink]:
        return [sink for sinks in self.stream_sinks for sink in sinks] + self.shared_sinks

    def request_stop(self) -> None:
        """Stop capturing on every stream; a reconnecting stream's waits end on its own stop event."""
        self.stop.set()
        for source in self.sources:
            source.stop_event.set()

    def live_stats(self) -> dict[str, Any]:
        elapsed = time.perf_counter() - self.started
        written = sum(f.frames_written for f in self.figures)
        stages = {name: round(values["mean_ms"], 2) for name, values in self.times.summary().items()}
        streams = [
            {"name": f.name, "frames": f.frames_written, "fps": round(f.fps, 2), "dropped": slot.dropped,
             "gaps_s": [round(g, 2) for g in source.gaps], "reconnecting": source.reconnecting}  # fmt: skip
            for f, slot, source in zip(self.figures, self.slots, self.sources)
        ]
        return {
            "fps": round(written / elapsed, 2) if elapsed > 0 else 0.0,
            "frames": written,
            "dropped": sum(slot.dropped for slot in self.slots),
            "stages_ms": stages,
            "gaps_s": [round(g, 2) for source in self.sources for g in source.gaps],
            "reconnecting": any(source.reconnecting for source in self.sources),
            "streams": streams,
        }

    # -- capture: one thread per source --------------------------------------------------------
    def _capture(self, index: int) -> None:
        source, slot, figures = self.sources[index], self.slots[index], self.figures[index]
        try:
            while not self.stop.is_set() and (self.max_frames is None or figures.frames_read < self.max_frames):
                with self.times.stage("capture"):
                    frame = source.read()
                if frame is None:
                    break
                frame.stream = index
                with self.times.stage("preprocess"):
                    frame.tensor = frames_to_input([frame.image], self.input_contract)
                figures.frames_read += 1
                slot.put(frame, self.abort)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the main thread
            self._fail(exc)
        finally:
            slot.put(END, self.abort)

    # -- inference: batches gathered across streams ----------------------------------------------
    def _gather(self) -> list[Frame]:
        """At most one frame per stream: those ready now, and those that get one before the deadline."""
        batch: dict[int, Frame] = {}
        deadline = None
        with self.ready:
            while not self.abort.is_set():
                for index, slot in enumerate(self.slots):
                    if index not in batch and (frame := slot.take()) is not None:
                        batch[index] = frame
                waiting = [i for i, slot in enumerate(self.slots) if i not in batch and not slot.finished]
                if not waiting or (batch and deadline is not None and time.perf_counter() >= deadline):
                    break
                if batch and deadline is None:
                    deadline = time.perf_counter() + BATCH_DEADLINE
                self.ready.wait(BATCH_DEADLINE if batch else 0.1)
        return [batch[index] for index in sorted(batch)]

    def _infer(self) -> None:
        try:
            with self.backend:
                size = self.backend.batch_size
                fixed = self.backend.inputs[0].shape[0] is not None
                while frames := self._gather():
                    if fixed and size == 1:
                        for frame in frames:
                            self._infer_batch([frame], 1)
                    else:
                        self._infer_batch(frames, size if fixed else len(frames))
        except BaseException as exc:  # noqa: BLE001 - re-raised on the main thread
            self._fail(exc)
        finally:
            self._put(END)

    def _infer_batch(self, frames: list[Frame], size: int) -> None:
        self.batch_sizes.append(len(frames))
        for prediction in predict(self.backend, frames, size, self.output_contract, self.times):
            self.figures[prediction.frame.stream].frames_processed += 1
            self._put(prediction)

    def _put(self, item: Any) -> None:
        while not self.abort.is_set():
            try:
                self.predictions.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _fail(self, exc: BaseException) -> None:
        self.errors.append(exc)
        self.abort.set()
        with self.ready:
            self.ready.notify_all()

    # -- main thread: draw and write -------------------------------------------------------------
    def _draw_and_write(self, prediction: Prediction) -> None:
        stream = prediction.frame.stream
        with self.times.stage("overlay"):
            image = self.overlay.render(prediction.frame.image, prediction.class_map, None, "")
        with self.times.stage("sink"):
            for sink in self.stream_sinks[stream] + self.shared_sinks:
                sink.write(image, prediction)
        done = time.perf_counter()
        self.times.add("latency", done - prediction.frame.timestamp)
        figures = self.figures[stream]
        figures.first_written = figures.first_written or done
        figures.last_written = done
        figures.frames_written += 1
        if any(sink.stop_requested for sink in self.all_sinks):
            self.request_stop()

    def run(self) -> RunSummary:
        started = self.started = time.perf_counter()
        workers = [
            threading.Thread(target=self._capture, args=(i,), name=f"capture-{i}", daemon=True)
            for i in range(len(self.sources))
        ]
        workers.append(threading.Thread(target=self._infer, name="inference", daemon=True))
        for worker in workers:
            worker.start()
        try:
            with stop_on_signals(self), opencv_threads_beside(self.backend):
                while not self.abort.is_set():
                    try:
                        item = self.predictions.get(timeout=0.1)
                    except queue.Empty:
                        continue
                    if item is END:
                        break
                    self._draw_and_write(item)
        except BaseException as exc:
            self._fail(exc)
        finally:
            self.request_stop()
            with self.ready:
                self.ready.notify_all()
            for worker in workers:
                worker.join()
            self._close_all()
        if self.errors:
            raise self.errors[0]
        return self._summary(time.perf_counter() - started)

    def _summary(self, seconds: float) -> RunSummary:
        for figures, slot, source in zip(self.figures, self.slots, self.sources):
            figures.frames_dropped, figures.bad_frames, figures.gaps = (
                slot.dropped,
                source.bad_frames,
                list(source.gaps),
            )
        summary = self.summary
        summary.seconds = seconds
        summary.frames_read = sum(f.frames_read for f in self.figures)
        summary.frames_processed = sum(f.frames_processed for f in self.figures)
        summary.frames_written = sum(f.frames_written for f in self.figures)
        summary.frames_dropped = sum(f.frames_dropped for f in self.figures)
        summary.bad_frames = sum(f.bad_frames for f in self.figures)
        summary.gaps = [g for f in self.figures for g in f.gaps]
        summary.backend = self.backend.describe()
        summary.stages = self.times.summary()
        summary.streams = self.figures
        summary.mean_batch = float(np.mean(self.batch_sizes)) if self.batch_sizes else 0.0
        return summary

    def _close_all(self) -> None:
        close_all(self.all_sinks, self.sources, self.errors)


def check_batch(backend_batch: int | None, streams: int) -> str | None:
    """One line on how the streams are batched; an error when a fixed batch cannot hold them."""
    if backend_batch is None:
        return None
    if backend_batch == 1 and streams > 1:
        return (
            f"note: this bundle has a fixed batch of 1: {streams} streams get one inference call per frame "
            "(export with --dynamic-batch, or --batch N, to batch them)"
        )
    if streams > backend_batch:
        raise EdgesegError(
            f"{streams} inputs, but this bundle's graph takes a fixed batch of {backend_batch}: give at most "
            f"{backend_batch} inputs, or export with --dynamic-batch"
        )
    return None
