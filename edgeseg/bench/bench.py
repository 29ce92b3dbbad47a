"""`edgeseg bench`: every backend x precision of a bundle, engine-only and end-to-end, with accuracy, in one run.

For each row:
  engine-only   the infer call alone, repeated on one preprocessed frame;
  stages alone  capture, preprocess, infer, postprocess and overlay each timed on its own, whose
                sum bounds what any pipeline on these cores can reach (the stage-limited FPS);
  sequential    the same stages one after another on one thread;
  end-to-end    the threaded pipeline `edgeseg run` uses, sink none;
  accuracy      agreement with FP32 class maps and mIoU when the frames have labels.
Plus a baseline (the same model in PyTorch eager mode with a plain OpenCV overlay loop) and the
overlay cost at the source resolution and at 1080p. The ratios between rows are the result.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeseg.bench.baseline import BASELINE_KEY, BASELINE_NAME, Baseline
from edgeseg.bench.plan import (
    capture_samples,
    check_options,
    loop_fps,
    read_bench_frames,
    read_bench_source,
    timing_source_for,
)
from edgeseg.bench.rows import (
    DEFAULT_SOURCE,
    KEYPOINT_SOURCE,
    BenchOptions,
    BenchReport,
    Row,
    failure_of,
    measured_rows,
)
from edgeseg.bundle import Bundle
from edgeseg.errors import EdgesegError
from edgeseg.metrics import confusion_matrix, scores
from edgeseg.progress import Progress
from edgeseg.redact import redact
from edgeseg.runtime.backends import Backend, open_backend, resolve_backend
from edgeseg.runtime.heads import head_for
from edgeseg.runtime.overlay import Overlay
from edgeseg.runtime.pipeline import HeadModel, Pipeline, opencv_threads_beside, source_options
from edgeseg.runtime.sinks import NullSink
from edgeseg.runtime.sources import open_source
from edgeseg.runtime.tensors import class_maps, frames_to_input, output_to_class_maps
from edgeseg.timing import timed

# The sequential loop and the pipeline alternate: a slow spell of a shared machine during one of
# them would otherwise decide their ratio.
LOOP_ROUNDS = 2


class Bench:
    def __init__(self, bundle: Bundle, options: BenchOptions):
        self.bundle, self.options = bundle, options
        self.overlay = Overlay(bundle.classes)
        read, label_names = read_bench_source(options)
        frames = [(f.image, f.label) for f in read]
        self.frames = [f[0] for f in frames]
        self.timing_source, self._scratch = timing_source_for(options.source, self.frames)
        self.accuracy_images = [f[0] for f in frames[: options.accuracy_frames]]
        self.labelled, self.accuracy_note = self._labels(frames[: options.accuracy_frames], label_names)
        self.reference_maps: list[np.ndarray] | None = None

    def _labels(self, frames: list[tuple[np.ndarray, Any]], names: list[str] | None) -> tuple[list[Any], str]:
        """The accuracy frames with their labels in the model's class ids, or none and why: mIoU is scored by
        calibrate's class-set rule (labels_as_model_classes), never of one class set against another."""
        from edgeseg.calibration.fidelity import labels_as_model_classes

        labels = [label for _, label in frames if label is not None]
        if not labels or len(labels) != len(frames):
            return [], ""
        comparable = labels_as_model_classes(labels, names, [c.name for c in self.bundle.classes])
        if isinstance(comparable, str):
            return [], f"mIoU not measured: {comparable}"
        return [(image, label) for (image, _), label in zip(frames, comparable)], ""

    def measure(self, plan: list[tuple[str, str]], progress: Progress, baseline: Baseline | None = None) -> list[Row]:
        """Every row of the plan (and the baseline's), their backends open together: the engine timing interleaved
        (measured_rows), then the loops in rounds that go round every row (loops)."""
        backends = {}
        failed = []
        try:
            for backend_name, precision in plan:
                try:
                    backends[(backend_name, precision)] = open_backend(
                        self.bundle, backend_name, precision, self.options.threads
                    ).open()
                except EdgesegError as exc:  # this row cannot run here: the report says so in its row
                    failed.append(Row(f"{backend_name} {precision}", backend_name, precision, "-", error=str(exc)))
            if not backends:
                raise EdgesegError(failed[0].error)
            batches = {
                key: frames_to_input([self.frames[0]] * backend.batch_size, self.bundle.input)
                for key, backend in backends.items()
            }
            calls = {key: functools.partial(backend.infer, batches[key]) for key, backend in backends.items()}
            names = {key: backend.artifact_name for key, backend in backends.items()}
            if baseline is not None:
                call = baseline.infer_call(self.frames[0])
                error = failure_of(call)  # one call first: a model that fails is a row that says so, not a lost run
                if error:
                    failed.append(Row(BASELINE_NAME, *BASELINE_KEY, baseline.artifact, error=error))
                else:
                    calls[BASELINE_KEY], names[BASELINE_KEY] = call, baseline.artifact

            def fill(row: Row) -> None:
                if row.backend == BASELINE_KEY[0]:
                    row.accuracy = self.accuracy_of([baseline.segment(image) for image in self.accuracy_images])
                    return
                backend = backends[(row.backend, row.precision)]
                row.stages_alone_ms = self._stages_alone(backend, row.engine["mean_ms"])
                row.accuracy = self._accuracy(backend)

            progress.advance(steps=len(failed))
            # Engine-only timing as the pipeline runs the engine: OpenCV single-threaded beside a CPU backend.
            with opencv_threads_beside(next(iter(backends.values()))):
                rows = measured_rows(calls, names, self.options, progress, fill, {BASELINE_KEY: BASELINE_NAME})
            self.loops(rows, backends, baseline)
            return rows + failed
        finally:
            for backend in backends.values():
                backend.close()

    def loops(self, rows: list[Row], backends: dict[tuple[str, str], Backend], baseline: Baseline | None) -> None:
        """Each row's one-thread loop and pipeline, and the baseline's own loop, in LOOP_ROUNDS rounds that go round
        every row: no row, the baseline included, is measured in one block that a busy moment could fall on."""
        sequential: dict[str, list[float]] = {row.name: [] for row in rows}
        pipelined: dict[str, list[dict[str, Any]]] = {row.name: [] for row in rows}
        for _ in range(LOOP_ROUNDS):
            for row in rows:
                if not row.error:
                    row.error = failure_of(self._loop_round, row, backends, baseline, sequential, pipelined)
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
        backends: dict[tuple[str, str], Backend],
        baseline: Baseline | None,
        sequential: dict[str, list[float]],
        pipelined: dict[str, list[dict[str, Any]]],
    ) -> None:
        """One round of a row's loops: the baseline's own loop, or a row's one-thread loop then its pipeline."""
        if row.backend == BASELINE_KEY[0]:
            sequential[row.name].append(baseline.loop_fps(self.timing_source, self.options.frames))  # type: ignore
            return
        backend = backends[(row.backend, row.precision)]
        sequential[row.name].append(self._sequential(backend))
        pipelined[row.name].append(self._end_to_end(row.backend, row.precision, backend.batch_size))

    def _stages_alone(self, backend: Backend, infer_ms: float) -> dict[str, float]:
        contract_in, contract_out = self.bundle.input, self.bundle.output
        count = min(len(self.frames), self.options.frames)
        capture = capture_samples(self.timing_source, count)
        batch = backend.batch_size
        preprocess = timed(lambda: frames_to_input([self.frames[0]] * batch, contract_in), count)
        output = backend.infer(frames_to_input([self.frames[0]] * batch, contract_in))
        postprocess = timed(lambda: output_to_class_maps(output, contract_out), count)
        class_map = output_to_class_maps(output, contract_out)[0]
        logits = output[0] if contract_out.kind == "logits" else None
        overlay = timed(lambda: self.overlay.render(self.frames[0], class_map, logits), count)
        mean = lambda samples: float(np.mean(samples) * 1000)  # noqa: E731 - a one-line helper used just below
        return {
            "capture": mean(capture),
            "preprocess": mean(preprocess),
            "infer": infer_ms,
            "postprocess": mean(postprocess),
            "overlay": mean(overlay),
        }

    def _sequential(self, backend: Backend) -> float:
        """The same stages, one after another on one thread: what a plain loop gets."""
        contract_in, contract_out = self.bundle.input, self.bundle.output
        batch = backend.batch_size

        def step(image: np.ndarray) -> None:
            output = backend.infer(frames_to_input([image] * batch, contract_in))
            class_map = output_to_class_maps(output, contract_out)[0]
            self.overlay.render(image, class_map, output[0] if contract_out.kind == "logits" else None)

        return loop_fps(self.timing_source, self.options.frames, step)

    def _end_to_end(self, backend_name: str, precision: str, batch: int) -> dict[str, Any]:
        """`edgeseg run`'s own loop with sink none, and the engine as that loop ran it."""
        backend = open_backend(self.bundle, backend_name, precision, self.options.threads)
        source = open_source(self.timing_source, source_options(backend))
        pipeline = Pipeline([source], [HeadModel(head_for(self.bundle), backend)], [NullSink()],
                            max_frames=self.options.frames, readout=True)  # fmt: skip
        summary = pipeline.run()
        # Steady state, as the sequential loop (whose backend is already open) is measured. The engine as the
        # pipeline ran it (its thread, its session, beside capture and overlay) bounds the pipeline's FPS; its first
        # call (a fresh session's warm-up, before the first frame out) is outside that steady window, as it is
        # outside steady_fps's: with it, smp UPerNet's 20 frames read 1.23x their bound.
        calls = pipeline.times.samples.get("infer", [])[1:]
        infer_ms = 1000.0 * float(np.mean(calls)) if calls else 0.0
        return {
            "fps": summary.steady_fps,
            "fps_with_startup": summary.fps,
            "frames": summary.frames_written,
            "stages": summary.stages,
            "engine_fps_in_pipeline": 1000.0 * batch / infer_ms if infer_ms else 0.0,
        }

    def _accuracy(self, backend: Backend) -> dict[str, Any]:
        return self.accuracy_of(class_maps(backend, self.accuracy_images, self.bundle.input, self.bundle.output))

    def accuracy_of(self, maps: list[np.ndarray]) -> dict[str, Any]:
        """Agreement with the first (FP32) row's class maps, and mIoU when the frames carry labels."""
        if self.reference_maps is None:
            self.reference_maps = maps  # the first row measured is FP32
        result: dict[str, Any] = {
            "agreement": float(np.mean([(a == b).mean() for a, b in zip(maps, self.reference_maps)]))
        }
        if self.labelled:
            classes = len(self.bundle.classes)
            confusion = sum(
                confusion_matrix(cv2.resize(m, label.shape[::-1], interpolation=cv2.INTER_NEAREST), label, classes)
                for m, (_, label) in zip(maps, self.labelled)
            )
            result["miou"] = scores(confusion)["miou"]
        return result


