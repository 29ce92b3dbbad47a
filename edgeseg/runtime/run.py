"""`edgeseg run`: bundle + source URI + sink URIs -> a segmented stream. Lean: no torch, no onnx.

The whole loop is `Pipeline.run`: source -> backend -> overlay -> sinks, each stage on its own thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeseg.bundle import Bundle
from edgeseg.runtime.backends import TritonOptions, open_backend
from edgeseg.runtime.overlay import Overlay
from edgeseg.runtime.pipeline import Pipeline, RunSummary, source_options
from edgeseg.runtime.sinks import open_sinks
from edgeseg.runtime.sources import StreamOptions, open_source
from edgeseg.tables import stage_table


@dataclass
class RunOptions:
    bundle: Path
    inputs: str
    outputs: list[str]
    backend: str = "auto"
    precision: str = "best"
    frames: int | None = None
    filter_mode: str = "linear"
    alpha: float = 0.5
    visualize: str = "overlay"
    save_mask: bool = False
    legend: bool = True
    threads: int | None = None
    stream: StreamOptions | None = None
    triton: TritonOptions | None = None


def run(options: RunOptions) -> RunSummary:
    bundle = Bundle.load(options.bundle)
    net = open_backend(bundle, options.backend, options.precision, options.threads, options.triton)
    source = open_source(options.inputs, source_options(net, options.stream))
    try:
        sinks = open_sinks(options.outputs, fps=source.fps or 30.0, save_mask=options.save_mask)
    except BaseException:
        source.close()
        raise
    overlay = Overlay(bundle.classes, options.alpha, options.filter_mode, options.visualize, options.legend)
    pipeline = Pipeline(source, net, bundle.input, bundle.output, overlay, sinks, max_frames=options.frames)
    return pipeline.run()


def print_summary(summary: RunSummary, outputs: list[str]) -> None:
    print(f"backend: {summary.backend}")
    print(
        f"frames: {summary.frames_read} read, {summary.frames_processed} inferred, {summary.frames_written} written, "
        f"{summary.frames_dropped} dropped (live), {summary.bad_frames} unreadable"
    )
    print(
        f"throughput: {summary.fps:.1f} FPS over {summary.seconds:.2f} "
        f"s{' (interrupted)' if summary.interrupted else ''}"
    )
    if summary.gaps:
        print(f"stream gaps: {len(summary.gaps)} ({', '.join(f'{g:.1f} s' for g in summary.gaps)})")
    if summary.stages:
        print(stage_table(summary.stages))
    print(f"outputs: {', '.join(outputs)}")
