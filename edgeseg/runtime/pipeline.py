"""The one live loop, for every bundle kind and any number of inputs: capture, inference and drawing+writing on their
own threads, every stage timed.

    source 0 --[capture: read, resize, graph input]--\\                 /--[inference 0: gather, infer, decode]--\\
    source N --[capture: read, resize, graph input]--> slots ---+                                          +-->
                                                                \\--[inference 1 (files on a CPU backend)]--/
        (frame, Result), in order --[main thread: head.draw, sinks]--> the stream's outputs + the shared (tiled) ones

The head (runtime/heads) is the only part that knows the bundle's kind: it reads the graph's outputs, decodes them
into a Result at the frame's resolution and draws it. A second model of any kind (`run --also`) answers the same
frame (resized to its own input size) and its Result is drawn under the first one's.

A batch holds at most one frame per stream: every stream that has one ready when the batch starts, and any that gets
one before a short deadline; a stream that stalls or reconnects does not hold the others. One input on a graph with
a fixed batch fills the batch from its own frames. Live sources keep only their newest frame (latency over
completeness); files, folders and synthetic scenes queue theirs and never lose one. Where every source is such a
recording and the backend says more sessions give more frames per second (ONNX Runtime on the CPU: two), that many
inference threads each run their own session on batches taken in turn, and the main thread puts their answers back in
the order the batches were taken; a live source keeps one session with every thread, for the shortest latency per
frame. Backends are opened on their inference thread because CUDA contexts belong to the thread that made them.
A stop request (Ctrl-C, SIGTERM, q/Esc in a window, the Python API's caller leaving) stops capture; what was captured
is still inferred, drawn and written, then the sinks close, so a recording holds every processed frame.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from edgeseg.redact import redact
from edgeseg.runtime.backends.base import Backend
from edgeseg.runtime.figures import (
    RunSummary,
    StageTimes,
    StreamFigures,
    percentiles_ms,  # noqa: F401 - edgeseg/bench/rows.py's until it imports figures
)
from edgeseg.runtime.frames import Frame
from edgeseg.runtime.heads.base import Head, Result
from edgeseg.runtime.sinks.base import Sink
from edgeseg.runtime.sources import Source, StreamOptions
from edgeseg.runtime.tensors import frames_to_input, pad_batch, resize_frame

END = object()  # end-of-stream marker passed down the hand-overs
POLL_SECONDS = 0.1
BATCH_DEADLINE = 0.02  # seconds a started batch waits for the streams not yet ready
FILE_QUEUE = 4  # frames a file source may have waiting


class Slot:
    """One stream's hand-over to inference: the newest frame of a live source, a short queue for a file. Every slot
    of a run shares one condition, so inference waits for whichever stream is ready first."""

    def __init__(self, live: bool, ready: threading.Condition, abort: threading.Event):
        self.live, self.ready, self.abort = live, ready, abort
        self.items: collections.deque = collections.deque()
        self.ended = False
        self.dropped = 0

    def put(self, item: Any) -> None:
        with self.ready:
            if item is END:
                self.ended = True
            elif self.live:
                self.dropped += len(self.items)
                self.items.clear()
                self.items.append(item)
            else:
                while len(self.items) >= FILE_QUEUE and not self.abort.is_set():
                    self.ready.wait(POLL_SECONDS)
                self.items.append(item)
            self.ready.notify_all()

    def take(self) -> Any:
        """The next frame if one is waiting, else None (the caller holds `ready`)."""
        if self.items:
            self.ready.notify_all()  # a file's capture thread may be waiting for room
            return self.items.popleft()
        return None

    @property
    def finished(self) -> bool:
        return self.ended and not self.items


@dataclass
class HeadModel:
    """A bundle's graph on its backend, answering through its head: what the inference thread runs. The backend is
    opened by the loop, on that thread."""

    head: Head
    backend: Backend
    stage: str = "infer"  # the stage its inference is timed as
    role: str = ""  # how the run's summary names it beside the first model (e.g. "--also")

    @property
    def frames_per_call(self) -> int:
        """The most frames one call takes from one stream: the graph's fixed batch, else 1. A head whose graph
        answers one frame (a detector) always takes one."""
        fixed = self.fixed_batch
        return fixed if self.head.batches and fixed else 1

    @property
    def fixed_batch(self) -> int | None:
        first = self.backend.inputs[0].shape[0] if self.backend.inputs else None
        return first if isinstance(first, int) and first > 0 else None

    def graph_input(self, resized: np.ndarray) -> np.ndarray:
        """A frame already at the model's size -> its graph input (batch of one)."""
        return frames_to_input([resized], self.head.bundle.input)

    def results(self, tensors: list[np.ndarray], sizes: list[tuple[int, int]], times: StageTimes) -> list[Result]:
        """One Result per graph input (each a batch of one), at its frame's size: one call for the lot on a dynamic
        batch, calls of the fixed batch (the last padded) otherwise, one call per frame for a detector."""
        step = self.fixed_batch if self.head.batches else 1
        step = step or len(tensors)
        results: list[Result] = []
        for start in range(0, len(tensors), step):
            chunk = tensors[start : start + step]
            batch = chunk[0] if step == 1 else np.concatenate(pad_batch(chunk, step))
            with times.stage(self.stage):
                outputs = self.head.infer(self.backend, batch)
            with times.stage("postprocess"):
                results.extend(self.head.decode(outputs, sizes[start : start + step])[: len(chunk)])
        return results

    def describe(self) -> str:
        return self.backend.describe() + (f" ({self.role})" if self.role else "")


