"""Calibration ranges by histogram (entropy, percentile) with a bounded amount of activations in memory.

ONNX Runtime's histogram calibrators make every tensor to calibrate a graph output, run a chunk of
frames, keep all of their activations, and then histogram the chunk: for a ResNet-50 at 512x512 that
is 1.3 GB a frame, 21 GB for a chunk of 16. Here the frames are streamed instead:

1. one pass with ReduceMin/ReduceMax/Size nodes added behind every tensor gives each tensor's range
   over each chunk (a few numbers a frame): with the histogram so far, that fixes the bins ONNX
   Runtime's collector would histogram the chunk into;
2. then, for consecutive groups of tensors holding at most `budget_bytes` a frame, the part of the
   graph that computes them runs over the frames again, and each frame's activations are histogrammed
   into those bins and dropped.

A histogram over fixed bins is the sum of its frames' histograms, so the ranges are the ones ONNX
Runtime computes on the same chunks (a test compares the tables). The merge rules below restate
HistogramCollector.collect_value / collect_absolute_value of ONNX Runtime 1.32's
onnxruntime/quantization/calibrate.py for a chunk whose range is known in advance.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.native_output import quiet_native_output

# Activations fetched per inference call while histogramming; `calibrate --max-memory` sets it.
DEFAULT_BUDGET_BYTES = 512 * 2**20


class ChunkStats:
    """One tensor's range over the frames of a chunk, from the first pass."""

    def __init__(self) -> None:
        self.low: np.ndarray | None = None  # np.float32 scalars, as np.nanmin gives them
        self.high: np.ndarray | None = None
        self.abs_low: np.ndarray | None = None

    def add(self, low: np.ndarray, high: np.ndarray, abs_low: np.ndarray) -> None:
        self.low = low if self.low is None else min(self.low, low)
        self.high = high if self.high is None else max(self.high, high)
        self.abs_low = abs_low if self.abs_low is None else min(self.abs_low, abs_low)

    def bounds(self) -> tuple[Any, Any, Any]:
        """(min, max, min of |x|); 0 for a tensor empty on every frame of the chunk, as ONNX Runtime takes it."""
        zero = np.array(0, np.float32)[()]
        return tuple(zero if value is None else value for value in (self.low, self.high, self.abs_low))


def collect_ranges(
    model_path: Path,
    op_types: list[str],
    batches: list[dict[str, np.ndarray]],
    method: Any,
    calibrator_options: dict[str, Any],
    chunk: int,
    budget_bytes: int = DEFAULT_BUDGET_BYTES,
) -> Any:
    """The TensorsData ONNX Runtime's calibrator would compute from `batches` collected `chunk` at a time."""
    from onnxruntime.quantization.calibrate import HistogramCollector, create_calibrator

    with tempfile.TemporaryDirectory(prefix="edgeseg-ranges-") as scratch:
        with quiet_native_output():
            calibrator = create_calibrator(
                Path(model_path),
                op_types,
                augmented_model_path=str(Path(scratch) / "augmented.onnx"),
                calibrate_method=method,
                providers=["CPUExecutionProvider"],
                extra_options=calibrator_options,
            )
        # Its session returns every tensor of a frame at once (and ONNX Runtime keeps every declared output
        # alive through a run, fetched or not): only its choice of tensors and its settings are used.
        calibrator.infer_session = None
        tensors = [name for name in output_order(calibrator.model) if name in calibrator.tensors_to_calibrate]
        calibrator.model = None
        collector = HistogramCollector(
            method=calibrator.method,
            symmetric=calibrator.symmetric,
            num_bins=calibrator.num_bins,
            num_quantized_bins=calibrator.num_quantized_bins,
            percentile=calibrator.percentile,
            scenario=calibrator.scenario,
        )
        absolute = calibrator.method == "percentile" and calibrator.symmetric
        chunks = [batches[start : start + chunk] for start in range(0, len(batches), chunk)]
        with graph_session(statistics_graph(Path(model_path), tensors), Path(scratch)) as session:
            stats, sizes = zip(*(chunk_statistics(session, tensors, frames) for frames in chunks))
        largest = {name: max(frame[name] for chunk_sizes in sizes for frame in chunk_sizes) for name in tensors}
        for group in fetch_groups(tensors, largest, budget_bytes):
            with graph_session(outputs_graph(Path(model_path), group), Path(scratch)) as session:
                for frames, chunk_stats in zip(chunks, stats):
                    plans = {name: bin_plan(collector.histogram_dict.get(name), chunk_stats[name], collector,
                                            absolute) for name in group}  # fmt: skip
                    counts = chunk_histograms(session, group, frames, plans, absolute)
                    for name in group:
                        merge(collector, name, chunk_stats[name], plans[name], counts[name], absolute)
        calibrator.collector = collector
        return calibrator.compute_data()


