"""`edgeseg eval`: a bundle scored against labelled frames by its kind's scorer (tools/scorers): mIoU, per-class IoU,
pixel accuracy and a confusion matrix for a class map; COCO box and mask AP for instances; PCK and mean error for
keypoints. One entry point for every kind: `evaluate` runs it, `format_report` shows it, `write_json` keeps it."""

from __future__ import annotations

import json
from pathlib import Path

from edgeseg.bundle import Bundle
from edgeseg.fileio import write_text_atomic
from edgeseg.tools.scorers import Scores, scorer_for


def evaluate(
    bundle_dir: Path,
    data: str,
    backend: str = "auto",
    precision: str = "best",
    frames: int | None = None,
    progress: bool = True,
) -> Scores:
    """Run the bundle over labelled frames and score it as its kind is scored (an EvalResult for a class map)."""
    bundle = Bundle.load(bundle_dir)
    return scorer_for(bundle).evaluate(bundle, data, backend, precision, frames, progress)


def format_report(result: Scores) -> str:
    return result.report()


def write_json(result: Scores, path: Path) -> None:
    write_text_atomic(Path(path), json.dumps(result.to_dict(), indent=2) + "\n")
