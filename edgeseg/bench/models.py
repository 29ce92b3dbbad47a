"""What the instance and keypoint benches share: rows of the same shape as the semantic bench's, measured on a model
that `edgeseg run` drives with its sequential loop.

  engine-only   the graph alone on one preprocessed frame, the variants timed in interleaved rounds;
  stages alone  capture, preprocess, infer (and any second model's) and overlay, each on its own;
  sequential    those stages one after another in a plain loop;
  end-to-end    `edgeseg run`'s own loop with sink none;
  accuracy      the kind's own: agreement with the FP32 row, and a score against labels where the frames have them.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from edgeseg.bench.plan import capture_samples, check_options, loop_fps
from edgeseg.bench.rows import BenchOptions, Row, measured_rows
from edgeseg.bundle import Bundle
from edgeseg.progress import Progress
from edgeseg.runtime.detector import BundleModel, refuse_triton
from edgeseg.runtime.pipeline import StageTimes
from edgeseg.runtime.run import RunOptions
from edgeseg.timing import timed


def model_plan(options: BenchOptions, bundle: Bundle, what: str) -> list[tuple[str, str]]:
    """The (backend, precision) rows, as for a semantic bundle (ONNX Runtime first: its FP32 row is the reference),
    without Triton, which these bundles do not run through yet."""
    refuse_triton(options.backend, what)  # before the frames are read and rendered, not at the first row
    return sorted(check_options(options, bundle), key=lambda row: row[1] != "fp32")


class ModelBench:
    """The rows of one bundle; a kind gives its detector class, how it draws, its run loop and its accuracy."""

    detector_class: type[BundleModel]

    def __init__(self, bundle: Bundle, options: BenchOptions, frames: list[Any], timing_source: str):
        self.bundle, self.options, self.timing_source = bundle, options, timing_source
        self.images = [f.image for f in frames]

    def draw(self, image: np.ndarray, found: Any) -> Any:
        raise NotImplementedError

    def run_loop(self, options: RunOptions) -> Any:
        raise NotImplementedError

    def accuracy(self, detector: Any) -> dict[str, Any]:
        raise NotImplementedError

    def analyse(self, detector: Any, image: np.ndarray, times: StageTimes) -> Any:
        """The model's answer for one frame, as `draw` takes it."""
        return detector.detect(image, times)

    def extra_stages(self, image: np.ndarray) -> dict[str, float]:
        """Stages beyond the model's own (a second model's inference), in ms; none by default."""
        return {}

    def measure(self, plan: list[tuple[str, str]], progress: Progress) -> list[Row]:
        detectors = {}
        try:
            for backend, precision in plan:
                detectors[(backend, precision)] = self.detector_class.for_bundle(self.bundle, backend, precision,
                                                                                 self.options.threads)  # fmt: skip
            return self.measure_open(detectors, progress)
        finally:
            for detector in detectors.values():
                detector.close()

    def measure_open(self, detectors: dict[tuple[str, str], Any], progress: Progress) -> list[Row]:
        feed = next(iter(detectors.values())).model_input(self.images[0])  # one bundle: every row takes the same
        calls = {key: functools.partial(d.backend.infer_outputs, feed) for key, d in detectors.items()}

        def fill(row: Row) -> None:
            detector = detectors[(row.backend, row.precision)]
            row.stages_alone_ms = self.stages_alone(detector, row.engine["mean_ms"])
            row.sequential_fps = self.sequential(detector)
            row.end_to_end = self.end_to_end(row.backend, row.precision)
            row.accuracy = self.accuracy(detector)

        names = {key: detector.name for key, detector in detectors.items()}
        return measured_rows(calls, names, self.options, progress, fill)

    def stages_alone(self, detector: Any, infer_ms: float) -> dict[str, float]:
        count = min(len(self.images), self.options.frames)
        capture = capture_samples(self.timing_source, count)
        image = self.images[0]
        preprocess = timed(lambda: detector.model_input(image), count)
        found = self.analyse(detector, image, StageTimes())
        overlay = timed(lambda: self.draw(image, found), count)
        mean = lambda samples: float(np.mean(samples) * 1000)  # noqa: E731 - a one-line helper used just below
        return {"capture": mean(capture), "preprocess": mean(preprocess), "infer": infer_ms,
                **self.extra_stages(image), "overlay": mean(overlay)}  # fmt: skip

    def sequential(self, detector: Any) -> float:
        times = StageTimes()
        step = lambda image: self.draw(image, self.analyse(detector, image, times))  # noqa: E731
        return loop_fps(self.timing_source, self.options.frames, step)

    def end_to_end(self, backend: str, precision: str) -> dict[str, Any]:
        """`edgeseg run`'s loop itself, to sink none."""
        options = RunOptions(bundle=self.bundle.root, inputs=[self.timing_source], outputs=["none"],
                             backend=backend, precision=precision, threads=self.options.threads,
                             frames=self.options.frames, also=self.options.also)  # fmt: skip
        summary = self.run_loop(options)
        return {"fps": summary.fps, "frames": summary.frames_written, "stages": summary.stages}


def model_ratios(rows: list[Row], overlay: list[dict[str, Any]]) -> dict[str, Any]:
    """The ratios the report prints, from rows measured in this run."""
    by_precision = {r.precision: r for r in rows if not r.error}
    result: dict[str, Any] = {}
    fp32 = by_precision.get("fp32")
    if fp32:
        result["end_to_end_vs_engine_only"] = fp32.end_to_end["fps"] / fp32.engine["fps"]
        result["pipeline_vs_stage_limited"] = fp32.end_to_end["fps"] / fp32.stage_limited_fps
        for precision in ("int8", "fp16"):
            if precision in by_precision:
                ratio = by_precision[precision].engine["mean_ms"] / fp32.engine["mean_ms"]
                result[f"{precision}_vs_fp32_engine_latency"] = ratio
    result["overlay_1080p_vs_addweighted"] = next(o["ratio"] for o in overlay if o["at"] == "1080p")
    return result