def output_order(model: Any) -> list[str]:
    """Tensor names in the order the graph computes them: graph inputs, then each node's outputs."""
    names = [i.name for i in model.graph.input]
    for node in model.graph.node:
        names.extend(node.output)
    return names


@contextlib.contextmanager
def graph_session(model: Any, scratch: Path) -> Iterator[Any]:
    """An unoptimized CPU session on `model`, as ONNX Runtime's calibrator runs (a fusion in one pass and not in
    the other would move a minimum by a rounding step), without a memory pool (what a run frees is returned)."""
    import onnx
    import onnxruntime as ort

    path = scratch / "pass.onnx"
    onnx.save(model, str(path), save_as_external_data=model.ByteSize() > 1_800_000_000)
    del model
    options = ort.SessionOptions()
    options.enable_cpu_mem_arena = False
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    # In its default order ONNX Runtime ran the statistics nodes late and held a ResNet-50's activations (+1 GB at
    # 512x512); in priority order each tensor is reduced as soon as it is made, and freed.
    options.execution_order = ort.ExecutionOrder.PRIORITY_BASED
    with quiet_native_output():
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    try:
        yield session
    finally:
        del session
        for leftover in scratch.glob("pass.onnx*"):
            leftover.unlink()


def outputs_graph(model_path: Path, outputs: list[str]) -> Any:
    """The part of the graph that computes `outputs`, with them as its only outputs."""
    import onnx

    model = onnx.load(str(model_path))
    writers = {name: index for index, node in enumerate(model.graph.node) for name in node.output}
    needed, frontier = set(), [writers[name] for name in outputs if name in writers]
    while frontier:
        index = frontier.pop()
        if index not in needed:
            needed.add(index)
            frontier.extend(writers[name] for name in model.graph.node[index].input if name in writers)
    kept = [node for index, node in enumerate(model.graph.node) if index in needed]
    used = {name for node in kept for name in node.input}
    initializers = [t for t in model.graph.initializer if t.name in used]
    del model.graph.node[:], model.graph.initializer[:], model.graph.output[:]
    model.graph.node.extend(kept)
    model.graph.initializer.extend(initializers)
    model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(name) for name in outputs)
    return model


def statistics_graph(model_path: Path, tensors: list[str]) -> Any:
    """The graph with, per tensor, its min, max, min of |x| and element count as outputs (and nothing else). Each
    tensor's statistics follow its producer in the node list, which ONNX Runtime keeps as its execution order: at the
    end of the list they would hold every tensor of the network alive at once."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(model_path))
    del model.graph.output[:]
    wanted = {name: index for index, name in enumerate(tensors)}
    nodes = list(model.graph.node)
    del model.graph.node[:]
    for name in [i.name for i in model.graph.input if i.name in wanted]:
        model.graph.node.extend(statistics_nodes(name, wanted[name]))
    for node in nodes:
        model.graph.node.append(node)
        for name in node.output:
            if name in wanted:
                model.graph.node.extend(statistics_nodes(name, wanted[name]))
    for index in range(len(tensors)):
        stem = f"edgeseg_statistic_{index}"
        for suffix in ("min", "max", "abs_min"):
            model.graph.output.append(helper.make_tensor_value_info(f"{stem}_{suffix}", TensorProto.FLOAT, []))
        model.graph.output.append(helper.make_tensor_value_info(f"{stem}_size", TensorProto.INT64, []))
    return model


def statistics_nodes(name: str, index: int) -> list[Any]:
    from onnx import helper

    stem = f"edgeseg_statistic_{index}"
    return [
        helper.make_node("ReduceMin", [name], [f"{stem}_min"], keepdims=0, name=f"{stem}_min"),
        helper.make_node("ReduceMax", [name], [f"{stem}_max"], keepdims=0, name=f"{stem}_max"),
        helper.make_node("Abs", [name], [f"{stem}_abs"], name=f"{stem}_abs"),
        helper.make_node("ReduceMin", [f"{stem}_abs"], [f"{stem}_abs_min"], keepdims=0, name=f"{stem}_abs_min"),
        helper.make_node("Size", [name], [f"{stem}_size"], name=f"{stem}_size"),
    ]


def chunk_statistics(
    session: Any, tensors: list[str], frames: list[dict[str, np.ndarray]]
) -> tuple[dict[str, ChunkStats], list[dict[str, int]]]:
    """Each tensor's range over the chunk, and each frame's element count per tensor."""
    stats = {name: ChunkStats() for name in tensors}
    sizes = []
    for feed in frames:
        values = session.run(None, feed)
        frame_sizes = {}
        for index, name in enumerate(tensors):
            low, high, abs_low, size = values[4 * index : 4 * index + 4]
            frame_sizes[name] = int(size)
            if size:  # an empty tensor (no detections in this frame) has no range
                stats[name].add(low[()], high[()], abs_low[()])
        sizes.append(frame_sizes)
    return stats, sizes


def bin_plan(old: tuple | None, stats: ChunkStats, collector: Any, absolute: bool) -> dict[str, Any]:
    """The bins ONNX Runtime's collector would histogram this chunk into (and their edges), chosen from the
    chunk's range and the histogram so far."""
    plan = bins_for(old, stats, collector, absolute)
    plan["edges"] = np.histogram(np.zeros(0, np.float32), plan["bins"], range=plan["range"])[1]
    return plan


