"""What a benchmark is asked (BenchOptions) and what it reports (Row per backend x precision, BenchReport)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeseg.progress import Progress
from edgeseg.runtime.pipeline import percentiles_ms

DEFAULT_SOURCE = "synthetic://driving?seed=5000&size=1280x720&frames=100000"
KEYPOINT_SOURCE = "synthetic://medical?seed=5000&size=640x480&frames=100000"  # the default for keypoint bundles


@dataclass
class BenchOptions:
    source: str = DEFAULT_SOURCE
    frames: int = 200
    warmup: int = 20
    backend: str = "auto"
    precisions: str = "all"  # all, or a comma list of fp32/fp16/int8
    accuracy_frames: int = 32
    baseline: bool = True
    threads: int | None = None
    progress: bool = True
    also: Path | None = None  # a second bundle of any kind run on the same frames (as run --also)


@dataclass
class Row:
    name: str
    backend: str
    precision: str
    artifact: str
    engine: dict[str, float] = field(default_factory=dict)
    stages_alone_ms: dict[str, float] = field(default_factory=dict)
    sequential_fps: float = 0.0
    end_to_end: dict[str, Any] = field(default_factory=dict)
    accuracy: dict[str, Any] = field(default_factory=dict)
    engine_samples_ms: list[float] = field(default_factory=list)
    error: str = ""  # why this row has no figures: one row failing leaves the rest of the report

    @property
    def stage_limited_fps(self) -> float:
        total = sum(self.stages_alone_ms.values())
        return 1000.0 / total if total else 0.0


def measured_rows(
    calls: dict[tuple[str, str], Callable[[], Any]],
    artifacts: dict[tuple[str, str], str],
    options: BenchOptions,
    progress: Progress,
    fill: Callable[[Row], None],
    names: dict[tuple[str, str], str] | None = None,
) -> list[Row]:
    """One Row per (backend, precision) (named `names[key]`, else "backend precision"): engine-only latency of every
    row timed in interleaved rounds (so a shared machine's slow spells fall on all rows alike: the ratios between
    them are the result), then `fill` measures the rest of each row (stages, loops, accuracy)."""
    from edgeseg.timing import interleaved_samples

    samples = interleaved_samples(calls, options.warmup, options.frames)
    rows = []
    for (backend, precision), engine in samples.items():
        name = (names or {}).get((backend, precision), f"{backend} {precision}")
        row = Row(name, backend, precision, artifacts[(backend, precision)])
        row.engine, row.engine_samples_ms = with_fps(engine), [s * 1000 for s in engine]
        row.error = failure_of(fill, row)
        figure = (f"{row.end_to_end['fps']:.1f} FPS end to end" if row.end_to_end
                  else f"{row.engine['fps']:.1f} FPS engine only")  # fmt: skip
        progress.advance(f"{row.name}: {row.error or figure}")
        rows.append(row)
    return rows


def failure_of(step: Callable[..., Any], *args: Any) -> str:
    """Run one row's measurement; what went wrong, in one line, or "" (a row's failure is reported in the row)."""
    try:
        step(*args)
    except Exception as exc:  # any failure of one backend or model: the others' figures still stand
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
    return ""


def with_fps(samples: list[float]) -> dict[str, float]:
    stats = percentiles_ms(samples)
    stats["fps"] = 1000.0 / stats["mean_ms"]
    return stats


@dataclass
class BenchReport:
    """One bench run. `to_dict()` is the JSON form (`--json`), which the Markdown, terminal and plot reports render."""

    environment: dict[str, Any]
    telemetry: dict[str, Any]
    bundle: str
    model: str | None
    input_size: list[int]
    source: str
    source_size: list[int]
    capture_from: str
    frames: int
    warmup: int
    rows: list[Row]
    baseline_note: str
    overlay: list[dict[str, Any]]
    ratios: dict[str, Any]
    kind: str = "semantic"  # or "instances" (accuracy is COCO AP, not mIoU) or "keypoints" (PCK)
    notes: list[str] = field(default_factory=list)  # what a reader needs beside the figures, one line each

    def to_dict(self) -> dict[str, Any]:
        result = asdict(self)
        result["rows"] = [{**asdict(row), "stage_limited_fps": row.stage_limited_fps} for row in self.rows]
        return result
