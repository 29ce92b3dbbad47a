"""What a precision variant of a keypoint bundle costs: the change in PCK and in mean pixel error on held-out frames.

PCK@0.05 and @0.1 of the frame's diagonal and the mean error of the points found are measured against the frames'
keypoint labels (edgeseg.metrics, as `edgeseg eval` does). A source without them is scored against the FP32 graph's
own confident peaks as truth, and the manifest says so.

The bar a variant must meet is both figures: PCK@0.05 lost at most --max-pck-drop points (default 1) and the mean
error grown at most 0.5 px. --max-pck-drop's search compares one number with its target: PCK@0.05 with the mean
error's growth counted against it (0.5 px weighing as much as the PCK drop allowed), which reaches the target exactly
when both figures do.

Peak agreement is the share of FP32's confident peaks that the variant puts within half a heatmap cell of where
FP32 put them (same keypoint); --max-pck-drop's search ranks layers by the mean displacement of those peaks, which
moves with every layer, where PCK on a few frames moves in coarse steps and most layers tie.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.bundle import Bundle
from edgeseg.calibration.dataset import HeldOut
from edgeseg.calibration.fidelity import SENSITIVITY_FRAMES, write_panels
from edgeseg.metrics import keypoint_scores, peak_shifts, peaks_as_truth
from edgeseg.runtime.keypoints import KeypointDetector, KeypointSpec, draw_keypoints
from edgeseg.runtime.pipeline import StageTimes

DEFAULT_MAX_PCK_DROP = 1.0  # PCK@0.05 points `--precision best` accepts losing without a --max-pck-drop
MAX_ERROR_GROWTH_PX = 0.5  # and the mean error of the points found may grow this much


class KeypointFidelity:
    """Keypoint bundles: PCK and mean error of each variant against FP32's, on held-out frames."""

    metric, option = "pck05_with_error", "--max-pck-drop"

    def __init__(self, bundle: Bundle, fp32_path: Path, held_out: HeldOut, threads: int | None,
                 max_pck_drop: float | None):  # fmt: skip
        self.bundle, self.frames, self.threads = bundle, held_out.frames, threads
        self.spec = KeypointSpec.of(bundle)
        self.reference = self.detect(fp32_path)
        if held_out.keypoints is not None:
            self.truth, self.truths = "keypoint labels", held_out.keypoints
        else:
            self.truth = "FP32 peaks (the frames have no keypoint labels)"
            self.truths = [peaks_as_truth(peaks, self.spec.min_confidence) for peaks in self.reference]
        self.reference_scores = self.scores(self.reference)
        self.max_pck_drop = max_pck_drop
        self.target = None if max_pck_drop is None else self.reference_scores["pck05"] - max_pck_drop / 100
        self.tolerance = self.spec.half_cell(self.frames[0].shape[0], bundle.input.size[0])

    def detect(self, path: Path, frames: int | None = None) -> list[np.ndarray]:
        detector, times = KeypointDetector.for_file(self.bundle, path, self.threads), StageTimes()
        try:
            return [detector.detect(image, times) for image in self.frames[:frames]]
        finally:
            detector.close()

    def scores(self, answers: list[np.ndarray]) -> dict[str, Any]:
        spec = self.spec
        return keypoint_scores(answers, self.truths, spec.names, spec.min_confidence, self.frames[0].shape[:2])

    def displacements(self, variant: list[np.ndarray]) -> list[np.ndarray]:
        """Per frame, how far each FP32 confident peak moved in the variant (inf where it has no confident peak)."""
        return [peak_shifts(fp32, mine, self.spec.min_confidence) for fp32, mine in zip(self.reference, variant)]

    def value(self, path: Path) -> float:
        return self.combined(self.scores(self.detect(path)))

    def combined(self, scores: dict[str, Any]) -> float:
        """PCK@0.05 with the mean error's growth counted against it, MAX_ERROR_GROWTH_PX as much as the PCK drop
        allowed: at least `target` exactly when PCK lost at most --max-pck-drop and the mean error grew at most
        MAX_ERROR_GROWTH_PX, so --max-pck-drop's search meets both of the bar's figures."""
        reference = self.reference_scores
        allowed = (DEFAULT_MAX_PCK_DROP if self.max_pck_drop is None else self.max_pck_drop) / 100
        mine, fp32 = scores["mean_error_px"], reference["mean_error_px"]
        growth = 0.0 if mine is None or fp32 is None else mine - fp32
        return float(min(scores["pck05"], reference["pck05"] - allowed * growth / MAX_ERROR_GROWTH_PX))

    def loss(self, path: Path) -> float:
        moved = np.concatenate(self.displacements(self.detect(path, SENSITIVITY_FRAMES)))
        return float(np.minimum(moved, 4 * self.tolerance).mean()) if len(moved) else 0.0

    def describe(self, value: float) -> str:
        reference = self.reference_scores["pck05"]
        change = 100 * (value - reference)
        return (f"PCK@0.05 with the mean error's growth counted against it {value:.4f} ({change:+.2f} points against "
                f"FP32's {reference:.4f})")  # fmt: skip

    def report(self, path: Path, stem: str, label: str) -> dict[str, Any]:
        variant = self.detect(path)
        mine, fp32 = self.scores(variant), self.reference_scores
        per_frame = np.array([np.mean(moved <= self.tolerance) if len(moved) else 1.0
                              for moved in self.displacements(variant)])  # fmt: skip
        result: dict[str, Any] = {"frames": len(self.frames), "truth": self.truth, "agreement": float(per_frame.mean()),
                                  "worst_frame_agreement": float(per_frame.min()),
                                  "agreement_tolerance_px": self.tolerance}  # fmt: skip
        for key in ("pck05", "pck10", "mean_error_px"):
            result[key], result[f"fp32_{key}"] = mine[key], fp32[key]
        result["pck05_change"], result["pck10_change"] = mine["pck05"] - fp32["pck05"], mine["pck10"] - fp32["pck10"]
        result["mean_error_change_px"] = (None if mine["mean_error_px"] is None or fp32["mean_error_px"] is None
                                          else mine["mean_error_px"] - fp32["mean_error_px"])  # fmt: skip
        result[self.metric] = self.combined(mine)
        result["per_keypoint"] = mine["per_keypoint"]
        result["worst_frames"] = self.save_worst_frames(stem, label, variant, per_frame)
        return result

    def accepts(self, fidelity: dict[str, Any]) -> bool:
        allowed = DEFAULT_MAX_PCK_DROP if self.max_pck_drop is None else self.max_pck_drop
        return fidelity[self.metric] >= self.reference_scores["pck05"] - allowed / 100 - 1e-9  # see combined()

    def bar(self) -> str:
        error = f"{MAX_ERROR_GROWTH_PX} px of mean error"
        if self.max_pck_drop is not None:
            return f"--max-pck-drop {self.max_pck_drop:.2f} points of PCK@0.05 and {error}"
        return f"the default bar of {DEFAULT_MAX_PCK_DROP:.1f} point of PCK@0.05 and {error} (--max-pck-drop: PCK's)"

    def provenance(self) -> dict[str, Any]:
        return {"truth": self.truth, "fp32_pck05": self.reference_scores["pck05"],
                "fp32_pck10": self.reference_scores["pck10"],
                "fp32_mean_error_px": self.reference_scores["mean_error_px"]}  # fmt: skip

    def save_worst_frames(self, stem: str, label: str, variant: list[np.ndarray], per_frame: np.ndarray,
                          count: int = 2) -> list[str]:  # fmt: skip
        """Side by side, where the variant's peaks agree least with FP32's: FP32's points | the variant's."""
        written = []
        for rank, index in enumerate(np.argsort(per_frame, kind="stable")[:count]):
            panels = [(draw_keypoints(self.frames[index].copy(), peaks, self.spec), caption)
                      for peaks, caption in ((self.reference[index], "FP32"), (variant[index], label))]  # fmt: skip
            written.append(write_panels(self.bundle, f"{stem}-worst{rank + 1}.png", panels))
        return written
