"""Keypoint bundles at run time: each keypoint's peaks drawn with the skeleton and their confidence, optionally
over the segmentation overlay of a second bundle (`--also`: two models on one frame).

A graph with the decoder fused answers (x, y, confidence) per keypoint and peak; a graph exported with
--no-fuse-argmax answers heatmaps, which `decode_heatmaps` turns into the same numbers here (the same local-
maximum and quarter-cell rule as edgeseg.models.hourglass.decode_peaks). Points are mapped from the model's
pixels to the frame's with the pixel-centre convention, as the resize that fed the model does.

With `--also`, the frame is resized once and both graphs take that one picture (their bundles must share an input
size); each model's inference is its own stage in the timings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from edgeseg.bundle import Bundle
from edgeseg.errors import EdgesegError
from edgeseg.runtime.backends import Backend, open_backend
from edgeseg.runtime.detector import BundleModel, run_sequential
from edgeseg.runtime.frames import Frame, Prediction
from edgeseg.runtime.overlay import Overlay
from edgeseg.runtime.pipeline import RunSummary, StageTimes
from edgeseg.runtime.tensors import frames_to_input, output_to_class_maps, resize_frame

# One colour per keypoint (BGR), far apart in hue: tip, jaw_a, jaw_b, joint, entry for the medical graspers.
KEYPOINT_COLOURS = cv2.cvtColor(
    np.array([[[int(i * 0.618034 * 180) % 180, 230, 255] for i in range(32)]], np.uint8), cv2.COLOR_HSV2BGR
)[0]


@dataclass(frozen=True)
class KeypointSpec:
    """A keypoint bundle's manifest section, typed: names, bones as index pairs, and how its peaks are read."""

    names: tuple[str, ...]
    bones: tuple[tuple[int, int], ...]
    peaks: int
    stride: int
    min_confidence: float

    @classmethod
    def of(cls, bundle: Bundle) -> KeypointSpec:
        section = bundle.manifest["keypoints"]
        names = tuple(section["names"])
        bones = tuple((names.index(a), names.index(b)) for a, b in section["skeleton"])
        return cls(names, bones, int(section["peaks"]), int(section["stride"]), float(section["min_confidence"]))

    def half_cell(self, frame_height: int, model_height: int) -> float:
        """Half a heatmap cell in a frame's pixels: how far a peak may move and still be the same answer (the sign
        of the quarter-cell step can tip either way on a small change)."""
        return self.stride * frame_height / model_height / 2


def decode_heatmaps(heatmaps: np.ndarray, stride: int, peaks: int) -> np.ndarray:
    """(N, K, H, W) heatmaps -> (N, K, peaks, 3) of x, y in input pixels and confidence, highest first: the
    graph's fused decoder, in numpy (local maxima of a 3x3 window, a quarter cell towards the higher neighbour)."""
    batch, keypoints, height, width = heatmaps.shape
    padded = np.pad(heatmaps, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-1e4)
    neighbourhood = np.max([padded[:, :, dy : dy + height, dx : dx + width] for dy in range(3) for dx in range(3)], 0)
    scores = np.where(heatmaps < neighbourhood, heatmaps - 1e4, heatmaps).reshape(batch, keypoints, -1)
    order = np.argsort(-scores, axis=2, kind="stable")[:, :, :peaks]
    value = np.take_along_axis(scores, order, axis=2)
    y, x = order // width, order % width
    centre = padded.reshape(batch, keypoints, -1)

    def neighbour(dy: int, dx: int) -> np.ndarray:
        return np.take_along_axis(centre, (y + 1 + dy) * (width + 2) + (x + 1 + dx), axis=2)

    shift_x = 0.25 * np.sign(neighbour(0, 1) - neighbour(0, -1))
    shift_y = 0.25 * np.sign(neighbour(1, 0) - neighbour(-1, 0))
    px = (x + shift_x + 0.5) * stride - 0.5
    py = (y + shift_y + 0.5) * stride - 0.5
    return np.stack([px, py, np.clip(value, 0, 1)], axis=3).astype(np.float32)


