"""`edgeseg bench`: every backend x precision of a bundle, engine-only and end-to-end, with accuracy, in one run.

For each row, for a bundle of any kind:
  engine-only   the infer call alone (every output the head reads), repeated on one preprocessed frame;
  stages alone  capture, preprocess, infer (and a second model's, with --also), postprocess (the head's decode)
                and overlay (its drawing) each timed on its own, whose sum bounds what a loop on these cores
                can reach with one session doing one thing at a time (the stage-limited FPS; the pipeline
                overlaps the stages, and on a CPU runs a recording on two sessions, so it can pass it);
  sequential    the same stages one after another on one thread;
  end-to-end    the threaded pipeline `edgeseg run` uses (runtime/pipeline.py), sink none;
  accuracy      the kind's own (kinds.py): agreement with the FP32 row, and mIoU, COCO AP or PCK where the frames
                have labels.
Plus a baseline (the same model in PyTorch eager mode in a plain OpenCV loop) and the overlay cost at the source
resolution and at 1080p. The ratios between rows are the result: pipelined / sequential above all.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, List

import numpy as np

from edgeseg.bench.baseline import BASELINE_KEY, BASELINE_NAME, BaselineLoop
from edgeseg.bench.kind import BenchKind
from edgeseg.bench.kinds import bench_kind
from edgeseg.bench.plan import (
    capture_samples,
    check_options,
    loop_fps,
    read_bench_source,
    timing_source_for,
)
from edgeseg.bench.rows import (
    DEFAULT_SOURCE,
    BenchOptions,
    BenchReport,
    Row,
    failure_of,
    measured_rows,
)
from edgeseg.bundle import Bundle
from edgeseg.errors import EdgesegError
from edgeseg.progress import Progress
from edgeseg.redact import redact
from edgeseg.runtime.backends import resolve_backend
from edgeseg.runtime.heads import Result, check_run_options
from edgeseg.runtime.pipeline import (
    HeadModel,
    Pipeline,
    StageTimes,
    graph_inputs,
    opencv_threads_beside,
    source_options,
)
from edgeseg.runtime.run import RunOptions, run_models
from edgeseg.runtime.sinks import NullSink
from edgeseg.runtime.sources import open_source
from edgeseg.runtime.tensors import frames_to_input
from edgeseg.timing import timed

# The sequential loop and the pipeline alternate: a slow spell of a shared machine during one of
# them would otherwise decide their ratio.
LOOP_ROUNDS = 2

# typing.List: an alias is evaluated at import, and JetPack 5.1's Python 3.8 cannot subscript list.
Models = List[HeadModel]  # a row's models as `run` has them: the bundle's, then --also's (drawn under it)


class Bench:
    """The rows of one bundle, of any kind: its kind's part (kinds.py) scores the answers and draws the overlay
    costs; everything else (engine timing, stages, the one-thread loop, the pipeline) is the same for every kind."""

    def __init__(self, bundle: Bundle, options: BenchOptions, kind: type[BenchKind]):
        self.bundle, self.options = bundle, options
        read, label_names = read_bench_source(options)
        self.frames = [f.image for f in read]
        self.timing_source, self._scratch = timing_source_for(options.source, self.frames)
        self.accuracy_images = self.frames[: options.accuracy_frames]
        self.kind = kind(bundle, read[: options.accuracy_frames], label_names)

    def engine_call(self, model: HeadModel) -> Any:
        """The engine-only figure's call: the head's inference (every output a detector reads) on one prepared feed."""
        return functools.partial(model.head.infer, model.backend, self.feed(model))

    def feed(self, model: HeadModel) -> np.ndarray:
        """One call's graph input: the first frame, as many times as the graph takes frames per call."""
        return frames_to_input([self.frames[0]] * model.frames_per_call, self.bundle.input)

    def measure(self, opened: dict[tuple[str, str], Models], failed: list[Row], progress: Progress,
                baseline: BaselineLoop | None = None) -> list[Row]:  # fmt: skip
        """Every opened row (open_rows) and the baseline's: the engine timing interleaved (measured_rows), then the
        loops in rounds that go round every row (loops). `failed` are the rows that did not open."""
        failed = list(failed)
        calls = {key: self.engine_call(models[0]) for key, models in opened.items()}
        names = {key: models[0].backend.artifact_name for key, models in opened.items()}
        if baseline is not None:
            call = baseline.infer_call(self.frames[0])
            error = failure_of(call)  # one call first: a model that fails is a row that says so, not a lost run
            if error:
                failed.append(Row(BASELINE_NAME, *BASELINE_KEY, baseline.artifact, error=error))
            else:
                calls[BASELINE_KEY], names[BASELINE_KEY] = call, baseline.artifact

        def fill(row: Row) -> None:
            if row.backend == BASELINE_KEY[0]:
                row.accuracy = self.kind.accuracy([baseline.answer(image) for image in self.accuracy_images])
                return
            models = opened[(row.backend, row.precision)]
            row.stages_alone_ms = self._stages_alone(models, row.engine["mean_ms"])
            row.accuracy = self.kind.accuracy([r.answer for r in self.answers(models, self.accuracy_images)])

        progress.advance(steps=len(failed))
        # Engine-only timing as the pipeline runs the engine: OpenCV single-threaded beside a CPU backend.
        with opencv_threads_beside(next(iter(opened.values()))[0].backend):
            rows = measured_rows(calls, names, self.options, progress, fill, {BASELINE_KEY: BASELINE_NAME})
        self.loops(rows, opened, baseline)
        return rows + failed

    def loops(self, rows: list[Row], opened: dict[tuple[str, str], Models], baseline: BaselineLoop | None) -> None:
        """Each row's one-thread loop and pipeline, and the baseline's own loop, in LOOP_ROUNDS rounds that go round
        every row: no row, the baseline included, is measured in one block that a busy moment could fall on."""
        sequential: dict[str, list[float]] = {row.name: [] for row in rows}
        pipelined: dict[str, list[dict[str, Any]]] = {row.name: [] for row in rows}
        for _ in range(LOOP_ROUNDS):
            for row in rows:
                if not row.error:
                    row.error = failure_of(self._loop_round, row, opened, baseline, sequential, pipelined)
        for row in rows:
            if row.error:
                continue
            row.sequential_fps = float(np.mean(sequential[row.name]))
            if row.backend == BASELINE_KEY[0]:  # the user's loop is one thread: its end to end is its sequential
                row.end_to_end = {"fps": row.sequential_fps, "fps_rounds": sequential[row.name], "stages": {}}
                continue
            rounds = pipelined[row.name]
            row.end_to_end = dict(rounds[-1])
            row.end_to_end.update(
                fps=float(np.mean([p["fps"] for p in rounds])),
                fps_rounds=[p["fps"] for p in rounds],
                sequential_fps_rounds=sequential[row.name],
                engine_fps_in_pipeline=float(np.mean([p["engine_fps_in_pipeline"] for p in rounds])),
            )

    def _loop_round(
        self,
        row: Row,
        opened: dict[tuple[str, str], Models],
        baseline: BaselineLoop | None,
        sequential: dict[str, list[float]],
        pipelined: dict[str, list[dict[str, Any]]],
    ) -> None:
        """One round of a row's loops: the baseline's own loop, or a row's one-thread loop then its pipeline."""
        if row.backend == BASELINE_KEY[0]:
            sequential[row.name].append(baseline.loop_fps(self.timing_source, self.options.frames))  # type: ignore
            return
        models = opened[(row.backend, row.precision)]
        sequential[row.name].append(self._sequential(models))
        pipelined[row.name].append(self._end_to_end(row.backend, row.precision, models[0].frames_per_call))

    def answer(self, models: Models, image: np.ndarray, times: StageTimes) -> Result:
        """One frame's Result as the pipeline makes it, on this thread: the graph inputs as capture makes them, each
        model's answer at the frame's size, the second drawn under the first."""
        size = (image.shape[0], image.shape[1])
        tensors = graph_inputs(models, image)
        results = [model.results([tensor], [size], times)[0] for model, tensor in zip(models, tensors)]
        for under in results[1:]:
            results[0].under = under
        return results[0]

    def answers(self, models: Models, images: list[np.ndarray]) -> list[Result]:
        times = StageTimes()
        return [self.answer(models, image, times) for image in images]

    def _stages_alone(self, models: Models, infer_ms: float) -> dict[str, float]:
        """Each stage of the pipeline on its own: capture, preprocess (resize and graph input), infer (the
        engine-only figure), any second model's inference, postprocess (the head's decode) and overlay (its
        drawing). Their sum bounds the FPS of a loop doing one stage at a time on one session (the stage-limited
        FPS)."""
        first, image = models[0], self.frames[0]
        count = min(len(self.frames), self.options.frames)
        mean = lambda samples: float(np.mean(samples) * 1000)  # noqa: E731 - a one-line helper used just below
        stages = {"capture": mean(capture_samples(self.timing_source, count))}
        stages["preprocess"] = mean(timed(lambda: graph_inputs(models, image), count))
        stages["infer"] = infer_ms
        tensors, frame_size = graph_inputs(models, image), (image.shape[0], image.shape[1])
        for model, tensor in zip(models[1:], tensors[1:]):  # --also: the second model's inference, decoded
            stages[model.stage] = mean(timed(lambda m=model, t=tensor: m.results([t], [frame_size], StageTimes()),
                                             count))  # fmt: skip
        outputs = first.head.infer(first.backend, self.feed(first))
        sizes = [frame_size] * first.frames_per_call
        stages["postprocess"] = mean(timed(lambda: first.head.decode(outputs, sizes), count))
        result = self.answer(models, image, StageTimes())
        stages["overlay"] = mean(timed(lambda: first.head.draw(image, result), count))
        return stages

    def _sequential(self, models: Models) -> float:
        """The same stages, one after another on one thread: what a plain loop gets."""
        times = StageTimes()
        head = models[0].head
        return loop_fps(self.timing_source, self.options.frames,
                        lambda image: head.draw(image, self.answer(models, image, times)))  # fmt: skip

    def _end_to_end(self, backend_name: str, precision: str, per_call: int) -> dict[str, Any]:
        """`edgeseg run`'s own loop with sink none, and the engine as that loop ran it."""
        models = row_models(self.bundle, self.options, backend_name, precision)
        source = open_source(self.timing_source, source_options(models[0].backend))
        pipeline = Pipeline([source], models, [NullSink()], max_frames=self.options.frames, readout=True)
        summary = pipeline.run()
        # Steady state, as the sequential loop (whose backend is already open) is measured. The engine as the
        # pipeline ran it (its threads, their sessions side by side, beside capture and overlay) bounds the pipeline's
        # FPS; each session's first call (a fresh session's warm-up, before the first frame out) is outside that
        # steady window, as it is outside steady_fps's: with it, smp UPerNet's 20 frames read 1.23x their bound.
        sessions = len(pipeline.workers)
        calls = pipeline.times.samples.get("infer", [])[sessions:]
        infer_ms = 1000.0 * float(np.mean(calls)) if calls else 0.0
        return {
            "fps": summary.steady_fps,
            "fps_with_startup": summary.fps,
            "frames": summary.frames_written,
            "stages": summary.stages,
            "engine_fps_in_pipeline": 1000.0 * per_call * sessions / infer_ms if infer_ms else 0.0,
        }