class Pipeline:
    """N >= 1 sources through `models` (the first answers; any other is drawn under it) to the sinks.

    `sinks` take every stream's frames (a window, the live view, the Python API's tap: tiled by the caller where
    there are several streams); `stream_sinks[i]` take stream i's alone (-o out/{stream}.mp4)."""

    def __init__(
        self,
        sources: list[Source],
        models: list[HeadModel],
        sinks: list[Sink],
        stream_sinks: list[list[Sink]] | None = None,
        names: list[str] | None = None,
        max_frames: int | None = None,
        save_mask: bool = False,
        readout: bool = True,
    ):
        self.sources, self.models, self.shared_sinks = sources, models, sinks
        self.stream_sinks = stream_sinks or [[] for _ in sources]
        self.names = names or [f"stream{index}" for index in range(len(sources))]
        self.max_frames, self.save_mask, self.readout = max_frames, save_mask, readout
        self.ready = threading.Condition()
        self.stop = threading.Event()  # stop capturing; drain what is queued
        self.abort = threading.Event()  # a stage failed: everyone leaves now
        self.slots = [Slot(source.live, self.ready, self.abort) for source in sources]
        self.workers = inference_workers(models, sources)  # the models each inference thread runs
        # No answer goes out before every inference thread has opened its backends: opening quiets fds 1 and 2 for
        # the whole process (native_output), and a caller printing its first answers meanwhile would print into that.
        self.all_opened = threading.Barrier(len(self.workers))
        # One inference thread gathers at a time: a batch waiting for its streams releases `ready`, and another thread
        # taking the next frames meanwhile would hold newer frames under an older batch number.
        self.gathering = threading.Lock()
        self.batches_taken = 0  # numbers the batches as they are taken, to put the answers back in that order
        self.results: queue.Queue = queue.Queue(4 + len(self.workers))  # batches of answered frames, and the ENDs
        self.errors: list[BaseException] = []
        self.batch_sizes: list[int] = []
        self.times = StageTimes()
        self.figures = [StreamFigures(name, redact(source.uri)) for name, source in zip(self.names, sources)]
        self.recent = [collections.deque(maxlen=30) for _ in sources]  # when each stream's last frames went out
        self.summary = RunSummary()
        self.started = time.perf_counter()
        for sink in self.all_sinks:
            sink.show_stats(self.live_stats)

    @property
    def head(self) -> Head:
        return self.models[0].head

    @property
    def all_sinks(self) -> list[Sink]:
        return [sink for sinks in self.stream_sinks for sink in sinks] + self.shared_sinks

    def request_stop(self) -> None:
        """Stop capturing on every stream; a reconnecting stream's waits end on its own stop event."""
        self.stop.set()
        for source in self.sources:
            source.stop_event.set()

    def live_stats(self) -> dict[str, Any]:
        """Figures for a live view while the run goes on: FPS, per-stage milliseconds, drops and gaps; per stream
        where there are several."""
        elapsed = time.perf_counter() - self.started
        written = sum(f.frames_written for f in self.figures)
        stats = {
            "fps": round(written / elapsed, 2) if elapsed > 0 else 0.0,
            "frames": written,
            "dropped": sum(slot.dropped for slot in self.slots),
            "stages_ms": {name: round(values["mean_ms"], 2) for name, values in self.times.summary().items()},
            "gaps_s": [round(g, 2) for source in self.sources for g in source.gaps],
            "reconnecting": any(source.reconnecting for source in self.sources),
        }
        if len(self.sources) > 1:
            stats["streams"] = [
                {"name": f.name, "frames": f.frames_written, "fps": round(f.fps, 2), "dropped": slot.dropped,
                 "gaps_s": [round(g, 2) for g in source.gaps], "reconnecting": source.reconnecting}  # fmt: skip
                for f, slot, source in zip(self.figures, self.slots, self.sources)
            ]
        return stats

    # -- capture: one thread per source ------------------------------------------------------------
    def _capture(self, index: int) -> None:
        source, slot, figures = self.sources[index], self.slots[index], self.figures[index]
        try:
            while not self.stop.is_set() and (self.max_frames is None or figures.frames_read < self.max_frames):
                with self.times.stage("capture"):
                    frame = source.read()
                if frame is None:
                    break
                frame.stream = index
                # Preprocessing runs here, off inference's critical path.
                with self.times.stage("preprocess"):
                    frame.tensor = graph_inputs(self.models, frame.image)
                figures.frames_read += 1
                slot.put(frame)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the main thread
            self._fail(exc)
        finally:
            slot.put(END)

    # -- inference: batches gathered across streams --------------------------------------------------
    def _gather(self, per_stream: int) -> tuple[int, list[Frame]]:
        """The batch's number and up to `per_stream` frames of each stream: those ready now, and, with several
        streams, those that get one before the deadline (one stream waits for its batch to fill, or for its end)."""
        taken: list[list[Frame]] = [[] for _ in self.slots]
        deadline = None
        with self.gathering, self.ready:
            while not self.abort.is_set():
                for index, slot in enumerate(self.slots):
                    while len(taken[index]) < per_stream and (frame := slot.take()) is not None:
                        taken[index].append(frame)
                waiting = [i for i, slot in enumerate(self.slots) if len(taken[i]) < per_stream and not slot.finished]
                started = any(taken)
                if not waiting or (started and deadline is not None and time.perf_counter() >= deadline):
                    break
                if started and deadline is None and len(self.slots) > 1:
                    deadline = time.perf_counter() + BATCH_DEADLINE
                self.ready.wait(BATCH_DEADLINE if started else POLL_SECONDS)
            number = self.batches_taken
            self.batches_taken += any(taken)  # an empty batch (every stream ended) takes no number
        return number, [frame for frames in taken for frame in frames]

    def _infer(self, models: list[HeadModel]) -> None:
        try:
            with contextlib.ExitStack() as opened:
                for model in models:
                    opened.enter_context(model.backend)
                self.all_opened.wait()
                per_stream = models[0].frames_per_call if len(self.slots) == 1 else 1
                while True:
                    number, frames = self._gather(per_stream)
                    if not frames:
                        break
                    self._put((number, self._infer_batch(models, frames)))
        except threading.BrokenBarrierError:  # another inference thread failed to open: its error is the run's
            pass
        except BaseException as exc:  # noqa: BLE001 - re-raised on the main thread
            self._fail(exc)
        finally:
            self._put(END)

    def _infer_batch(self, models: list[HeadModel], frames: list[Frame]) -> list[tuple[Frame, Result]]:
        self.batch_sizes.append(len(frames))
        sizes = [(f.image.shape[0], f.image.shape[1]) for f in frames]
        answers = [model.results([f.tensor[i] for f in frames], sizes, self.times) for i, model in enumerate(models)]
        answered = []
        for position, frame in enumerate(frames):
            result = answers[0][position]
            for under in answers[1:]:
                result.under = under[position]
            frame.tensor = None  # the graph inputs are spent: do not hold them while drawing
            answered.append((frame, result))
        return answered

    def _put(self, item: Any) -> None:
        while not self.abort.is_set():
            try:
                self.results.put(item, timeout=POLL_SECONDS)
                return
            except queue.Full:
                continue

    def _fail(self, exc: BaseException) -> None:
        self.errors.append(exc)
        self.abort.set()
        self.all_opened.abort()  # inference threads still waiting for the others to open leave
        with self.ready:
            self.ready.notify_all()

    # -- main thread: draw and write -------------------------------------------------------------------
    def _draw_and_write(self, frame: Frame, result: Result) -> None:
        stream = frame.stream
        with self.times.stage("overlay"):
            image = self.head.draw(frame.image, result, self._readout(stream))
            prediction = self.head.prediction(frame, result, self.save_mask)
        with self.times.stage("sink"):
            for sink in self.stream_sinks[stream] + self.shared_sinks:
                sink.write(image, prediction)
        done = time.perf_counter()
        self.times.add("latency", done - frame.timestamp)
        self.recent[stream].append(done)
        figures = self.figures[stream]
        figures.first_written = figures.first_written or done
        figures.last_written = done
        figures.frames_written += 1
        if any(sink.stop_requested for sink in self.all_sinks):
            self.request_stop()

    def _readout(self, stream: int) -> str:
        """The stream's FPS and the inference time, from the last 30 frames, for heads that draw it."""
        recent = self.recent[stream]
        if not self.readout or len(recent) < 2:
            return ""
        infer_ms = self.times.recent_mean(self.models[0].stage) * 1000
        return f"{(len(recent) - 1) / (recent[-1] - recent[0]):.1f} FPS | infer {infer_ms:.1f} ms"

    def run(self) -> RunSummary:
        """Run to the end of every source (or a stop request); close the sinks; return the figures."""
        started = self.started = time.perf_counter()
        workers = [
            threading.Thread(target=self._capture, args=(i,), name=f"capture-{i}", daemon=True)
            for i in range(len(self.sources))
        ]
        workers += [
            threading.Thread(target=self._infer, args=(models,), name=f"inference-{index}", daemon=True)
            for index, models in enumerate(self.workers)
        ]
        for worker in workers:
            worker.start()
        try:
            with stop_on_signals(self), opencv_threads_beside(self.models[0].backend):
                for frame, result in self._in_order():
                    self._draw_and_write(frame, result)
        except BaseException as exc:
            self._fail(exc)
        finally:
            self.request_stop()
            with self.ready:
                self.ready.notify_all()
            for worker in workers:
                worker.join()
            close_all(self.all_sinks, self.sources, self.errors)
        if self.errors:
            raise self.errors[0]
        return self._summary(time.perf_counter() - started)

    def _in_order(self) -> Iterator[tuple[Frame, Result]]:
        """Each answered frame, in the order its batch was taken: the inference threads finish theirs out of turn."""
        waiting: dict[int, list[tuple[Frame, Result]]] = {}
        next_number, ended = 0, 0
        while ended < len(self.workers):
            item = self._next_result()
            if item is END and self.abort.is_set():
                return
            if item is END:
                ended += 1
                continue
            number, answered = item
            waiting[number] = answered
            for frame, _ in answered:  # counted here, on one thread: two inference threads share a stream's figures
                self.figures[frame.stream].frames_processed += 1
            while next_number in waiting:
                yield from waiting.pop(next_number)
                next_number += 1

    def _next_result(self) -> Any:
        while not self.abort.is_set():
            try:
                return self.results.get(timeout=POLL_SECONDS)
            except queue.Empty:
                # a sink that asked to stop (q/Esc, a Python caller leaving the stream) is heard between
                # frames too: a stalled or slow camera must not hold it until its next frame
                if any(sink.stop_requested for sink in self.all_sinks):
                    self.request_stop()
        return END

    def _summary(self, seconds: float) -> RunSummary:
        for figures, slot, source in zip(self.figures, self.slots, self.sources):
            figures.frames_dropped, figures.bad_frames = slot.dropped, source.bad_frames
            figures.gaps = list(source.gaps)
        summary, figures = self.summary, self.figures
        summary.seconds = seconds
        summary.frames_read = sum(f.frames_read for f in figures)
        summary.frames_processed = sum(f.frames_processed for f in figures)
        summary.frames_written = sum(f.frames_written for f in figures)
        summary.frames_dropped = sum(f.frames_dropped for f in figures)
        summary.bad_frames = sum(f.bad_frames for f in figures)
        summary.gaps = [g for f in figures for g in f.gaps]
        summary.first_written = min((f.first_written for f in figures if f.frames_written), default=0.0)
        summary.last_written = max((f.last_written for f in figures), default=0.0)
        summary.backend = " + ".join(model.describe() for model in self.workers[0])
        if len(self.workers) > 1:
            summary.backend += f", {len(self.workers)} sessions side by side"
        summary.stages = self.times.summary()
        summary.streams = figures if len(figures) > 1 else []
        summary.mean_batch = float(np.mean(self.batch_sizes)) if self.batch_sizes else 0.0
        return summary


