"""`edgeseg calibrate`: INT8 and FP16 ONNX variants of a bundle's FP32 graph, and what each one costs.

Precision is decided in the ONNX, so this runs anywhere (a CPU included) and works for every
TensorRT from 8.5 (weakly typed, Q/DQ + flags) to 11 (strongly typed, no calibrator API).
Quantization uses ONNX Runtime's quantize_static: it emits opset-17 Q/DQ graphs that TensorRT 8.5
parses, runs here without a GPU, and its calibration ranges can be cached and reused for the
per-layer sensitivity search. (NVIDIA ModelOpt's ONNX PTQ emits opset >= 19, i.e. TensorRT >= 10
only, and is not installable on these machines.)
"""

from __future__ import annotations

import functools
import hashlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.bundle import Artifact, Bundle, utc_now, writing
from edgeseg.errors import EdgesegError, require
from edgeseg.fileio import atomic_path, sha256_file
from edgeseg.progress import Progress
from edgeseg.redact import redact

PRECISIONS = ("int8", "fp16")
CPU_FORMATS = ("auto", "qdq", "qoperator")
ARTIFACT_NAMES = {"fp16": "model.fp16.onnx", "tensorrt": "model.int8-tensorrt.onnx", "cpu": "model.int8-cpu.onnx"}
# Copies of the FP32 graph that each run writes anew into .cache/ (never trusted across runs): a failed
# run removes them, so a full disk is left as it was found.
QUANTIZATION_SOURCE, CPU_SOURCE = "fp32-for-quantization.onnx", "fp32-for-cpu.onnx"
# A CPU-artifact choice (layers left float, convs widened or not) is kept only when it is at least
# 3% faster: smaller differences are within a shared machine's noise.
LEVEL_GAIN = 0.97


@dataclass
class CalibrateOptions:
    data: str
    count: int = 256
    eval_count: int = 64
    eval_data: str | None = None
    method: str = "entropy"
    precisions: tuple[str, ...] = PRECISIONS
    min_agreement: float | None = None
    max_ap_drop: float | None = None  # instance bundles: mask AP points INT8 may lose
    max_pck_drop: float | None = None  # keypoint bundles: PCK@0.05 points INT8 may lose
    cpu_format: str = "auto"
    threads: int | None = None
    progress: bool = True
    search_minutes: float = 15.0  # the per-node sensitivity measurement stops after this long
    max_memory_mb: int | None = None  # activations held at once while collecting histogram ranges (see ranges.py)


def check_options(options: CalibrateOptions) -> None:
    from edgeseg.calibration.quantize import METHODS

    if options.method not in METHODS:
        raise EdgesegError(f"--method {options.method}: choose one of {', '.join(METHODS)}")
    unknown = set(options.precisions) - set(PRECISIONS)
    if unknown or not options.precisions:
        raise EdgesegError(f"--precision {','.join(options.precisions)}: choose from {', '.join(PRECISIONS)}")
    if options.cpu_format not in CPU_FORMATS:
        raise EdgesegError(f"--cpu-format {options.cpu_format}: choose one of {', '.join(CPU_FORMATS)}")


def check_target(bundle: Bundle, options: CalibrateOptions) -> None:
    """A target option for another kind of bundle is one line naming the option this one takes."""
    from edgeseg.calibration.profiles import PROFILES, profile_for

    profile = profile_for(bundle)
    target = profile.target
    for other in dict.fromkeys(p.target for p in PROFILES.values()):  # each kind's once, in the registry's order
        if other != target and getattr(options, other.field) is not None:
            raise EdgesegError(
                f"bundle {bundle.root} is a {profile.what} model: its INT8 target is in {target.unit}; use "
                f"{target.flag} instead of {other.flag}"
            )