class KeypointDetector(BundleModel):
    """A keypoint graph: frames in, (K, peaks, 3) of x, y in frame pixels and confidence out."""

    what = "a keypoint bundle"

    def __init__(self, bundle: Bundle, backend: Backend):
        super().__init__(bundle, backend)
        self.spec = KeypointSpec.of(bundle)

    def detect(self, image: np.ndarray, times: StageTimes, feed: np.ndarray | None = None) -> np.ndarray:
        """The peaks of one frame; `feed` is its graph input where the caller made it already."""
        if feed is None:
            with times.stage("preprocess"):
                feed = self.model_input(image)
        with times.stage("infer"):
            output = self.backend.infer(feed)
        if not self.bundle.output.fused_argmax:
            with times.stage("decode"):
                output = decode_heatmaps(output, self.spec.stride, self.spec.peaks)
        return to_frame_pixels(output[0], self.bundle.input.size, image.shape[:2])


def to_frame_pixels(peaks: np.ndarray, model_size: tuple[int, int], frame_size: tuple[int, int]) -> np.ndarray:
    """Peaks in model pixels -> frame pixels (pixel centres line up, as in a linear resize)."""
    scale_y, scale_x = frame_size[0] / model_size[0], frame_size[1] / model_size[1]
    mapped = peaks.copy()
    mapped[..., 0] = (peaks[..., 0] + 0.5) * scale_x - 0.5
    mapped[..., 1] = (peaks[..., 1] + 0.5) * scale_y - 0.5
    return mapped


def bones_between(peaks: np.ndarray, spec: KeypointSpec) -> list[tuple[int, int, tuple[float, float], tuple[float,
                                                                                                          float]]]:
    """The skeleton's lines: each confident peak of a bone's first keypoint joined to the nearest confident peak of
    its second, so two graspers get two skeletons. (first, second, start, end)."""
    lines = []
    for first, second in spec.bones:
        ends = peaks[second][peaks[second][:, 2] >= spec.min_confidence]
        if not len(ends):
            continue
        for x, y, confidence in peaks[first]:
            if confidence < spec.min_confidence:
                continue
            nearest = ends[np.argmin(np.hypot(ends[:, 0] - x, ends[:, 1] - y))]
            lines.append((first, second, (float(x), float(y)), (float(nearest[0]), float(nearest[1]))))
    return lines


