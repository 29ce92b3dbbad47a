"""`edgeseg bench` on a keypoint bundle: peaks scored by agreement with the FP32 row's (its confident peaks reproduced
within half a heatmap cell) and PCK@0.05 / @0.1 and mean error where the frames carry keypoint labels; the drawing at
the source resolution and at 1080p against one cv2.addWeighted; the baseline is the hourglass in PyTorch eager. (With
`--also B2`, for a bundle of any kind, the second bundle is a model of every row, its inference the stage "infer also",
drawn under the first as `edgeseg run B --also B2` draws it.)
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from edgeseg.bench.baseline import GraphBaseline, rebuilt_model
from edgeseg.bench.kind import BenchKind
from edgeseg.bench.rows import KEYPOINT_SOURCE
from edgeseg.bundle import Bundle
from edgeseg.metrics import keypoint_scores, peak_shifts
from edgeseg.runtime.keypoints import KeypointSpec, draw_keypoints
from edgeseg.timing import timed


class KeypointKind(BenchKind):
    name = "keypoints"
    default_source = KEYPOINT_SOURCE + "&keypoints=1"
    scene = "medical"

    def __init__(self, bundle: Bundle, frames: list[Any], label_names: list[str] | None):
        super().__init__(bundle, frames, label_names)
        self.spec = KeypointSpec.of(bundle)
        self.truths = [f.keypoints for f in frames] if all(f.keypoints is not None for f in frames) else None
        self.tolerance = self.spec.half_cell(self.images[0].shape[0], bundle.input.size[0])

    def score(self, found: list[Any], reference: list[Any]) -> dict[str, Any]:
        """Peak agreement with the FP32 row; PCK and mean error when the frames carry keypoint labels."""
        spec = self.spec
        shifts = np.concatenate([peak_shifts(a, b, spec.min_confidence) for a, b in zip(reference, found)])
        result: dict[str, Any] = {"agreement": float(np.mean(shifts <= self.tolerance)) if len(shifts) else 1.0}
        if self.truths is not None:
            figures = keypoint_scores(found, self.truths, spec.names, spec.min_confidence, self.images[0].shape[:2])
            result.update({key: figures[key] for key in ("pck05", "pck10", "mean_error_px")})
        return result

    def overlay_costs(self, frame: np.ndarray) -> list[dict[str, Any]]:
        return keypoint_overlay_costs(self.bundle, frame)

    def baseline(self) -> tuple[Any, str]:
        return GraphBaseline.of(self.bundle, torch_graph)


def torch_graph(bundle: Bundle) -> Any:
    """The hourglass in PyTorch as export wrapped it: uint8 frames in, peaks (or heatmaps) out."""
    from edgeseg.export.keypoints import keypoint_graph

    section = bundle.manifest["keypoints"]
    model = rebuilt_model(bundle, len(section["names"]))
    return keypoint_graph(model, bundle.input.mean, bundle.input.std, bundle.output.fused_argmax, section["peaks"])


def keypoint_overlay_costs(bundle: Bundle, frame: np.ndarray, runs: int = 30) -> list[dict[str, Any]]:
    """Two graspers' points and skeletons drawn at the source resolution and at 1080p, against one cv2.addWeighted."""
    spec = KeypointSpec.of(bundle)
    rows = []
    for label, (height, width) in (("source", frame.shape[:2]), ("1080p", (1080, 1920))):
        image = cv2.resize(frame, (width, height))
        peaks = scattered_peaks(spec, height, width)
        blend = lambda image=image: cv2.addWeighted(image, 0.5, image, 0.5, 0.0)  # noqa: E731 - timed() calls it
        reference = float(np.median(timed(blend, runs)) * 1000)
        draw = lambda image=image, peaks=peaks: draw_keypoints(image.copy(), peaks, spec)  # noqa: E731
        cost = float(np.median(timed(draw, runs)) * 1000)
        rows.append({"resolution": f"{width}x{height}", "at": label,
                     "filter": f"{int((peaks[..., 2] >= spec.min_confidence).sum())} points",
                     "overlay_ms": cost, "addweighted_ms": reference, "ratio": cost / reference})  # fmt: skip
    return rows


def scattered_peaks(spec: KeypointSpec, height: int, width: int) -> np.ndarray:
    """Every keypoint found at every peak, spread over the frame: the most the overlay ever draws, without a model."""
    rng = np.random.default_rng(0)
    peaks = np.empty((len(spec.names), spec.peaks, 3), np.float32)
    peaks[..., 0] = rng.uniform(0, width - 1, peaks.shape[:2])
    peaks[..., 1] = rng.uniform(0, height - 1, peaks.shape[:2])
    peaks[..., 2] = 0.9
    return peaks