def overlay_costs(bundle: Bundle, frame: np.ndarray, runs: int = 50) -> list[dict[str, Any]]:
    """Overlay time at the source resolution and at 1080p, point and linear, against one cv2.addWeighted."""
    height, width = bundle.input.size
    class_map = np.random.default_rng(0).integers(0, len(bundle.classes), (height, width), dtype=np.uint8)
    rows = []
    for label, size in (("source", frame.shape[:2]), ("1080p", (1080, 1920))):
        image = cv2.resize(frame, size[::-1])
        blend = lambda image=image: cv2.addWeighted(image, 0.5, image, 0.5, 0.0)  # noqa: E731 - timed() calls it
        reference = float(np.median(timed(blend, runs)) * 1000)
        for mode in ("point", "linear"):
            overlay = Overlay(bundle.classes, filter_mode=mode)
            draw = lambda overlay=overlay, image=image: overlay.render(image, class_map)  # noqa: E731 - timed() calls it
            cost = float(np.median(timed(draw, runs)) * 1000)
            rows.append(
                {
                    "resolution": f"{size[1]}x{size[0]}",
                    "at": label,
                    "filter": mode,
                    "overlay_ms": cost,
                    "addweighted_ms": reference,
                    "ratio": cost / reference,
                }
            )
    return rows


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
    if options.also is not None and not bundle.is_keypoints:
        raise EdgesegError(f"--also runs a segmentation beside a keypoint bundle; {bundle.root} is not one: bench the "
                           "keypoint bundle with --also this one")  # fmt: skip
    # Rows the user did not name (--precision all) are measured without 'running ... as asked' for those below
    # their bar: their rows show what they measured.
    bundle.precision_not_named = options.precisions == "all"
    if not bundle.is_semantic:
        return run_model_bench_report(bundle, options)
    plan = check_options(options, bundle)
    ordered = sorted(plan, key=lambda item: item[1] != "fp32")  # FP32 first: the others are compared with it
    progress = Progress(len(ordered) + 2 + options.baseline, "bench", enabled=options.progress)
    bench = Bench(bundle, options)
    progress.advance(f"{len(bench.frames)} frames of {redact(options.source)}")
    baseline, baseline_note = Baseline.of(bundle) if options.baseline else (None, "")
    if options.baseline and baseline is None:
        progress.advance(f"baseline: {baseline_note}")
    best, why_no_best = best_choice(bundle, options)
    with TelemetrySampler() as telemetry:
        rows = bench.measure(ordered, progress, baseline)
        overlay = overlay_costs(bundle, bench.frames[0])
        progress.advance("overlay costs")
    failed = next((r.error for r in rows if r.backend == BASELINE_KEY[0] and r.error), "")
    figures = ratios(rows, overlay, best)
    notes = [bench.accuracy_note] if bench.accuracy_note else []
    notes += report_notes(rows, figures, best, why_no_best)
    return report_of(bundle, options, telemetry.summary(), bench.frames[0], bench.timing_source, rows,
                     baseline_note or failed, overlay, figures, notes=notes)  # fmt: skip