class Calibration:
    """One calibrate run: the data, the FP32 reference, and a method per variant."""

    def __init__(self, bundle: Bundle, options: CalibrateOptions):
        from edgeseg.calibration.profiles import profile_for
        from edgeseg.calibration.quantize import CPU_QDQ, CPU_QOPERATOR, TENSORRT

        self.bundle, self.options = bundle, options
        self.profile = profile_for(bundle)  # what differs by kind: calibrate asks it, never the kind
        self.recipes = {r.name: self.profile.recipe(r) for r in (TENSORRT, CPU_QDQ, CPU_QOPERATOR)}
        self.onnx = require("onnx", "calibrate")
        self.cache = bundle.root / ".cache"
        self.cache.mkdir(exist_ok=True)
        self._load_graph()
        self._load_frames()

    def _load_graph(self) -> None:
        from edgeseg.calibration.cpu_form import upsample_as_depth_to_space
        from edgeseg.export import materialize_shared_weights, save_onnx

        try:
            self.fp32 = self.bundle.select("onnx", "fp32", targets=("any",))
        except EdgesegError:
            raise EdgesegError(
                f"bundle {self.bundle.root} has no FP32 ONNX artifact to calibrate; re-export it with edgeseg export"
            ) from None
        self.fp32_path = self.bundle.artifact_path(self.fp32)
        # The quantizer reads weights as initializers: give it a copy of the graph without aliases.
        self.model = materialize_shared_weights(self.onnx.load(str(self.fp32_path)))
        self.quant_source = self.cache / QUANTIZATION_SOURCE
        save_onnx(self.model, self.quant_source, external=bool(self.fp32.files))
        # The CPU form starts from its own rewrite of the graph (see cpu_form); TensorRT's from the graph as exported.
        cpu_model = self.onnx.ModelProto()
        cpu_model.CopyFrom(self.model)
        upsample_as_depth_to_space(cpu_model)
        self.cpu_source = self.cache / CPU_SOURCE
        save_onnx(cpu_model, self.cpu_source, external=bool(self.fp32.files))
        self.cpu_nodes = [(node.name, node.op_type) for node in cpu_model.graph.node]  # the CPU form's search
        # Calibration ranges are cached per graph: hashed once here, not at every quantize call.
        self.source_digests = {"tensorrt": sha256_file(self.quant_source), "cpu": sha256_file(self.cpu_source)}
        self.layers = self.profile.weighted_layers(self.model)
        self.tail = self.profile.decoder_tail(self.model)
        self.quantizable = self.profile.quantizable(self.model)
        if "int8" in self.options.precisions and not self.layers:
            raise EdgesegError(
                "this graph cannot be quantized: it has no Conv or ConvTranspose layer for INT8 to speed up; use "
                "--precision fp16"
            )

    def _load_frames(self) -> None:
        from edgeseg.calibration.dataset import build_calibration_set, read_frames
        from edgeseg.calibration.quantize import TensorReader

        options, contract = self.options, self.bundle.input
        # Held-out frames come from --eval-data when given, else from the frames calibration leaves unused.
        self.data = build_calibration_set(
            options.data, options.count, 0 if options.eval_data else options.eval_count, contract, self.cache
        )
        held_out = self.data.held_out
        if options.eval_data:
            _, held_out = read_frames(options.eval_data, 0, options.eval_count)
        self.eval_frames = len(held_out.frames)
        if self.data.source_size != tuple(contract.size):
            h, w = self.data.source_size
            print(
                f"edgeseg: note: calibration frames are {w}x{h}; resized to the model's "
                f"{contract.size[1]}x{contract.size[0]} as the runtime does",
                file=sys.stderr,
            )
        self.fidelity = self.profile.fidelity(self.bundle, self.fp32_path, held_out, options)
        self.reader = TensorReader(contract.name, self.data.tensors, contract.batch or 1)

    def provenance(self) -> dict[str, Any]:
        # redacted: a manifest travels with its bundle and `info` prints it; an HTTP source's password or a
        # ?token= never goes in it
        return {
            "source": redact(self.options.data),
            "count": int(len(self.data.tensors)),
            "method": self.options.method,
            "data_sha256": self.data.sha256,
            "eval_source": redact(self.options.eval_data or self.options.data)
            + ("" if self.options.eval_data else " (frames not used for calibration)"),
            "eval_frames": self.eval_frames,
            "source_size": list(self.data.source_size),
            "resized": self.data.source_size != tuple(self.bundle.input.size),
            "cached": self.data.cached,
            "created": utc_now(),
            **self.fidelity.provenance(),
        }

    def artifact(self, path: Path, precision: str, target: str, **extra: Any) -> Artifact:
        import onnxruntime

        extra.update(self.judge(extra["fidelity"], path.name))
        return Artifact(
            path=path.name,
            kind="onnx",
            precision=precision,
            target=target,
            sha256=sha256_file(path),
            size=path.stat().st_size,
            tools={"onnx": self.onnx.__version__, "onnxruntime": onnxruntime.__version__, "edgeseg": "calibrate"},
            created=utc_now(),
            extra=extra,
        )

    def judge(self, fidelity: dict[str, Any], name: str) -> dict[str, Any]:
        """Whether `--precision best` may run this variant: its fidelity against the bar (the user's target, else
        the default one); a variant below it is kept, listed and said so, never picked silently."""
        measure = self.fidelity
        accepted = measure.accepts(fidelity)
        if not accepted:
            print(
                f"edgeseg: warning: {name}: {measure.describe(fidelity[measure.metric])} misses {measure.bar()}; "
                "`--precision best` passes over it (name its precision to run it anyway)",
                file=sys.stderr,
            )
        return {"accepted": accepted, "accuracy_bar": measure.bar()}

    # -- FP16 ---------------------------------------------------------------------------------
    def fp16(self, progress: Progress) -> Artifact:
        """FP16 with the nodes whose float16 results overflow or diverge kept float32: those whose FP32 values pass
        float16's range first, then, while the bar (--min-agreement, else the default one) is missed, the fewest
        most-sensitive nodes, measured one by one as the INT8 search measures them."""
        from edgeseg.calibration.fp16 import overflowing_nodes

        keep_float = self.profile.fp16_float(self.model, self.tail)
        batch = self.reader.batch
        inputs = [self.data.tensors[i : i + batch] for i in range(0, min(len(self.data.tensors), 16), batch)]
        overflow = [name for name in overflowing_nodes(self.model, inputs, self.options.threads)
                    if name not in keep_float]  # fmt: skip
        final = self.bundle.root / ARTIFACT_NAMES["fp16"]
        self.save_fp16(final, keep_float | set(overflow))
        measure, goal = self.fidelity, self.fidelity_goal()
        search: dict[str, Any] = {}
        float_nodes = list(overflow)
        if goal is not None and (first := measure.value(final)) < goal:
            search = self.fp16_search(keep_float | set(overflow), first, goal, final, progress)
            float_nodes += search.pop("float_layers")
        fidelity = measure.report(final, "fp16", "FP16")
        extra: dict[str, Any] = {"float_layers": float_nodes, "overflow_layers": overflow}
        if search:
            extra["min_agreement_search"] = search
        return self.artifact(
            final,
            "fp16",
            "any",
            fidelity=fidelity,
            opset=self.fp32.extra.get("opset"),
            requires="TensorRT >= 8.5 (FP16 precision from the graph's types)",
            **extra,
        )

    def fidelity_goal(self) -> float | None:
        """The figure FP16 must reach: the user's target, else the default bar where the measure has one."""
        measure = self.fidelity
        return measure.target if measure.target is not None else getattr(measure, "default_target", None)

    def save_fp16(self, path: Path, keep_float: set[str]) -> None:
        from edgeseg.calibration.fp16 import convert_to_fp16, float16_leaks

        model = convert_to_fp16(self.model, frozenset(keep_float))
        leaks = float16_leaks(model)
        if leaks:
            raise EdgesegError(
                f"FP16 conversion left float16 where it must not be ({', '.join(leaks)}); please report this model"
            )
        with atomic_path(path) as temp:
            self.onnx.save(model, str(temp))

    def fp16_search(self, kept: set[str], first: float, goal: float, final: Path, progress: Progress) -> dict[str, Any]:
        """Per-node sensitivity (the fidelity lost with only that node in float16), then the fewest most-sensitive
        nodes kept float32 that reach `goal`; `final` is left holding that graph."""
        from edgeseg.calibration.fp16 import FLOAT, _element_types

        measure, started = self.fidelity, time.perf_counter()
        line = f"edgeseg: FP16 {measure.describe(first)} misses {goal:.2%}: measuring per-node sensitivity"
        print(line, file=sys.stderr)
        types = _element_types(self.model)
        nodes = [n.name for n in self.model.graph.node]
        candidates = [n.name for n in self.model.graph.node
                      if n.name not in kept and any(types.get(t) == FLOAT for t in n.output)]  # fmt: skip
        probe = self.cache / "fp16-probe.onnx"
        losses: dict[str, float] = {}
        deadline = time.perf_counter() + 60 * self.options.search_minutes
        progress.extend(len(candidates))
        for name in candidates:
            if time.perf_counter() > deadline:
                progress.advance(steps=len(candidates) - len(losses))
                break
            self.save_fp16(probe, set(nodes) - {name})
            losses[name] = measure.loss(probe)
            progress.advance(f"FP16 sensitivity {len(losses)}/{len(candidates)}" if progress.tty else "")
        ranked = sorted(candidates, key=lambda name: losses.get(name, -1.0), reverse=True)

        def value_with_float(count: int) -> float:
            self.save_fp16(probe, kept | set(ranked[:count]))
            return measure.value(probe)

        count, reached = fewest_meeting(len(ranked), value_with_float, goal)
        probe.unlink(missing_ok=True)
        self.save_fp16(final, kept | set(ranked[:count]))
        if reached < goal:
            print(
                f"edgeseg: warning: FP16 misses {goal:.2%} even with every node in float32 "
                f"({measure.describe(reached)})",
                file=sys.stderr,
            )
        return {
            "option": measure.option,
            "target": goal,
            f"{measure.metric}_before": first,
            f"{measure.metric}_after": reached,
            "met": reached >= goal,
            "layers": len(candidates),
            "measured": len(losses),
            "float_layers": ranked[:count],
            "seconds": round(time.perf_counter() - started, 1),
        }

    # -- INT8 ---------------------------------------------------------------------------------
    def quantize_to(
        self, final: Path, recipe: Any, exclude: list[str], only: list[str] | None = None, widen: bool = True
    ) -> list[str]:
        from edgeseg.calibration.quantize import quantize
        from edgeseg.calibration.ranges import DEFAULT_BUDGET_BYTES

        # Ranges depend on the data, the method, the weights, the graph (as rewritten for the CPU) and
        # which tensors the recipe quantizes.
        source = self.cpu_source if recipe.target == "cpu" else self.quant_source
        weights = (self.fp32.sha256, sorted(self.fp32.files.items()))
        recipe_key = hashlib.sha256(
            repr((recipe.op_types, sorted(recipe.extra.items()), weights, self.source_digests[recipe.target])).encode()
        ).hexdigest()[:8]
        ranges = self.cache / f"ranges-{self.data.sha256[:16]}-{self.options.method}-{recipe.target}-{recipe_key}.json"
        only = only or self.quantizable
        budget = self.options.max_memory_mb * 2**20 if self.options.max_memory_mb else DEFAULT_BUDGET_BYTES
        with atomic_path(final) as temp:
            return quantize(
                source, temp, recipe, self.reader, self.options.method, ranges, exclude, only, widen, budget
            )

    def candidates_for(self, recipe: Any, boundary: list[str]) -> list[str]:
        """The nodes `recipe` quantizes in its source graph: the sensitivity search's candidates."""
        nodes = self.cpu_nodes if recipe.target == "cpu" else [(n.name, n.op_type) for n in self.model.graph.node]
        quantized = set(self.quantizable) if self.quantizable is not None else None
        return [
            name
            for name, op in nodes
            if op in recipe.op_types and name not in boundary and (quantized is None or name in quantized)
        ]

    def search(self, recipe: Any, boundary: list[str], first: float, progress: Progress) -> dict[str, Any]:
        """The fewest most-sensitive nodes of `recipe` left in float that meet the target; what it found and cost."""
        measure = self.fidelity
        label = "TensorRT" if recipe.target == "tensorrt" else "CPU"
        print(
            f"edgeseg: {label} INT8 {measure.describe(first)} misses {measure.option}: measuring per-node sensitivity",
            file=sys.stderr,
        )
        started = time.perf_counter()
        candidates = self.candidates_for(recipe, boundary)
        float_layers, losses, reached, calls = self.sensitivity(recipe, boundary, candidates, progress)
        total = len(candidates)
        if reached < measure.target:
            print(
                f"edgeseg: warning: {measure.option} is not met even with every quantized node in float "
                f"({measure.describe(reached)}); the {label} artifact is kept with all {total} in float and says so",
                file=sys.stderr,
            )
        return {
            "option": measure.option,
            "target": measure.target,
            f"{measure.metric}_before": first,
            f"{measure.metric}_after": reached,
            "met": reached >= measure.target,
            "layers": total,
            "measured": len(losses),
            "float_layers": float_layers,
            "sensitivity": losses,
            "quantize_calls": calls,
            "seconds": round(time.perf_counter() - started, 1),
        }

    def sensitivity(
        self, recipe: Any, boundary: list[str], layers: list[str], progress: Progress
    ) -> tuple[list[str], dict[str, float], float, int]:
        """Per-node sensitivity (the fidelity lost with only that node in int8), then the fewest most-sensitive
        nodes left in float that meet the target (--min-agreement, --max-ap-drop). Every node the recipe quantizes
        is a candidate, not only the convolutions: a loss can come from residual Adds, pooling or Resize. Nodes
        not measured within --search-minutes rank after the measured ones, in graph order."""
        target = self.fidelity.target
        probe = self.cache / "sensitivity-probe.onnx"
        losses: dict[str, float] = {}
        deadline = time.perf_counter() + 60 * self.options.search_minutes
        progress.extend(len(layers))
        for layer in layers:
            if time.perf_counter() > deadline:
                print(
                    f"edgeseg: note: sensitivity measured for {len(losses)} of {len(layers)} nodes in the "
                    f"{self.options.search_minutes:g} minutes --search-minutes allows; the rest rank after them",
                    file=sys.stderr,
                )
                progress.advance(steps=len(layers) - len(losses))
                break
            progress.begin(f"sensitivity of {layer}")
            self.quantize_to(probe, recipe, boundary, only=[layer])
            losses[layer] = self.fidelity.loss(probe)
            progress.advance(f"sensitivity {len(losses)}/{len(layers)}" if progress.tty else "")  # a log: no line each
        ranked = sorted(layers, key=lambda name: losses.get(name, -1.0), reverse=True)  # stable: graph order for ties
        calls = len(losses)

        def value_with_float(count: int) -> float:
            nonlocal calls
            calls += 1
            self.quantize_to(probe, recipe, boundary + ranked[:count])
            return self.fidelity.value(probe)

        high, reached = fewest_meeting(len(ranked), value_with_float, target)
        probe.unlink(missing_ok=True)
        return ranked[:high], losses, reached, calls

    def int8(self, progress: Progress) -> list[Artifact]:
        measure, tensorrt = self.fidelity, self.recipes["tensorrt"]
        boundary = self.profile.int8_boundary(self.model, self.tail)
        self.candidates = self.candidates_for(tensorrt, boundary)
        trt_path = self.bundle.root / ARTIFACT_NAMES["tensorrt"]
        progress.begin("INT8 Q/DQ for TensorRT: calibration ranges")
        self.quantize_to(trt_path, tensorrt, boundary)
        progress.advance("INT8 Q/DQ for TensorRT")
        float_layers: list[str] = []
        search: dict[str, Any] = {}
        if measure.target is not None and (first := measure.value(trt_path)) < measure.target:
            search = self.search(tensorrt, boundary, first, progress)
            float_layers = search.pop("float_layers")
            self.quantize_to(trt_path, tensorrt, boundary + float_layers)
        trt_extra = {
            "quantization": tensorrt.describe(),
            "float_layers": float_layers,
            "float_layer_share": len(float_layers) / len(self.candidates),
            "quantized_node_count": len(self.candidates),  # the share's denominator: nodes the recipe quantizes
            "requires": "TensorRT >= 8.5 (explicit Q/DQ, opset 17)",
            "opset": 17,
        }
        if search:
            trt_extra["min_agreement_search"] = search
        progress.begin("fidelity of the TensorRT INT8 graph")
        fidelity = measure.report(trt_path, "int8-tensorrt", "INT8 Q/DQ")
        trt = self.artifact(trt_path, "int8", "tensorrt", fidelity=fidelity, **trt_extra)
        progress.advance("fidelity of the TensorRT INT8 graph")
        return [trt, self.cpu_int8(boundary, float_layers, progress)]

    def cpu_int8(self, boundary: list[str], float_layers: list[str], progress: Progress) -> Artifact:
        """Build the CPU encodings asked for and keep the fastest; keep its narrow Convs widened
        if that is faster; then leave in float the stem, and each resolution level, where that
        runs faster. Every choice is timed against the current best in the same interleaved
        rounds, on this machine."""
        from edgeseg.calibration.quantize import resolution_levels, stem_nodes

        recipes = [self.recipes["cpu-qdq"], self.recipes["cpu-qoperator"]]
        if self.options.cpu_format != "auto":
            recipes = [self.recipes[f"cpu-{self.options.cpu_format}"]]
        exclude = boundary + float_layers
        progress.begin("INT8 for the CPU: each encoding built and timed")
        candidates = {recipe.name: self.cache / f"candidate-{recipe.name}.onnx" for recipe in recipes}
        widened_in = {recipe.name: self.quantize_to(candidates[recipe.name], recipe, exclude) for recipe in recipes}
        timings = self.latencies({"fp32": self.fp32_path, **candidates})
        fastest = min(candidates, key=lambda name: timings[name])
        recipe, best, widened = next(r for r in recipes if r.name == fastest), candidates[fastest], widened_in[fastest]
        progress.advance(f"INT8 for the CPU: {fastest} ({timings[fastest] / timings['fp32']:.2f}x FP32 latency)")
        search: dict[str, Any] = {}
        target = self.fidelity.target
        if target is not None and (first := self.fidelity.value(best)) < target:
            # The CPU form quantizes other ops, asymmetrically: it gets its own search.
            search = self.search(recipe, boundary, first, progress)
            float_layers = search.pop("float_layers")
            exclude = boundary + float_layers
            widened = self.quantize_to(best, recipe, exclude)
        probe = self.cache / "candidate-probe.onnx"
        float_for_speed: list[str] = []

        def keep_if_faster(float_nodes: list[str], widen: bool) -> bool:
            nonlocal float_for_speed, widened
            probe_widened = self.quantize_to(probe, recipe, exclude + float_nodes, widen=widen)
            measured = self.latencies({"best": best, "probe": probe})
            if measured["probe"] >= LEVEL_GAIN * measured["best"]:
                return False
            probe.replace(best)
            float_for_speed, widened = float_nodes, probe_widened
            return True

        widen = not (widened and keep_if_faster([], widen=False))
        stem = [name for name in stem_nodes(self.model) if name not in exclude]
        groups = [stem] + [
            [name for name in level if name not in exclude and name not in stem]
            for level in resolution_levels(self.model, recipe.op_types)
        ]
        for group in groups:
            progress.begin(f"CPU INT8: timing {len(group)} nodes in float")
            if any(name in self.layers for name in group):
                keep_if_faster(float_for_speed + group, widen)
            speed = sum(name in self.layers for name in float_for_speed)  # counted as the table counts them
            progress.advance(f"CPU INT8: {plural(speed, 'layer')} left in float where float is faster", steps=0)
        timings.update(self.latencies({"fp32": self.fp32_path, fastest: best}))
        final = self.bundle.root / ARTIFACT_NAMES["cpu"]
        with atomic_path(final) as temp:
            temp.write_bytes(best.read_bytes())
        for path in (*candidates.values(), probe):
            path.unlink(missing_ok=True)
        speed_layers = [name for name in float_for_speed if name in self.layers]
        all_float = float_layers + speed_layers
        progress.advance(
            f"INT8 for the CPU: {timings[fastest] / timings['fp32']:.2f}x FP32 latency, "
            f"{plural(len(speed_layers), 'layer')} float for speed"
        )
        extra = {
            "quantization": recipe.describe(),
            "cpu_latency_ms": timings,
            "cpu_latency_ratio": timings[fastest] / timings["fp32"],
            "chosen": fastest,
            "requires": "ONNX Runtime (CPU)",
            "float_layers": all_float,
            "float_for_speed": speed_layers,
            "float_layer_share": len(all_float) / len(self.candidates_for(recipe, boundary)),
            "quantized_node_count": len(self.candidates_for(recipe, boundary)),
            "widened_to_16_filters": widened,
        }
        if search:
            extra["min_agreement_search"] = search
        fidelity = self.fidelity.report(final, "int8-cpu", "INT8 CPU")
        return self.artifact(final, "int8", "cpu", fidelity=fidelity, **extra)

    def latencies(self, paths: dict[str, Path]) -> dict[str, float]:
        return latencies_ms(paths, self.data.tensors[: self.reader.batch], self.options.threads)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' * (count != 1)}"