def bins_for(old: tuple | None, stats: ChunkStats, collector: Any, absolute: bool) -> dict[str, Any]:
    """collect_value: symmetric bins around 0 that grow by whole old bins; collect_absolute_value: bins over |x|
    that grow by appending bins of the old width."""
    low, high, abs_low = stats.bounds()
    if absolute:
        abs_high = max(abs(low), abs(high))
        if old is None:
            return {"bins": collector.num_bins, "range": (abs_low, abs_high)}
        edges = old[1]
        if abs_high > edges[-1]:
            width = edges[1] - edges[0]
            edges = np.hstack((edges, np.arange(edges[-1] + width, abs_high + width, width)))
        return {"bins": edges, "range": None}
    threshold = np.array(max(abs(low), abs(high)), dtype=np.float32)
    if old is None:
        return {"bins": collector.num_bins, "range": (-threshold, threshold), "threshold": threshold}
    old_hist, old_threshold = old[0], old[4]
    if threshold <= old_threshold:
        return {"bins": len(old_hist), "range": (-old_threshold, old_threshold), "threshold": old_threshold}
    if old_threshold == 0:
        return {"bins": len(old_hist), "range": (-threshold, threshold), "threshold": threshold, "grown": 0}
    old_stride = 2 * old_threshold / len(old_hist)
    half_increased_bins = int((threshold - old_threshold) // old_stride + 1)
    new_threshold = half_increased_bins * old_stride + old_threshold
    return {
        "bins": len(old_hist) + 2 * half_increased_bins,
        "range": (-new_threshold, new_threshold),
        "threshold": new_threshold,
        "grown": half_increased_bins,
    }


def chunk_histograms(
    session: Any,
    group: list[str],
    frames: list[dict[str, np.ndarray]],
    plans: dict[str, dict[str, Any]],
    absolute: bool,
) -> dict[str, np.ndarray]:
    """Each of the group's tensors' histogram over the chunk, summed frame by frame (zeros where it is empty)."""
    counts = {name: np.zeros(len(plans[name]["edges"]) - 1, np.int64) for name in group}
    for feed in frames:
        for name, values in zip(group, session.run(group, feed)):
            data = np.abs(values.ravel()) if absolute else values.ravel()
            counts[name] += np.histogram(data, plans[name]["bins"], range=plans[name]["range"])[0]
            del data, values
    return counts


def fetch_groups(tensors: list[str], sizes: dict[str, int], budget_bytes: int) -> list[list[str]]:
    """Consecutive tensors (in graph order) whose float32 values fit the budget together; one alone if larger."""
    groups: list[list[str]] = [[]]
    held = 0
    for name in tensors:
        size = 4 * sizes[name]
        if groups[-1] and held + size > budget_bytes:
            groups.append([])
            held = 0
        groups[-1].append(name)
        held += size
    return [group for group in groups if group]


def merge(collector: Any, name: str, stats: ChunkStats, plan: dict[str, Any], hist: np.ndarray, absolute: bool) -> None:
    """Add the chunk's histogram to the collector's, as its collect_value / collect_absolute_value would have."""
    low, high, _ = stats.bounds()
    edges = plan["edges"]
    old = collector.histogram_dict.get(name)
    if absolute:
        edges = edges.astype(np.float32)
        if old is None:
            collector.histogram_dict[name] = (hist, edges, low, high)
        else:
            hist[: len(old[0])] += old[0]
            collector.histogram_dict[name] = (hist, edges, min(old[2], low), max(old[3], high))
        return
    if old is None:
        collector.histogram_dict[name] = (hist, edges, low, high, plan["threshold"])
        return
    old_hist, old_edges, old_min, old_max, old_threshold = old
    if "grown" not in plan:  # the chunk fell inside the old bins
        collector.histogram_dict[name] = (hist + old_hist, old_edges, min(old_min, low), max(old_max, high),
                                          old_threshold)  # fmt: skip
        return
    grown = plan["grown"]
    if grown == 0:
        hist += old_hist
    else:
        hist[grown : len(hist) - grown] += old_hist
    collector.histogram_dict[name] = (hist, edges, min(old_min, low), max(old_max, high), plan["threshold"])
