"""The names `edgeseg eval` on an instance bundle had before eval became one entry point (evaluate.py), kept
importable while the CLI still calls them: evaluate(), format_report() and write_json() serve every kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeseg.tools.evaluate import evaluate
from edgeseg.tools.scorers.instances import detect_labelled, instance_table

__all__ = ["detect_labelled", "evaluate_instances", "instance_table"]


def evaluate_instances(bundle_dir: Path, data: str, backend: str = "auto", precision: str = "best",
                       frames: int | None = None, progress: bool = True) -> dict[str, Any]:  # fmt: skip
    return evaluate(bundle_dir, data, backend, precision, frames, progress).to_dict()
