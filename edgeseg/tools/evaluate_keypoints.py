"""The names `edgeseg eval` on a keypoint bundle had before eval became one entry point (evaluate.py), kept
importable while the CLI still calls them: evaluate(), format_report() and write_json() serve every kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeseg.tools.evaluate import evaluate
from edgeseg.tools.scorers.keypoints import keypoint_table, labelled_keypoints, score_keypoints

__all__ = ["evaluate_keypoints", "keypoint_table", "labelled_keypoints", "score_keypoints"]


def evaluate_keypoints(bundle_dir: Path, data: str, backend: str = "auto", precision: str = "best",
                       frames: int | None = None, progress: bool = True) -> dict[str, Any]:  # fmt: skip
    return evaluate(bundle_dir, data, backend, precision, frames, progress).to_dict()