def fewest_meeting(total: int, value_with_float: Any, target: float) -> tuple[int, float]:
    """Doubling, then bisection: the fewest of `total` ranked nodes left in float for which `value_with_float(count)`
    reaches `target` (all of them where none fewer do), and the value it reached."""
    low, high, reached = 0, 1, 0.0
    while high < total and (reached := value_with_float(high)) < target:
        low, high = high, min(2 * high, total)
    if high >= total:
        reached = value_with_float(total)
        high = total
    while high - low > 1:
        middle = (low + high) // 2
        if (value := value_with_float(middle)) >= target:
            high, reached = middle, value
        else:
            low = middle
    return high, reached


# Each choice of the CPU form compares medians of models timed in the same rounds. A model of a few milliseconds
# gets `runs` calls per round; a slow one gets as many as fit in about this long per model and round (never fewer
# than MIN_RUNS_PER_ROUND): Mask R-CNN at 320x240 takes ~0.25 s a call on 2 cores, and its CPU form's search timed
# two models per resolution level at 60 calls each, 7 of the 11 minutes its calibration took.
ROUND_SECONDS = 0.6
MIN_RUNS_PER_ROUND = 2


def latencies_ms(
    paths: dict[str, Path], batch: np.ndarray, threads: int | None, rounds: int = 5, runs: int = 12
) -> dict[str, float]:
    """Median latency of one infer call per model, the models timed in interleaved rounds."""
    from edgeseg.runtime.backends import ONNXRuntimeBackend
    from edgeseg.timing import interleaved_samples, timed

    backends = {
        name: ONNXRuntimeBackend(path, providers=["CPUExecutionProvider"], threads=threads).open()
        for name, path in paths.items()
    }
    try:
        calls = {name: functools.partial(backend.infer, batch) for name, backend in backends.items()}
        slowest = max(min(timed(call, 3)) for call in calls.values())  # the first calls warm the sessions up
        per_round = max(MIN_RUNS_PER_ROUND, min(runs, int(ROUND_SECONDS / max(slowest, 1e-6))))
        samples = interleaved_samples(calls, 2, rounds * per_round, rounds)
    finally:
        for backend in backends.values():
            backend.close()
    return {name: float(np.median(values) * 1000) for name, values in samples.items()}


