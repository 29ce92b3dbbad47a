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

from edgeseg.bench.baseline import baseline_row
from edgeseg.bench.plan import capture_samples, check_options, loop_fps, read_bench_frames, timing_source_for
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
from edgeseg.runtime.backends import Backend, open_backend
from edgeseg.runtime.overlay import Overlay
from edgeseg.runtime.pipeline import Pipeline, source_options
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
        read = read_bench_frames(options)
        frames = [(f.image, f.label) for f in read]
        self.frames = [f[0] for f in frames]
        self.timing_source, self._scratch = timing_source_for(options.source, self.frames)
        labelled = [(image, label) for image, label in frames[: options.accuracy_frames] if label is not None]
        self.labelled = (
            labelled
            if len(labelled) == min(len(frames), options.accuracy_frames) and self._labels_fit(labelled)
            else []
        )
        self.accuracy_images = [f[0] for f in frames[: options.accuracy_frames]]
        self.reference_maps: list[np.ndarray] | None = None

    def _labels_fit(self, labelled: list[tuple[np.ndarray, np.ndarray]]) -> bool:
        return bool(labelled) and max(int(label.max()) for _, label in labelled) < len(self.bundle.classes)

    def measure(self, plan: list[tuple[str, str]], progress: Progress) -> list[Row]:
        """Every row of the plan, its backends open together (measured_rows interleaves their engine timing)."""
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

            def fill(row: Row) -> None:
                backend = backends[(row.backend, row.precision)]
                row.stages_alone_ms = self._stages_alone(backend, row.engine["mean_ms"])
                row.accuracy = self._accuracy(backend)
                row.sequential_fps, row.end_to_end = self._loops(backend, row.backend, row.precision)

            names = {key: backend.artifact_name for key, backend in backends.items()}
            progress.advance(steps=len(failed))
            return measured_rows(calls, names, self.options, progress, fill) + failed
        finally:
            for backend in backends.values():
                backend.close()

    def _loops(self, backend: Backend, backend_name: str, precision: str) -> tuple[float, dict[str, Any]]:
        """The one-thread loop and the pipeline, alternated LOOP_ROUNDS times; FPS is the mean over rounds."""
        sequential, pipelined = [], []
        for _ in range(LOOP_ROUNDS):
            sequential.append(self._sequential(backend))
            pipelined.append(self._end_to_end(backend_name, precision))
        end_to_end = pipelined[-1]
        end_to_end.update(
            fps=float(np.mean([p["fps"] for p in pipelined])),
            fps_rounds=[p["fps"] for p in pipelined],
            sequential_fps_rounds=sequential,
        )
        return float(np.mean(sequential)), end_to_end

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

    def _end_to_end(self, backend_name: str, precision: str) -> dict[str, Any]:
        backend = open_backend(self.bundle, backend_name, precision, self.options.threads)
        pipeline = Pipeline(
            open_source(self.timing_source, source_options(backend)),
            backend,
            self.bundle.input,
            self.bundle.output,
            Overlay(self.bundle.classes),
            [NullSink()],
            max_frames=self.options.frames,
            readout=True,
        )
        summary = pipeline.run()
        # Steady state, as the sequential loop (whose backend is already open) is measured.
        return {
            "fps": summary.steady_fps,
            "fps_with_startup": summary.fps,
            "frames": summary.frames_written,
            "stages": summary.stages,
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


def ratios(rows: list[Row], overlay: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures the benchmark exists for, each a ratio of two rows measured in this run."""
    rows = [r for r in rows if not r.error]
    by_precision = {r.precision: r for r in rows if r.backend != "pytorch"}
    result: dict[str, Any] = {}
    fp32 = by_precision.get("fp32")
    if fp32:
        result["pipeline_vs_stage_limited"] = fp32.end_to_end["fps"] / fp32.stage_limited_fps
        result["pipeline_vs_sequential"] = fp32.end_to_end["fps"] / fp32.sequential_fps
        result["end_to_end_vs_engine_only"] = fp32.end_to_end["fps"] / fp32.engine["fps"]
        if "int8" in by_precision:
            result["int8_vs_fp32_engine_latency"] = by_precision["int8"].engine["mean_ms"] / fp32.engine["mean_ms"]
        if "fp16" in by_precision:
            result["fp16_vs_fp32_engine_latency"] = by_precision["fp16"].engine["mean_ms"] / fp32.engine["mean_ms"]
    baseline = next((r for r in rows if r.backend == "pytorch"), None)
    if baseline:
        best = max((r for r in rows if r.backend != "pytorch"), key=lambda r: r.end_to_end["fps"])
        result["edgeseg_vs_baseline_fps"] = best.end_to_end["fps"] / baseline.end_to_end["fps"]
        result["edgeseg_vs_baseline_row"] = best.name
    worst_1080p = max((o["ratio"] for o in overlay if o["at"] == "1080p"), default=None)
    if worst_1080p is not None:
        result["overlay_1080p_vs_addweighted"] = worst_1080p
    return result


def run_bench(bundle_dir: Path, options: BenchOptions) -> BenchReport:
    from edgeseg.bench.environment import TelemetrySampler

    bundle = Bundle.load(bundle_dir)
    if options.also is not None and not bundle.is_keypoints:
        raise EdgesegError(f"--also runs a segmentation beside a keypoint bundle; {bundle.root} is not one: bench the "
                           "keypoint bundle with --also this one")  # fmt: skip
    if not bundle.is_semantic:
        return run_model_bench_report(bundle, options)
    plan = check_options(options, bundle)
    ordered = sorted(plan, key=lambda item: item[1] != "fp32")  # FP32 first: the others are compared with it
    progress = Progress(len(ordered) + 2 + options.baseline, "bench", enabled=options.progress)
    bench = Bench(bundle, options)
    progress.advance(f"{len(bench.frames)} frames of {redact(options.source)}")
    rows = []
    with TelemetrySampler() as telemetry:
        rows += bench.measure(ordered, progress)
        baseline_note = ""
        if options.baseline:
            baseline, baseline_note = baseline_or_failure(bundle, options, bench)
            if baseline:
                rows.append(baseline)
            progress.advance(f"baseline: {baseline_note or format(baseline.end_to_end['fps'], '.1f') + ' FPS'}")
        overlay = overlay_costs(bundle, bench.frames[0])
        progress.advance("overlay costs")
    return report_of(bundle, options, telemetry.summary(), bench.frames[0], bench.timing_source, rows, baseline_note,
                     overlay, ratios(rows, overlay))  # fmt: skip


def baseline_or_failure(bundle: Bundle, options: BenchOptions, bench: Bench) -> tuple[Row | None, str]:
    """The PyTorch baseline row, or why there is none; a baseline that fails is a row that says how."""
    found: list[tuple[Row | None, str]] = []
    error = failure_of(lambda: found.append(baseline_row(bundle, options, bench.frames, bench.timing_source,
                                                         bench.accuracy_of)))  # fmt: skip
    if error:
        name = bundle.manifest["model"].get("name", "")
        return Row("pytorch eager fp32 (baseline)", "pytorch", "fp32", name, error=error), error
    return found[0]


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
              kind: str = "semantic") -> BenchReport:  # fmt: skip
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
    )
