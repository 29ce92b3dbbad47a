"""Instance bundles at run time: the detector's fixed-size answer drawn on each frame.

Each detection above the score threshold gets its 28x28 mask resized into its box at frame resolution and
blended in a colour of its own, its box, and its class and score. The per-instance work is on box-sized
crops only; the whole frame is touched once, by one blend through the union of the masks.

The loop is sequential (capture, infer, draw, write per frame): a file is read to its last frame, and a live
source hands over its newest frame each time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeseg.bundle import Artifact, Bundle
from edgeseg.errors import EdgesegError
from edgeseg.runtime.backends import Backend, ONNXRuntimeBackend, open_backend
from edgeseg.runtime.frames import Frame, Prediction
from edgeseg.runtime.pipeline import RunSummary, StageTimes, close_all, stop_on_signals
from edgeseg.runtime.sinks import open_sinks
from edgeseg.runtime.sources import open_source
from edgeseg.runtime.tensors import frames_to_input

# Distinct colours for neighbouring instance ids (BGR): a golden-ratio walk round the hue circle.
PALETTE = cv2.cvtColor(
    np.array([[[int(i * 0.618034 * 180) % 180, 200, 255] for i in range(64)]], np.uint8), cv2.COLOR_HSV2BGR
)[0]


@dataclass
class Detections:
    boxes: np.ndarray  # (n, 4) x1 y1 x2 y2 at frame resolution
    scores: np.ndarray  # (n,)
    classes: np.ndarray  # (n,) index into the bundle's classes
    masks: np.ndarray  # (n, 28, 28) probabilities inside each box


def refuse_triton(backend: str) -> None:
    """Instance bundles need every output of the graph; the Triton backend returns one."""
    if backend.startswith("triton://"):
        raise EdgesegError("an instance bundle runs on onnxruntime or tensorrt so far, not through Triton")


class InstanceDetector:
    """An instance graph on any backend that returns every output (ONNX Runtime, TensorRT): frames in, detections
    at frame resolution out. It opens the backend it is given and closes it with `close()`."""

    def __init__(self, bundle: Bundle, backend: Backend):
        self.bundle, self.backend = bundle, backend.open()
        self.output_names = bundle.manifest["instances"]["outputs"]  # boxes, scores, classes, masks, count
        self.name = backend.artifact_name

    @classmethod
    def for_bundle(cls, bundle: Bundle, backend: str = "auto", precision: str = "best", threads: int | None = None,
                   dla_core: int | None = None) -> InstanceDetector:  # fmt: skip
        """The artifact `edgeseg run` would pick for this backend and precision."""
        refuse_triton(backend)
        return cls(bundle, open_backend(bundle, backend, precision, threads, dla_core=dla_core))

    @classmethod
    def for_file(cls, bundle: Bundle, path: Path, threads: int | None = None) -> InstanceDetector:
        """An ONNX file of this bundle's graph on ONNX Runtime's CPU provider (a variant calibrate measures)."""
        return cls(bundle, ONNXRuntimeBackend(path, providers=["CPUExecutionProvider"], threads=threads))

    @property
    def artifact(self) -> Artifact:
        """The bundle's artifact this detector runs."""
        return next(a for a in self.bundle.artifacts if Path(a.path).name == self.name)

    def close(self) -> None:
        self.backend.close()

    def model_input(self, image: np.ndarray) -> np.ndarray:
        """The graph input for one frame of any size: resized to the model's, then as the contract says."""
        model_height, model_width = self.bundle.input.size
        resized = image if image.shape[:2] == (model_height, model_width) else cv2.resize(
            image, (model_width, model_height)
        )  # fmt: skip
        return frames_to_input([resized], self.bundle.input)

    def detect(self, image: np.ndarray, times: StageTimes) -> Detections:
        height, width = image.shape[:2]
        model_height, model_width = self.bundle.input.size
        with times.stage("preprocess"):
            feed = self.model_input(image)
        with times.stage("infer"):
            outputs = self.backend.infer_outputs(feed)
        boxes, scores, classes, masks, count = (outputs[name] for name in self.output_names)
        count = int(count)
        scale = np.array([width / model_width, height / model_height] * 2, np.float32)
        return Detections(boxes[:count] * scale, scores[:count], classes[:count], masks[:count])


def shown(found: Detections, threshold: float) -> list[int]:
    """The detections drawn, in score order: the n-th of them has instance id n in the id map."""
    return [i for i in range(len(found.scores)) if found.scores[i] >= threshold]


def detection_records(found: Detections, names: list[str], threshold: float) -> list[dict[str, Any]]:
    """The drawn detections as --save-mask's JSON has them: instance id (its pixels in the id map), class, score
    and box (x1, y1, x2, y2 in frame pixels)."""
    return [
        {"id": number, "class": names[int(found.classes[i])], "class_index": int(found.classes[i]),
         "score": round(float(found.scores[i]), 4), "box": [round(float(v), 1) for v in found.boxes[i]]}
        for number, i in enumerate(shown(found, threshold), start=1)
    ]  # fmt: skip


