"""Keypoint bundles (output kind `keypoints`): each keypoint's peaks at frame resolution, drawn with the skeleton
and their confidence, optionally over the overlay of a semantic bundle's answer (`run --also`).

A graph with the decoder fused answers (x, y, confidence) per keypoint and peak; a graph exported with
--no-fuse-argmax answers heatmaps, which `decode_heatmaps` turns into the same numbers here (the same local-
maximum and quarter-cell rule as edgeseg.models.hourglass.decode_peaks). Points are mapped from the model's
pixels to the frame's with the pixel-centre convention, as the resize that fed the model does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from edgeseg.bundle import Bundle
from edgeseg.runtime.heads.base import Head, Keypoint, Result

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


def to_frame_pixels(peaks: np.ndarray, model_size: tuple[int, int], frame_size: tuple[int, int]) -> np.ndarray:
    """Peaks in model pixels -> frame pixels (pixel centres line up, as in a linear resize)."""
    scale_y, scale_x = frame_size[0] / model_size[0], frame_size[1] / model_size[1]
    mapped = peaks.copy()
    mapped[..., 0] = (peaks[..., 0] + 0.5) * scale_x - 0.5
    mapped[..., 1] = (peaks[..., 1] + 0.5) * scale_y - 0.5
    return mapped


def skeleton_links(peaks: np.ndarray, spec: KeypointSpec) -> list[tuple[int, int, int, int]]:
    """The skeleton's links between peaks: each confident peak of a bone's first keypoint joined to the nearest
    confident peak of its second, so two graspers get two skeletons. (first, its peak, second, its peak)."""
    links = []
    for first, second in spec.bones:
        ends = np.flatnonzero(peaks[second][:, 2] >= spec.min_confidence)
        if not len(ends):
            continue
        for p, (x, y, confidence) in enumerate(peaks[first]):
            if confidence < spec.min_confidence:
                continue
            distances = np.hypot(peaks[second][ends, 0] - x, peaks[second][ends, 1] - y)
            links.append((first, p, second, int(ends[np.argmin(distances)])))
    return links


def bones_between(
    peaks: np.ndarray, spec: KeypointSpec
) -> list[tuple[int, int, tuple[float, float], tuple[float, float]]]:
    """The skeleton's lines, as skeleton_links joins them: (first, second, start, end)."""
    return [
        (first, second, (float(peaks[first][p][0]), float(peaks[first][p][1])),
         (float(peaks[second][q][0]), float(peaks[second][q][1])))
        for first, p, second, q in skeleton_links(peaks, spec)
    ]  # fmt: skip


def objects_of(peaks: np.ndarray, spec: KeypointSpec) -> dict[tuple[int, int], int]:
    """Which object each confident peak belongs to: peaks the skeleton links share one, numbered from 0 in the
    order of the keypoints' names and each keypoint's confidence. {(keypoint, peak): object}."""
    parent: dict[tuple[int, int], tuple[int, int]] = {
        (k, p): (k, p) for k in range(len(spec.names)) for p in range(peaks.shape[1])
        if peaks[k][p][2] >= spec.min_confidence
    }  # fmt: skip

    def root(node: tuple[int, int]) -> tuple[int, int]:
        while parent[node] != node:
            node = parent[node]
        return node

    for first, p, second, q in skeleton_links(peaks, spec):
        a, b = root((first, p)), root((second, q))
        if a != b:
            parent[max(a, b)] = min(a, b)
    numbers: dict[tuple[int, int], int] = {}
    return {node: numbers.setdefault(root(node), len(numbers)) for node in parent}


def draw_keypoints(image: np.ndarray, peaks: np.ndarray, spec: KeypointSpec) -> np.ndarray:
    """The skeleton, then each confident peak as a dot in its keypoint's colour with its confidence beside it, drawn
    into `image` (which is returned). Sizes follow the frame's, so a 1080p frame's points are as legible as a
    VGA frame's."""
    scale = max(image.shape[:2]) / 640
    radius, thickness = max(2, round(4 * scale)), max(1, round(2 * scale))
    shift = 4  # sub-pixel positions: OpenCV draws in 1/16 pixels with shift 4

    def point(xy: tuple[float, float]) -> tuple[int, int]:
        return int(round(xy[0] * 16)), int(round(xy[1] * 16))  # numpy 1.x rounds a float32 to a float32

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


class KeypointHead(Head):
    """Peaks per keypoint from the fused decoder (or from heatmaps, decoded here), mapped to the frame's pixels."""

    kinds = ("keypoints",)
    what = "a keypoint bundle"

    def __init__(self, bundle: Bundle, options: Any = None):
        super().__init__(bundle, options)
        self.spec = KeypointSpec.of(bundle)

    @classmethod
    def score_threshold_refusal(cls, bundle: Bundle) -> str:
        return (f"--score-threshold is for instance bundles; {bundle.root} is a keypoint model, whose points are drawn "
                "from the confidence its manifest names (keypoints.min_confidence)")  # fmt: skip

    def decode(self, outputs: Any, frame_sizes: list[tuple[int, int]]) -> list[Result]:
        if not self.bundle.output.fused_argmax:
            outputs = decode_heatmaps(outputs, self.spec.stride, self.spec.peaks)
        return [
            Result(self, size, to_frame_pixels(outputs[i], self.bundle.input.size, size))
            for i, size in enumerate(frame_sizes)
        ]

    def draw(self, image: np.ndarray, result: Result, readout: str = "") -> np.ndarray:
        # Points are drawn in place: on the --also bundle's picture (its own buffer until the next frame's), else on
        # a copy of the frame.
        canvas = self.under_drawn(image, result)
        return draw_keypoints(image.copy() if canvas is image else canvas, result.answer, self.spec)

    def keypoints(self, result: Result) -> list[Keypoint] | None:
        peaks, objects = result.answer, objects_of(result.answer, self.spec)
        return [
            Keypoint(name, float(x), float(y), float(confidence), objects[(k, p)])
            for k, name in enumerate(self.spec.names)
            for p, (x, y, confidence) in enumerate(peaks[k])
            if confidence >= self.spec.min_confidence
        ]

    def records(self, result: Result) -> dict[str, Any] | None:
        return {**self.under_records(result), "keypoints": keypoint_records(result.answer, self.spec)}
