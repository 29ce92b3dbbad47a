"""`edgeseg bench BUNDLE --streams N`: N cameras in one batched run, against N separate single-stream runs, for a
bundle of any kind.

Both read the same N recordings (the kind's synthetic scene at 720p, a seed each, rendered to MPEG-4
so capture costs what decoding costs) and write nothing. A detector's graph answers one frame per call, so its
batched run makes one call per stream's frame, on its inference thread(s). The batched run is the `edgeseg run -i ... -i
...` pipeline in this process; the separate runs are N `edgeseg run` processes started together, as a
user would run one per camera. The ratio of aggregate FPS is the result: on a CPU the cores are shared
either way, so batching mostly saves the per-process overheads; on a GPU one batched call replaces N
small ones, which is where it should win clearly.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2

from edgeseg.bench.kinds import bench_kind
from edgeseg.bundle import Bundle
from edgeseg.errors import EdgesegError
from edgeseg.progress import Progress
from edgeseg.runtime.heads import head_class
from edgeseg.runtime.pipeline import Pipeline, check_batch, source_options
from edgeseg.runtime.run import RunOptions, run_models
from edgeseg.runtime.sinks import NullSink
from edgeseg.runtime.sources import open_source
from edgeseg.tables import format_table


@dataclass
class StreamBenchReport:
    """`to_dict()` is the `--json` form of `bench --streams`."""

    bundle: str
    streams: int
    frames_per_stream: int
    source_size: list[int]
    backend: str
    batched_fps: float  # all streams together, frames written per second of the run
    batched_per_stream_fps: list[float]
    batched_latency_ms: dict[str, float]  # capture to written, over every frame of every stream
    mean_batch: float
    separate_fps: list[float]  # each process's own throughput
    separate_wall_fps: float  # all frames of all processes per second of wall time, start-up included
    batched_wall_fps: float
    note: str

    @property
    def ratio(self) -> float:
        return self.batched_fps / sum(self.separate_fps) if self.separate_fps else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "batched_vs_sum_of_separate": self.ratio}


def render_streams(count: int, frames: int, width_height: tuple[int, int], folder: Path, scene: str = "driving"
                   ) -> list[Path]:  # fmt: skip
    """One MPEG-4 recording per stream: a synthetic scene, a seed each."""
    paths = []
    width, height = width_height
    for index in range(count):
        path = folder / f"stream{index}.mp4"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (width, height))
        for frame in open_source(f"synthetic://{scene}?seed={5000 + index}&size={width}x{height}&frames={frames}"):
            writer.write(frame.image)
        writer.release()
        paths.append(path)
    return paths


def batched_run(bundle: Bundle, paths: list[Path], backend: str, precision: str) -> tuple[Any, float]:
    options = RunOptions(bundle=bundle.root, inputs=[str(p) for p in paths], outputs=["none"], backend=backend,
                         precision=precision)  # fmt: skip
    models = run_models(bundle, options)  # as `edgeseg run -i ... -i ...` has them
    sources = [open_source(str(p), source_options(models[0].backend)) for p in paths]
    names = [p.stem for p in paths]
    pipeline = Pipeline(sources, models, [NullSink()], [[] for _ in paths], names)
    started = time.perf_counter()
    summary = pipeline.run()
    return summary, time.perf_counter() - started


def separate_runs(bundle_dir: Path, paths: list[Path], backend: str, precision: str) -> tuple[list[float], float]:
    """N `edgeseg run` processes at once, one file each; their own FPS, and all frames over the wall time."""
    command = [sys.executable, "-m", "edgeseg", "run", str(bundle_dir), "--backend", backend, "--precision", precision]
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            [*command, "-i", str(p), "-o", "none"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for p in paths
    ]
    outputs = [process.communicate() for process in processes]
    wall = time.perf_counter() - started
    rates, frames = [], 0
    for process, (stdout, stderr) in zip(processes, outputs):
        if process.returncode != 0:
            raise EdgesegError(f"a separate run failed: {(stderr.strip().splitlines() or ['no message'])[-1]}")
        rates.append(float(re.search(r"throughput: ([\d.]+) FPS", stdout).group(1)))
        frames += int(re.search(r"(\d+) written", stdout).group(1))
    return rates, frames / wall


def run_stream_bench(
    bundle_dir: Path,
    streams: int,
    frames: int,
    width_height: tuple[int, int] = (1280, 720),
    backend: str = "auto",
    precision: str = "best",
) -> StreamBenchReport:
    bundle = Bundle.load(bundle_dir)
    note = check_batch(head_class(bundle).batches, bundle.input.batch, streams) or ""
    scene = bench_kind(bundle).scene
    progress = Progress(3, "bench streams")
    with tempfile.TemporaryDirectory(prefix="edgeseg-streams-") as scratch:
        paths = render_streams(streams, frames, width_height, Path(scratch), scene)
        progress.advance(f"{streams} recordings of {frames} frames at {width_height[0]}x{width_height[1]}")
        summary, batched_seconds = batched_run(bundle, paths, backend, precision)
        progress.advance(f"batched: {summary.fps:.1f} FPS")
        separate, separate_wall = separate_runs(bundle_dir, paths, backend, precision)
        progress.advance(f"separate: {sum(separate):.1f} FPS summed")
    return StreamBenchReport(
        bundle=str(bundle.root),
        streams=streams,
        frames_per_stream=frames,
        source_size=[width_height[1], width_height[0]],
        backend=summary.backend,
        batched_fps=summary.fps,
        batched_per_stream_fps=[s.fps for s in summary.streams],
        batched_latency_ms={k: v for k, v in summary.stages.get("latency", {}).items() if k != "count"},
        mean_batch=summary.mean_batch,
        separate_fps=separate,
        separate_wall_fps=separate_wall,
        batched_wall_fps=summary.frames_written / batched_seconds,
        note=note,
    )


def stream_table(report: StreamBenchReport) -> str:
    latency = report.batched_latency_ms
    rows = [
        ["one batched run", f"{report.batched_fps:.1f}", " ".join(f"{v:.1f}" for v in report.batched_per_stream_fps)],
        [
            f"{report.streams} separate runs",
            f"{sum(report.separate_fps):.1f}",
            " ".join(f"{v:.1f}" for v in report.separate_fps),
        ],
    ]
    lines = [
        f"{report.streams} streams of {report.frames_per_stream} frames at "
        f"{report.source_size[1]}x{report.source_size[0]} on {report.backend}",
        format_table(["run", "aggregate FPS", "per-stream FPS"], rows),
        f"batched / sum of separate: {report.ratio:.2f}  (wall clock, start-up included: "
        f"{report.batched_wall_fps:.1f} vs {report.separate_wall_fps:.1f} FPS)",
        f"batched latency (capture to written): p50 {latency.get('p50_ms', 0):.1f} ms, "
        f"p99 {latency.get('p99_ms', 0):.1f} ms; "
        f"{report.mean_batch:.2f} frames per inference call",
    ]
    return "\n".join(lines + ([report.note] if report.note else []))