def graph_inputs(models: list[HeadModel], image: np.ndarray) -> list[np.ndarray]:
    """Each model's graph input for one frame: one resize serves every model of the same input size (a --also bundle
    of another size gets its own)."""
    resized: dict[tuple[int, ...], np.ndarray] = {}
    inputs = []
    for model in models:
        size = tuple(model.head.bundle.input.size)
        if size not in resized:
            resized[size] = resize_frame(image, size)
        inputs.append(model.graph_input(resized[size]))
    return inputs


def inference_workers(models: list[HeadModel], sources: list[Source]) -> list[list[HeadModel]]:
    """The models each inference thread runs: `models` alone, or, where every source is a recording (no frame is
    dropped, so frames per second is what counts) and every model's backend says several sessions give more
    (Backend.throughput_sessions), that many copies on replica backends."""
    count = 1 if any(source.live for source in sources) else min(m.backend.throughput_sessions() for m in models)
    if count == 1:
        return [models]
    return [[dataclasses.replace(m, backend=m.backend.replica(count)) for m in models] for _ in range(count)]


def check_batch(batches: bool, backend_batch: int | None, streams: int) -> str | None:
    """One line on how several streams are batched, for a head whose graph batches (a detector answers one frame
    per call whatever the export). More streams than a fixed batch take several calls a round (HeadModel.results)."""
    if not batches or backend_batch != 1 or streams < 2:
        return None
    return (
        f"note: this bundle has a fixed batch of 1: {streams} streams get one inference call per frame "
        "(export with --dynamic-batch, or --batch N, to batch them)"
    )