def calibrate(bundle_dir: Path, options: CalibrateOptions) -> Bundle:
    """Add the asked-for precision variants to the bundle; the manifest lists them only once all are complete."""
    check_options(options)
    with writing(Path(bundle_dir), "calibrate"):
        return _calibrate_locked(bundle_dir, options)


def _calibrate_locked(bundle_dir: Path, options: CalibrateOptions) -> Bundle:
    bundle = Bundle.load(bundle_dir)  # read under the lock: another stage may have just added artifacts
    check_target(bundle, options)
    steps = 2 + ("fp16" in options.precisions) + 4 * ("int8" in options.precisions)  # frames, manifest, variants
    progress = Progress(steps, "calibrate", enabled=options.progress)
    try:
        return _calibrate(bundle, options, progress)
    except BaseException:
        for name in (QUANTIZATION_SOURCE, CPU_SOURCE):
            for path in (bundle.root / ".cache" / name, bundle.root / ".cache" / f"{name}.data"):
                path.unlink(missing_ok=True)
        raise


def _calibrate(bundle: Bundle, options: CalibrateOptions, progress: Progress) -> Bundle:
    progress.begin("reading the calibration and held-out frames, FP32 on the held-out ones")
    run = Calibration(bundle, options)
    progress.advance(
        f"{len(run.data.tensors)} calibration frames{' (cached)' if run.data.cached else ''}, {run.eval_frames} held "
        "out"
    )
    artifacts = []
    if "fp16" in options.precisions:
        progress.begin("FP16 graph and its fidelity")
        artifacts.append(run.fp16(progress))
        progress.advance("FP16")
    if "int8" in options.precisions:
        artifacts += run.int8(progress)
    for artifact in artifacts:
        bundle.add_artifact(artifact)
    bundle.manifest["calibration"] = run.provenance()
    bundle.save()
    progress.advance("manifest updated")
    return bundle