def row_models(bundle: Bundle, options: BenchOptions, backend: str, precision: str) -> Models:
    """A row's models as `edgeseg run` picks them for this backend and precision (not yet open)."""
    run_options = RunOptions(bundle=bundle.root, inputs=[], outputs=["none"], backend=backend, precision=precision,
                             threads=options.threads, also=options.also)  # fmt: skip
    return run_models(bundle, run_options)


def open_rows(bundle: Bundle, options: BenchOptions, plan: list[tuple[str, str]]
              ) -> tuple[dict[tuple[str, str], Models], list[Row]]:  # fmt: skip
    """Each row's models, open, and the rows that cannot run here (the report says why in the row). Opened before
    the frames are read: where no row can run (a Triton server not there, an engine for another GPU) that is one
    line at once, not after the frames are rendered."""
    opened: dict[tuple[str, str], Models] = {}
    failed = []
    for backend, precision in plan:
        models = row_models(bundle, options, backend, precision)
        try:
            for model in models:
                model.backend.open()
        except EdgesegError as exc:
            close_rows({(backend, precision): models})
            failed.append(Row(f"{backend} {precision}", backend, precision, "-", error=str(exc)))
            continue
        except BaseException:  # not a row that cannot run here: a fault, or an interrupt; nothing stays open
            close_rows({**opened, (backend, precision): models})
            raise
        opened[(backend, precision)] = models
    if not opened:
        raise EdgesegError(failed[0].error)
    return opened, failed