def run_model_bench_report(bundle: Bundle, options: BenchOptions) -> BenchReport:
    """An instance or keypoint bundle's bench (edgeseg.bench.instances, edgeseg.bench.keypoints), as the same report."""
    from edgeseg.bench.environment import TelemetrySampler
    from edgeseg.bench.models import model_plan, model_ratios

    if bundle.is_instances:
        from edgeseg.bench.instances import InstanceBench as Rows
        from edgeseg.bench.instances import instance_overlay_costs as overlay_costs_of

        kind, labels, default = "instances", "&instances=1", DEFAULT_SOURCE
    else:
        from edgeseg.bench.keypoints import KeypointBench as Rows
        from edgeseg.bench.keypoints import keypoint_overlay_costs as overlay_costs_of
        from edgeseg.runtime.keypoints import check_also

        if options.also is not None:  # before the frames are read and rendered
            check_also(bundle, Bundle.load(options.also))

        kind, labels, default = "keypoints", "&keypoints=1", KEYPOINT_SOURCE
    if options.source == DEFAULT_SOURCE:  # the default scene, with the labels the kind's accuracy needs
        options = dataclasses.replace(options, source=default + labels)
    plan = model_plan(options, bundle, Rows.detector_class.what)  # before the frames are read and rendered
    progress = Progress(len(plan) + 2, "bench", enabled=options.progress)
    frames = read_bench_frames(options)
    # The scratch folder holding a rendered scene's video lives until the report is made.
    timing_source, _scratch = timing_source_for(options.source, [f.image for f in frames])
    progress.advance(f"{len(frames)} frames of {redact(options.source)}")
    with TelemetrySampler() as telemetry:
        rows = Rows(bundle, options, frames, timing_source).measure(plan, progress)
        overlay = overlay_costs_of(bundle, frames[0].image)
        progress.advance("overlay costs")
    note = f"{kind} bundles have no PyTorch-eager baseline row yet"
    return report_of(bundle, options, telemetry.summary(), frames[0].image, timing_source, rows, note, overlay,
                     model_ratios(rows, overlay), kind=kind)  # fmt: skip


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