def draw_keypoints(image: np.ndarray, peaks: np.ndarray, spec: KeypointSpec) -> np.ndarray:
    """The skeleton, then each confident peak as a dot in its keypoint's colour with its confidence beside it, drawn
    into `image` (which is returned). Sizes follow the frame's, so a 1080p frame's points are as legible as a
    VGA frame's."""
    scale = max(image.shape[:2]) / 640
    radius, thickness = max(2, round(4 * scale)), max(1, round(2 * scale))
    shift = 4  # sub-pixel positions: OpenCV draws in 1/16 pixels with shift 4

    def point(xy: tuple[float, float]) -> tuple[int, int]:
        return round(xy[0] * 16), round(xy[1] * 16)

    for _, _, start, end in bones_between(peaks, spec):
        cv2.line(image, point(start), point(end), (255, 255, 255), thickness, cv2.LINE_AA, shift)
    for k, name in enumerate(spec.names):
        colour = tuple(int(c) for c in KEYPOINT_COLOURS[k % len(KEYPOINT_COLOURS)])
        for x, y, confidence in peaks[k]:
            if confidence < spec.min_confidence:
                continue
            cv2.circle(image, point((x, y)), radius * 16, colour, -1, cv2.LINE_AA, shift)
            cv2.circle(image, point((x, y)), radius * 16, (0, 0, 0), 1, cv2.LINE_AA, shift)
            label, origin = f"{name} {confidence:.2f}", (int(x) + radius + 2, int(y) - radius)
            # A dark outline under the letters keeps them legible on tissue, glare and the overlay's colours alike.
            cv2.putText(image, label, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.35 * scale, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(image, label, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.35 * scale, colour, 1, cv2.LINE_AA)
    return image


def keypoint_records(peaks: np.ndarray, spec: KeypointSpec) -> list[dict[str, Any]]:
    """The points drawn, for --save-mask's JSON: keypoint name, x and y in frame pixels, confidence."""
    return [
        {"keypoint": name, "x": round(float(x), 2), "y": round(float(y), 2), "confidence": round(float(c), 4)}
        for name, candidates in zip(spec.names, peaks)
        for x, y, c in candidates
        if c >= spec.min_confidence
    ]


class Segmentation:
    """The `--also` bundle: a semantic model taking the same resized frame, drawn as the overlay under the points.
    It runs its best precision (the lowest that met its accuracy bar): --precision chooses the keypoint model's."""

    def __init__(self, bundle: Bundle, options: Any):
        self.bundle = bundle
        self.backend = open_backend(bundle, options.backend, "best", options.threads, dla_core=options.dla_core).open()
        self.overlay = Overlay(bundle.classes, options.alpha, options.filter_mode, options.visualize, options.legend)

    def close(self) -> None:
        self.backend.close()

    def class_map(self, resized: np.ndarray, times: StageTimes) -> tuple[np.ndarray, np.ndarray | None]:
        feed = frames_to_input([resized], self.bundle.input)
        with times.stage("infer also"):
            output = self.backend.infer(feed)
        logits = output[0] if self.bundle.output.kind == "logits" else None
        return output_to_class_maps(output, self.bundle.output)[0], logits


def check_also(bundle: Bundle, also: Bundle) -> None:
    """The --also bundle draws a class map under the points and takes the same resized frame."""
    if not also.is_semantic:
        raise EdgesegError(f"--also {also.root} is not a semantic segmentation bundle; --also takes one whose class "
                           "map is drawn under the keypoints (e.g. edgeseg export demo-medical)")  # fmt: skip
    if tuple(also.input.size) != tuple(bundle.input.size) or also.input.dynamic_size:
        theirs, ours = ("x".join(map(str, b.input.size)) for b in (also, bundle))
        raise EdgesegError(f"--also {also.root} takes {theirs} frames but {bundle.root} takes {ours}: both models "
                           f"share one resized frame; export it with --size {ours}")  # fmt: skip


def run_keypoints(bundle: Bundle, options: Any) -> RunSummary:
    """`edgeseg run` for a keypoint bundle, alone or over the segmentation of `options.also`."""
    also = Bundle.load(options.also) if options.also else None
    if also is not None:
        check_also(bundle, also)
    detector = KeypointDetector.for_bundle(bundle, options.backend, options.precision, options.threads,
                                           options.dla_core)  # fmt: skip
    try:
        segmentation = Segmentation(also, options) if also is not None else None
    except BaseException:
        detector.close()
        raise
    spec, size = detector.spec, bundle.input.size

    def analyse(frame: Frame, times: StageTimes) -> tuple[np.ndarray, Prediction]:
        with times.stage("preprocess"):
            resized = resize_frame(frame.image, size)
            feed = frames_to_input([resized], bundle.input)
        peaks = detector.detect(frame.image, times, feed)
        class_map = logits = None
        if segmentation is not None:
            class_map, logits = segmentation.class_map(resized, times)
        with times.stage("overlay"):
            # The overlay's picture is its own buffer, free to draw on until the next frame's render.
            drawn = (segmentation.overlay.render(frame.image, class_map, logits) if segmentation is not None
                     else frame.image.copy())  # fmt: skip
            draw_keypoints(drawn, peaks, spec)
        records = {"keypoints": keypoint_records(peaks, spec)} if options.save_mask else None
        stored = Frame(frame.index, frame.image, frame.timestamp, name=frame.name)
        return drawn, Prediction(stored, class_map, None, records)

    closing = [detector] + ([segmentation] if segmentation is not None else [])
    description = detector.backend.describe() + (f" + {segmentation.backend.describe()} (--also)" if segmentation
                                                 else "")  # fmt: skip
    return run_sequential(options, description, analyse, closing)