def close_rows(opened: dict[tuple[str, str], Models]) -> None:
    for models in opened.values():
        for model in models:
            model.backend.close()


def best_choice(bundle: Bundle, options: BenchOptions) -> tuple[tuple[str, str] | None, str]:
    """The (backend, artifact) `edgeseg run --precision best` takes here with this --backend, or None and why."""
    if options.backend.startswith("triton://"):
        return None, "the Triton server decides what runs"
    from edgeseg.runtime.detector import pick_backend

    try:
        backend = resolve_backend(options.backend, bundle)
        return (backend, pick_backend(bundle, backend, "best", options.threads).artifact_name), ""
    except EdgesegError as exc:
        return None, str(exc)


def ratios(rows: list[Row], overlay: list[dict[str, Any]], best: tuple[str, str] | None = None) -> dict[str, Any]:
    """The figures the benchmark exists for, each a ratio of two rows measured in this run. `best` is the (backend,
    artifact) `--precision best` runs: the headline compares that row, never merely the fastest, with the baseline."""
    rows = [r for r in rows if not r.error]
    ours = [r for r in rows if r.backend != BASELINE_KEY[0]]
    headline_backend = best[0] if best else None
    by_precision = {r.precision: r for r in ours if headline_backend in (None, r.backend)}
    result: dict[str, Any] = {}
    fp32 = by_precision.get("fp32")
    if fp32:
        result["pipeline_vs_stage_limited"] = fp32.end_to_end["fps"] / fp32.stage_limited_fps
        result["pipeline_vs_sequential"] = fp32.end_to_end["fps"] / fp32.sequential_fps
        result["end_to_end_vs_engine_only"] = fp32.end_to_end["fps"] / fp32.engine["fps"]
        # The engine as the pipeline ran it (its thread, its session, beside capture and overlay): the pipeline infers
        # one batch at a time, so this stays at or below 1; report_notes says when the engine-only column is lower.
        in_pipeline = fp32.end_to_end.get("engine_fps_in_pipeline")
        if in_pipeline:
            result["end_to_end_vs_engine_in_pipeline"] = fp32.end_to_end["fps"] / in_pipeline
        if "int8" in by_precision:
            result["int8_vs_fp32_engine_latency"] = by_precision["int8"].engine["mean_ms"] / fp32.engine["mean_ms"]
        if "fp16" in by_precision:
            result["fp16_vs_fp32_engine_latency"] = by_precision["fp16"].engine["mean_ms"] / fp32.engine["mean_ms"]
    baseline = next((r for r in rows if r.backend == BASELINE_KEY[0]), None)
    headline = next((r for r in ours if best is None or (r.backend, r.artifact) == best), None)
    if best is None and len(ours) != 1:
        headline = None  # with nothing to say which row best runs, no row is picked for it
    if baseline and headline:
        result["edgeseg_vs_baseline_fps"] = headline.end_to_end["fps"] / baseline.end_to_end["fps"]
        result["edgeseg_vs_baseline_row"] = headline.name
    worst_1080p = max((o["ratio"] for o in overlay if o["at"] == "1080p"), default=None)
    if worst_1080p is not None:
        result["overlay_1080p_vs_addweighted"] = worst_1080p
    return result