def close_all(sinks: list[Sink], sources: list[Source], errors: list[BaseException]) -> None:
    """Close every sink, then every source; one that fails does not stop the others, and its error joins
    `errors`."""
    for part in [*sinks, *sources]:
        try:
            part.close()
        except BaseException as exc:  # noqa: BLE001 - close the others, report the first
            errors.append(exc)


def source_options(backend: Backend, options: StreamOptions | None = None) -> StreamOptions:
    """How a pipeline around `backend` opens its sources. With inference on the CPU, a video file is decoded on one
    thread: it already has the capture thread to itself, and FFmpeg's extra decoder threads would only contend for
    the cores inference needs (720p MPEG-4: 2.8 -> 2.2 CPU-ms per frame; demo-driving pipelined 181 -> 198 FPS on 2
    cores). Live streams arrive at camera rate and keep FFmpeg's choice."""
    options = options or StreamOptions()
    return (
        dataclasses.replace(options, decode_threads=1)
        if backend.runs_on_cpu and options.decode_threads is None
        else options
    )


@contextlib.contextmanager
def opencv_threads_beside(backend: Backend) -> Iterator[None]:
    """With inference on the CPU, OpenCV runs single-threaded for the run, and is restored afterwards.

    The stages already run side by side: OpenCV's own worker threads in capture and drawing would only preempt
    inference's parallel operators, which then wait for their slowest chunk (demo-driving, 720p, 2 cores: 169 -> 190
    FPS).
    """
    previous = cv2.getNumThreads()
    if backend.runs_on_cpu:
        cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


@contextlib.contextmanager
def stop_on_signals(pipeline: Any) -> Iterator[None]:
    """First SIGINT/SIGTERM: stop capture and drain. Second: exit at once. (`pipeline` has `summary` and
    `request_stop`.)"""
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