def draw_instances(
    image: np.ndarray, found: Detections, names: list[str], alpha: float = 0.5, threshold: float = 0.5,
    visualize: str = "overlay",
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The frame with each instance drawn, and the instance-id map (0: none, 1..n in score order).

    Only each box's crop is blended, so the cost grows with the area of the instances, not the frame's. The
    per-crop work is OpenCV's on uint8 masks (0/255) written in place into views of the frame: numpy's boolean
    indexing and broadcast copyto cost 4-5x as much (1080p, 30 instances: 24 ms against 5).
    """
    height, width = image.shape[:2]
    ids = np.zeros((height, width), np.uint8)
    drawn = np.zeros_like(image) if visualize == "mask" else image.copy()
    colour = np.zeros_like(image) if visualize == "both" else None
    keep = shown(found, threshold)
    for number, i in enumerate(keep, start=1):
        x0, y0, x1, y1 = (int(round(v)) for v in found.boxes[i])
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        if x1 <= x0 or y1 <= y0:
            continue
        probabilities = cv2.resize(found.masks[i], (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        region = ids[y0:y1, x0:x1]
        # 255 where this instance covers a pixel that no higher-scored instance has taken
        fresh = cv2.bitwise_and(cv2.compare(probabilities, 0.5, cv2.CMP_GE), cv2.compare(region, 0, cv2.CMP_EQ))
        cv2.bitwise_or(region, min(number, 255), dst=region, mask=fresh)
        crop = drawn[y0:y1, x0:x1]
        solid = np.empty_like(crop)
        solid[:] = PALETTE[number % len(PALETTE)]
        cv2.copyTo(solid if visualize == "mask" else cv2.addWeighted(crop, 1 - alpha, solid, alpha, 0), fresh, crop)
        if colour is not None:
            cv2.copyTo(solid, fresh, colour[y0:y1, x0:x1])
    for number, i in enumerate(keep, start=1):
        x0, y0, x1, y1 = (int(round(v)) for v in found.boxes[i])
        tint = tuple(int(c) for c in PALETTE[number % len(PALETTE)])
        cv2.rectangle(drawn, (x0, y0), (x1, y1), tint, 1)
        label = f"{names[int(found.classes[i])]} {found.scores[i]:.2f}"
        cv2.putText(drawn, label, (x0, max(y0 - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.35, tint, 1, cv2.LINE_AA)
    if colour is not None:
        drawn = np.concatenate([drawn, colour], axis=1)
    return drawn, ids


class InstanceRun:
    """What the pipeline's signal handling needs of a run: its summary, and a way to ask it to stop."""

    def __init__(self, summary: RunSummary):
        self.summary, self.stopped = summary, False

    def request_stop(self) -> None:
        self.stopped = True


def run_instances(bundle: Bundle, options: Any) -> RunSummary:
    """`edgeseg run` for an instance bundle: every frame of a file, the newest of a live source."""
    threshold = 0.5 if options.score_threshold is None else options.score_threshold
    detector = InstanceDetector.for_bundle(bundle, options.backend, options.precision, options.threads,
                                           options.dla_core)  # fmt: skip
    names = [c.name for c in bundle.classes]
    summary, times = RunSummary(backend=detector.backend.describe()), StageTimes()
    try:
        source = open_source(options.inputs[0], options.stream)
    except BaseException:
        detector.close()
        raise
    try:
        sinks = open_sinks(options.outputs, source.fps or 30.0, options.save_mask, options.view)
    except BaseException:
        source.close()
        detector.close()
        raise
    run, errors = InstanceRun(summary), []
    started = time.perf_counter()
    try:
        with stop_on_signals(run):
            while not run.stopped and (options.frames is None or summary.frames_written < options.frames):
                with times.stage("capture"):
                    frame = source.read()
                if frame is None:
                    break
                summary.frames_read += 1
                found = detector.detect(frame.image, times)
                summary.frames_processed += 1
                with times.stage("overlay"):
                    drawn, ids = draw_instances(frame.image, found, names, options.alpha, threshold, options.visualize)
                with times.stage("sink"):
                    records = detection_records(found, names, threshold) if options.save_mask else None
                    prediction = Prediction(
                        Frame(frame.index, frame.image, frame.timestamp, name=frame.name), ids, None, records
                    )
                    for sink in sinks:
                        sink.write(drawn, prediction)
                summary.frames_written += 1
                times.add("latency", time.perf_counter() - frame.timestamp)
                summary.first_written = summary.first_written or time.perf_counter()
                summary.last_written = time.perf_counter()
    finally:
        close_all(sinks, [source], errors)
        detector.close()
    if errors:
        raise errors[0]
    summary.seconds = time.perf_counter() - started
    summary.bad_frames, summary.gaps = source.bad_frames, list(source.gaps)
    summary.stages = times.summary()
    return summary