def report_notes(rows: list[Row], figures: dict[str, Any], best: tuple[str, str] | None, why_no_best: str) -> list[str]:
    """What a reader needs beside the figures: where the headline has no row and why, and where end-to-end FPS
    exceeds the engine-only column (and what the engine measured inside the pipeline)."""
    notes = []
    if "edgeseg_vs_baseline_fps" not in figures and any(r.backend == BASELINE_KEY[0] and not r.error for r in rows):
        if best is None:
            notes.append(f"no headline ratio: which row --precision best runs is not known here ({why_no_best})")
        else:
            notes.append(f"no headline ratio: the row --precision best runs ({best[0]}, {best[1]}) was not measured; "
                         "add its precision to --precision")  # fmt: skip
    for row in rows:
        if row.error or not row.end_to_end or row.backend == BASELINE_KEY[0]:
            continue
        end_to_end, alone = row.end_to_end["fps"], row.engine["fps"]
        if end_to_end > alone:
            notes.append(
                f"{row.name}: end-to-end {end_to_end:.1f} FPS exceeds engine-only {alone:.1f} FPS: the engine-only "
                "column is timed alone, in rounds that alternate with the other rows' engines, and ran slower there "
                f"than inside the pipeline ({row.end_to_end.get('engine_fps_in_pipeline', 0):.1f} FPS), which is "
                "what bounds end-to-end"
            )
    return notes


