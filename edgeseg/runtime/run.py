"""`edgeseg run`: bundle + source URIs + sink URIs -> segmented streams. Lean: no torch, no onnx.

The bundle's head (runtime/heads) checks the flags its kind takes; every kind, with one input or several, then runs in
the one loop (runtime/pipeline.py): a capture thread per source, batched inference, drawing and writing on the main
thread.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

from edgeseg.bundle import Bundle
from edgeseg.errors import EdgesegError
from edgeseg.runtime.backends import TritonOptions
from edgeseg.runtime.detector import pick_backend
from edgeseg.runtime.figures import RunSummary
from edgeseg.runtime.heads import check_run_options, head_for
from edgeseg.runtime.pipeline import HeadModel, Pipeline, check_batch, close_all, source_options
from edgeseg.runtime.sinks import open_sinks, open_stream_sinks
from edgeseg.runtime.sinks.base import Sink
from edgeseg.runtime.sinks.factory import stream_names
from edgeseg.runtime.sinks.live import ViewAccess
from edgeseg.runtime.sources import Source, StreamOptions, open_source
from edgeseg.tables import stage_table


@dataclass
class RunOptions:
    bundle: Path
    inputs: list[str]  # one source URI, or several: one stream each, batched into one inference call
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
    view: ViewAccess | None = None  # who may watch a live view bound beyond loopback
    dla_core: int | None = None  # run TensorRT's engine built for this DLA core (Jetson)
    score_threshold: float | None = None  # instance bundles: draw detections scoring at least this (default 0.5)
    infer_size: tuple[int, int] | None = None  # (height, width) a dynamic-size bundle runs at (default: export size)
    also: Path | None = None  # a second bundle, of any kind, answering the same frames, drawn under the first


def run(options: RunOptions, tap: Sink | None = None) -> RunSummary:
    """`tap` is a sink beside the outputs: the Python API's stream reads each frame's answer through it."""
    bundle = Bundle.load(options.bundle)
    if options.infer_size is not None:
        check_inference_size(bundle, options.infer_size)
        bundle.manifest["input"]["size"] = list(options.infer_size)  # this run's copy only: run never saves it
    models = run_models(bundle, options)
    if note := check_batch(models[0].head.batches, bundle.input.batch, len(options.inputs)):
        print(f"edgeseg: {note}", file=sys.stderr)
    sources: list[Source] = []
    stream_sinks: list[list[Sink]] = []
    sinks: list[Sink] = []
    taps = [tap] if tap else []  # closed with the outputs, as the pipeline closes it
    try:
        for uri in options.inputs:
            sources.append(open_source(uri, source_options(models[0].backend, options.stream)))
        stream_sinks, sinks = run_sinks(options, sources)
        pipeline = Pipeline(sources, models, sinks + taps, stream_sinks, stream_names(options.inputs), options.frames,
                            options.save_mask)  # fmt: skip
    except BaseException:
        # Before the first frame: closing writes no output (a recording is created at its first frame) and stops
        # what opening started (a live view's server thread, a source's FFmpeg child, an open file).
        close_all([sink for per_stream in stream_sinks for sink in per_stream] + sinks + taps, sources, [])
        raise
    return pipeline.run()


def run_models(bundle: Bundle, options: RunOptions) -> list[HeadModel]:
    """The bundle's head on the backend `run` picks (not yet open: the loop opens it on its inference thread); with
    --also, the second bundle (any kind) drawn under it, at its best precision (--precision chooses the first
    model's)."""
    check_run_options(bundle, options)
    head = head_for(bundle, options)  # the one place a run reads the bundle's kind
    models = [HeadModel(head, pick_backend(bundle, options.backend, options.precision, options.threads,
                                           options.triton, options.dla_core))]  # fmt: skip
    if options.also is not None:
        also = Bundle.load(options.also)
        backend = pick_backend(also, options.backend, "best", options.threads, dla_core=options.dla_core)
        # Drawn as an overlay whatever --visualize says: the first bundle's head shows the mask or the side-by-side
        # of the picture, and a second one would change its size or hide what is under it.
        under = head_for(also, dataclasses.replace(options, visualize="overlay"))
        models.append(HeadModel(under, backend, stage="infer also", role="--also"))
    return models


def run_sinks(options: RunOptions, sources: list[Source]) -> tuple[list[list[Sink]], list[Sink]]:
    """(each stream's outputs, the outputs every stream goes to): one input writes to every -o; several write to the
    -o with {stream} in them one file each, and tile a window or the live view."""
    fps = max((s.fps for s in sources if s.fps), default=30.0)
    if len(sources) == 1:
        return [[]], open_sinks(options.outputs, fps, options.save_mask, options.view)
    return open_stream_sinks(options.outputs, stream_names(options.inputs), fps, options.save_mask, options.view)


def check_inference_size(bundle: Bundle, size: tuple[int, int]) -> None:
    """Another input size is for a bundle exported with --dynamic-size (its graph takes any), in its stride."""
    height, width = size
    if not bundle.input.dynamic_size:
        exported = "x".join(map(str, bundle.input.size))
        raise EdgesegError(
            f"--infer-size {height}x{width}: {bundle.root} was exported for {exported} only; re-export it with "
            "--dynamic-size to choose the size at run time"
        )
    multiple = bundle.manifest["model"].get("size_multiple")
    if multiple and (height % multiple or width % multiple):
        nearest = [max(1, round(side / multiple)) * multiple for side in size]
        raise EdgesegError(
            f"--infer-size {height}x{width}: this model needs sides divisible by {multiple} (its stride); e.g. "
            f"--infer-size {nearest[0]}x{nearest[1]}"
        )


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
    if summary.streams:
        print(f"batching: {summary.mean_batch:.2f} frames per inference call on average")
    for index, stream in enumerate(summary.streams):
        print(
            f"stream {index} {stream.name}: {stream.frames_read} read, {stream.frames_written} written, "
            f"{stream.frames_dropped} dropped, {stream.fps:.1f} FPS"
            + (f", gaps {', '.join(f'{g:.1f} s' for g in stream.gaps)}" if stream.gaps else "")
        )
    if summary.stages:
        print(stage_table(summary.stages))
    print(f"outputs: {', '.join(outputs)}")
