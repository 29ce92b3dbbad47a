"""The Python API's objects: a bundle's model as a callable, and a running `run` as an iterator of answers.

    model = Model.open("bundle")                 # the artifact `run` picks: pick_backend, as `run` calls it
    result = model(frame_bgr)                    # the head's Result: .class_map / .instances / .keypoints, .plot()
    for frame, result in stream(model, "video.mp4", outputs=["out.mp4"]):
        ...

A model answers on the caller's thread. `stream` runs `run` itself (capture, inference and drawing on their own
threads, the outputs written as `run` writes them) on a thread of its own, and hands each frame and its Result over
through a sink; leaving the loop early stops the run and closes its outputs.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.bundle import Bundle
from edgeseg.errors import EdgesegError
from edgeseg.runtime.detector import BundleModel
from edgeseg.runtime.frames import Prediction
from edgeseg.runtime.heads import DrawOptions, Head, Result, check_run_options
from edgeseg.runtime.run import RunOptions, run
from edgeseg.runtime.sinks.base import Sink


class Model(BundleModel):
    """A bundle's graph on the backend and precision `run` would pick; call it on a BGR frame (uint8 HxWx3)."""

    @classmethod
    def open(cls, bundle: str | Path, backend: str = "auto", precision: str = "best", threads: int | None = None,
             score_threshold: float | None = None) -> Model:  # fmt: skip
        loaded = Bundle.load(Path(bundle))
        options = DrawOptions(score_threshold=score_threshold)
        check_run_options(loaded, options)
        model = cls.for_bundle(loaded, backend, precision, threads, options=options)
        model.choice = (backend, precision, threads)  # what `stream` runs with
        return model

    def __call__(self, frame: np.ndarray) -> Result:
        return self.predict([frame])[0]

    def predict(self, frames: list[np.ndarray]) -> list[Result]:
        """One Result per frame, in order (frames may differ in size: each answer is at its own frame's)."""
        if isinstance(frames, np.ndarray) and frames.ndim != 4:
            raise EdgesegError("predict takes a list of frames; call the model on one frame: model(frame)")
        for index, frame in enumerate(frames):
            check_frame(frame, index)
        return self.answers(list(frames)) if len(frames) else []

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def describe(self) -> str:
        return f"{self.bundle.root} ({self.head.what}) on {self.backend.describe()}"


def check_frame(frame: Any, index: int = 0) -> None:
    """A frame is what OpenCV reads: uint8, height x width x 3, BGR."""
    if not isinstance(frame, np.ndarray):
        raise EdgesegError(f"frame {index} is a {type(frame).__name__}, not an image: give a uint8 BGR numpy array "
                           "of shape (height, width, 3), as cv2.imread or cv2.VideoCapture.read return")  # fmt: skip
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3 or min(frame.shape[:2]) < 1:
        raise EdgesegError(f"frame {index} is {frame.dtype} of shape {frame.shape}: give a uint8 BGR image of shape "
                           "(height, width, 3), as cv2.imread or cv2.VideoCapture.read return")  # fmt: skip


class ResultTap(Sink):
    """A sink beside a run's outputs that hands each frame and its Result to the iterating thread (two waiting at
    most: the run waits for the caller, as a file output would)."""

    def __init__(self, head: Head):
        self.head = head
        self.items: queue.Queue = queue.Queue(2)
        self.closed = False

    def write(self, image: np.ndarray, prediction: Prediction) -> None:
        result = prediction.answer
        while not self.closed:
            try:
                self.items.put((prediction.frame.image, result), timeout=0.1)
                return
            except queue.Full:
                continue

    def leave(self) -> None:
        """The caller stopped iterating: the run stops capturing, and writes nothing more here."""
        self.closed = self.stop_requested = True


def stream(model: Model, sources: str | list[str], outputs: list[str] | None = None, frames: int | None = None,
           save_mask: bool = False) -> Iterator[tuple[np.ndarray, Result]]:  # fmt: skip
    """Each frame of the source(s) with its Result, from `run` with the model's bundle, backend and precision; the
    outputs (`run -o` URIs) are written as `run` writes them."""
    inputs = [sources] if isinstance(sources, (str, Path)) else list(sources)
    draw = model.head.options
    options = RunOptions(bundle=model.bundle.root, inputs=[str(uri) for uri in inputs], outputs=outputs or ["none"],
                         backend=model.choice[0], precision=model.choice[1], frames=frames,
                         filter_mode=draw.filter_mode, alpha=draw.alpha, visualize=draw.visualize, save_mask=save_mask,
                         legend=draw.legend, threads=model.choice[2], score_threshold=draw.score_threshold)  # fmt: skip
    tap, failed = ResultTap(model.head), []

    def work() -> None:
        try:
            run(options, tap)
        except BaseException as exc:  # noqa: BLE001 - raised again on the iterating thread
            failed.append(exc)

    worker = threading.Thread(target=work, name="edgeseg-stream", daemon=True)
    worker.start()
    try:
        while True:
            try:
                item = tap.items.get(timeout=0.1)
            except queue.Empty:
                if worker.is_alive() or not tap.items.empty():
                    continue
                break
            yield item
    finally:
        tap.leave()
        worker.join()
    if failed:
        raise failed[0]