def run_bench(bundle_dir: Path, options: BenchOptions) -> BenchReport:
    from edgeseg.bench.environment import TelemetrySampler

    bundle = Bundle.load(bundle_dir)
    check_run_options(bundle, options)  # --also's bundle, before the frames are read and rendered
    kind = bench_kind(bundle)
    if options.source == DEFAULT_SOURCE:  # the default scene, with the labels the kind's accuracy needs
        options = dataclasses.replace(options, source=kind.default_source)
    # Rows the user did not name (--precision all) are measured without 'running ... as asked' for those below
    # their bar: their rows show what they measured.
    bundle.precision_not_named = options.precisions == "all"
    plan = check_options(options, bundle)
    ordered = sorted(plan, key=lambda item: item[1] != "fp32")  # FP32 first: the others are compared with it
    opened, failed_rows = open_rows(bundle, options, ordered)
    try:
        progress = Progress(len(ordered) + 2 + options.baseline, "bench", enabled=options.progress)
        bench = Bench(bundle, options, kind)
        progress.advance(f"{len(bench.frames)} frames of {redact(options.source)}")
        baseline, baseline_note = bench.kind.baseline() if options.baseline else (None, "")
        if options.also is not None and baseline is not None:  # a row runs two models; a baseline of one is no match
            baseline, baseline_note = None, "the PyTorch baseline runs one model; with --also there is none"
        if options.baseline and baseline is None:
            progress.advance(f"baseline: {baseline_note}")
        best, why_no_best = best_choice(bundle, options)
        with TelemetrySampler() as telemetry:
            rows = bench.measure(opened, failed_rows, progress, baseline)
            overlay = bench.kind.overlay_costs(bench.frames[0])
            progress.advance("overlay costs")
    finally:
        close_rows(opened)
    failed = next((r.error for r in rows if r.backend == BASELINE_KEY[0] and r.error), "")
    figures = ratios(rows, overlay, best)
    notes = [bench.kind.note] if bench.kind.note else []
    notes += report_notes(rows, figures, best, why_no_best)
    return report_of(bundle, options, telemetry.summary(), bench.frames[0], bench.timing_source, rows,
                     baseline_note or failed, overlay, figures, kind=bench.kind.name, notes=notes)  # fmt: skip


def report_of(bundle: Bundle, options: BenchOptions, telemetry: dict[str, Any], frame: np.ndarray, timing_source: str,
              rows: list[Row], baseline_note: str, overlay: list[dict[str, Any]], figures: dict[str, Any],
              kind: str = "semantic", notes: list[str] | None = None) -> BenchReport:  # fmt: skip
    from edgeseg.bench.environment import environment

    return BenchReport(
        environment=environment(),
        telemetry=telemetry,
        bundle=str(bundle.root),
        model=bundle.manifest["model"].get("name"),
        input_size=list(bundle.input.size),
        source=redact(options.source),  # a report is shared: a camera's password never goes in it
        source_size=list(frame.shape[:2]),
        capture_from="an MPEG-4 (mp4v) file of the rendered scene"
        if timing_source != options.source
        else redact(options.source),
        frames=options.frames,
        warmup=options.warmup,
        rows=rows,
        baseline_note=baseline_note,
        overlay=overlay,
        ratios=figures,
        kind=kind,
        notes=notes or [],
    )
