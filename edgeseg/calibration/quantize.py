"""INT8 ONNX with ONNX Runtime's quantization tool: one Q/DQ form for TensorRT, one fast form for CPUs.

TensorRT form (opset 17, so TensorRT 8.5 parses it): explicit QuantizeLinear/DequantizeLinear,
symmetric int8 with zero point 0, per-channel weights (ConvTranspose on its output-channel axis 1),
float bias, quantized inputs to Conv/ConvTranspose, both inputs of residual Adds (so TensorRT fuses
the Add into the Conv before it), and pooling/Resize as 8-bit pass-through. Concat is left alone:
the single Q/DQ pair after it is what TensorRT propagates back over the Concat, giving all its
inputs one scale. Nothing is quantized around the fused uint8 input (Cast/normalise stay float)
or the argmax (the logits stay float, so the argmax sees no quantization ties).

CPU form: uint8 activations with int8 weights (U8S8), which ONNX Runtime's CPU kernels run fastest;
both the QDQ and the QOperator encodings are built and the faster one on this machine is kept. Relu
is on its list so the quantizer folds each activation into its Conv's output range (zero point 0
clips as Relu does); without it every Conv output is dequantized, clipped and requantized, which
measured 1.2x FP32 latency on demo-driving against 0.86x with it. The CPU form is quantized from
its own copy of the graph, rewritten by `cpu_form` first, and tuned by it after.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.calibration.ranges import DEFAULT_BUDGET_BYTES, collect_ranges
from edgeseg.errors import EdgesegError
from edgeseg.fileio import atomic_path
from edgeseg.native_output import quiet_native_output
from edgeseg.onnx_graph import consumers, downstream, producers, static_shapes

METHODS = ("entropy", "percentile", "minmax")
WEIGHTED_OPS = ("Conv", "ConvTranspose")
INSTANCE_WEIGHTED_OPS = WEIGHTED_OPS + ("Gemm",)
# What an instance graph computes in float16 (its FP16 form) and quantizes (the INT8 forms), on feature maps only.
FEATURE_MAP_OPS = INSTANCE_WEIGHTED_OPS + ("Relu", "Add", "MaxPool", "AveragePool", "Resize", "Concat")
SHAPE_OPS = ("Shape", "Size")
# quantize_static's extra options that it hands its calibrator, under the calibrator's names.
CALIBRATOR_OPTIONS = (
    ("CalibTensorRangeSymmetric", "symmetric"),
    ("CalibMovingAverage", "moving_average"),
    ("CalibMovingAverageConstant", "averaging_constant"),
    ("CalibMaxIntermediateOutputs", "max_intermediate_outputs"),
    ("CalibPercentile", "percentile"),
)


@dataclass(frozen=True)
class QuantRecipe:
    name: str
    target: str  # tensorrt | cpu
    fmt: str  # qdq | qoperator
    op_types: tuple[str, ...]
    activation: str  # int8 | uint8
    per_channel: bool
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "format": self.fmt.upper(),
            "activations": self.activation,
            "weights": "int8",
            "per_channel": self.per_channel,
            "op_types": list(self.op_types),
            "symmetric": self.activation == "int8",
        }


TENSORRT = QuantRecipe(
    "tensorrt",
    "tensorrt",
    "qdq",
    ("Conv", "ConvTranspose", "Add", "MaxPool", "AveragePool", "Resize"),
    "int8",
    True,
    {
        "ActivationSymmetric": True,
        "WeightSymmetric": True,
        "QuantizeBias": False,
        "QDQKeepRemovableActivations": True,
        "QDQOpTypePerChannelSupportToAxis": {"ConvTranspose": 1},
    },
)
# Measured on the demo nets (ORT 1.32, 2 cores): adding ConvTranspose costs time (ORT's CPU has no
# int8 ConvTranspose, so it runs DQ -> float -> Q: cpu_form rewrites the U-Net's as 1x1 Convs),
# GlobalAveragePool and Mul gain nothing. Transpose and Reshape move bytes, so the depth-to-space
# of that rewrite runs on uint8.
CPU_OPS = ("Conv", "Add", "Concat", "MaxPool", "Resize", "Relu", "Transpose", "Reshape")
CPU_QDQ = QuantRecipe("cpu-qdq", "cpu", "qdq", CPU_OPS, "uint8", False, {"WeightSymmetric": True})
CPU_QOPERATOR = QuantRecipe("cpu-qoperator", "cpu", "qoperator", CPU_OPS, "uint8", False, {"WeightSymmetric": True})


class TensorReader:
    """ONNX Runtime's CalibrationDataReader over preprocessed frames, in chunks (set_range) to bound memory."""

    def __init__(self, input_name: str, tensors: np.ndarray, batch: int):
        self.input_name, self.tensors, self.batch = input_name, tensors, batch
        usable = len(tensors) - len(tensors) % batch
        self.batches = [tensors[i : i + batch] for i in range(0, usable, batch)]
        self.set_range(0, len(self.batches))

    def __len__(self) -> int:
        return len(self.batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.pending = deque(self.batches[start_index:end_index])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return {self.input_name: self.pending.popleft()} if self.pending else None

    def rewind(self) -> None:
        self.set_range(0, len(self.batches))


def float_boundary_nodes(model: Any) -> list[str]:
    """Nodes that stay float: the fused preprocessing before the first Conv, and the logits-to-argmax tail."""
    graph = model.graph
    writers = producers(graph)
    # The argmax and everything after it (the casts to uint8).
    argmaxes = [n for n in graph.node if n.op_type == "ArgMax"]
    tail, _ = downstream(graph, [o for n in argmaxes for o in n.output])
    keep = input_head_nodes(model) + [n.name for n in argmaxes] + [graph.node[index].name for index in tail]
    # Backward from the logits to the last Conv (the final Resize, a score Add): logits stay float.
    frontier = deque([n.input[0] for n in argmaxes] or [o.name for o in graph.output])
    while frontier:
        node = writers.get(frontier.popleft())
        if node is None or node.op_type in WEIGHTED_OPS or node.name in keep:
            continue
        keep.append(node.name)
        frontier.extend(node.input if node.op_type == "Add" else node.input[:1])
    return keep


def input_head_nodes(model: Any) -> list[str]:
    """Forward from the image input until a Conv: Cast, channel flip, normalisation (the fused preprocessing)."""
    graph = model.graph
    head, _ = downstream(graph, [i.name for i in graph.input], stop=WEIGHTED_OPS + SHAPE_OPS)
    return [graph.node[index].name for index in head]


def decoder_tail_nodes(model: Any) -> list[str]:
    """The graph's last weighted layers (those whose output reaches no other weighted layer) and every node after
    them: a keypoint graph's heatmap head and its peak decoder (MaxPool, TopK, Gather, coordinate arithmetic),
    which stay float. Heatmaps quantized to 8 bits have plateaus where a peak was: the local-maximum test then
    takes a neighbouring cell, and the sign of the quarter-cell step is 0 (measured on demo-medical-tips: with
    the head's output in int8, 14% of FP32's peaks moved by more than half a cell)."""
    graph = model.graph
    last = [node for node in graph.node if node.op_type in WEIGHTED_OPS
            and not downstream(graph, list(node.output), stop=WEIGHTED_OPS)[1]]  # fmt: skip
    tail, _ = downstream(graph, [output for node in last for output in node.output])
    return [node.name for node in last] + [graph.node[index].name for index in tail]


def resolution_levels(model: Any, op_types: tuple[str, ...]) -> list[list[str]]:
    """Nodes of `op_types` grouped by the spatial size of their output, largest first.

    ONNX Runtime's int8 CPU kernels lose to its float NCHWc kernels on wide, shallow feature maps
    (8-16 channels at full resolution): calibrate measures each level in float and keeps what is faster.
    """
    shapes = {
        name: dims[2] * dims[3]
        for name, dims in static_shapes(model).items()
        if len(dims) == 4 and dims[2] > 0 and dims[3] > 0
    }
    levels: dict[int, list[str]] = {}
    for node in model.graph.node:
        if node.op_type in op_types and node.output[0] in shapes:
            levels.setdefault(shapes[node.output[0]], []).append(node.name)
    return [levels[size] for size in sorted(levels, reverse=True)]


def stem_nodes(model: Any) -> list[str]:
    """The first Convs after the image input, with the Relu after each: a 3-channel input is one
    ONNX Runtime's int8 kernels handle slowly (they want input channels in multiples of 4)."""
    graph = model.graph
    readers = consumers(graph)
    _, stops = downstream(graph, [i.name for i in graph.input], stop=WEIGHTED_OPS + SHAPE_OPS)
    convs = [graph.node[index] for index in stops if graph.node[index].op_type in WEIGHTED_OPS]
    relus = [
        graph.node[index].name
        for conv in convs
        for index in readers.get(conv.output[0], [])
        if graph.node[index].op_type == "Relu"
    ]
    return [conv.name for conv in convs] + relus


def weighted_nodes(model: Any, op_types: tuple[str, ...] = WEIGHTED_OPS) -> list[str]:
    """The layers whose precision sensitivity is measured: every Conv and ConvTranspose (and Gemm in an instance
    graph's box head)."""
    return [n.name for n in model.graph.node if n.op_type in op_types]


def feature_map_nodes(model: Any, op_types: tuple[str, ...]) -> list[str]:
    """Nodes of `op_types` that compute on feature maps: the weighted layers, and the others where their output
    is 4-D. In an instance graph this leaves out the box arithmetic (Adds and Muls on 1-D and 2-D coordinate
    tensors, where an 8-bit step is pixels wide), NMS and RoIAlign."""
    shapes = static_shapes(model)
    return [
        n.name
        for n in model.graph.node
        if n.op_type in op_types and (n.op_type in INSTANCE_WEIGHTED_OPS or len(shapes.get(n.output[0], ())) == 4)
    ]


def outside_feature_maps(model: Any) -> frozenset[str]:
    """An instance graph's nodes that are not feature_map_nodes (Constants aside): what its FP16 form keeps in
    float32."""
    dense = set(feature_map_nodes(model, FEATURE_MAP_OPS))
    return frozenset(n.name for n in model.graph.node if n.name not in dense and n.op_type != "Constant")


def for_instances(recipe: QuantRecipe) -> QuantRecipe:
    """The recipe with the box head's fully connected layers (Gemm) quantized too, and only the operator types
    that an instance graph uses on feature maps: ONNX Runtime's calibrator collects ranges for every tensor of
    the listed types, and the detector's Concat/Reshape/Transpose outputs change size from frame to frame (the
    entropy histograms cannot merge them)."""
    return replace(recipe, op_types=tuple(op for op in recipe.op_types + ("Gemm",) if op in FEATURE_MAP_OPS
                                          and op != "Concat"))  # fmt: skip


def quantize(
    fp32_path: Path,
    output: Path,
    recipe: QuantRecipe,
    reader: TensorReader,
    method: str,
    ranges_cache: Path,
    exclude: list[str],
    only: list[str] | None = None,
    widen: bool = True,
    budget_bytes: int = DEFAULT_BUDGET_BYTES,
) -> list[str]:
    """Write the quantized model to `output`. Calibration ranges are computed once per (data, method,
    recipe family) and cached. Returns the Convs the CPU form widened (see cpu_form.widen_narrow_convs)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import save_tensors_data

    methods = {
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
        "minmax": CalibrationMethod.MinMax,
    }
    reader.rewind()
    # ONNX Runtime's quantizer logs advice and per-tensor notes on the root logger: keep the terminal readable.
    root_logger = logging.getLogger()
    previous_level = root_logger.level
    root_logger.setLevel(logging.ERROR)
    chunk = max(1, min(len(reader), 16))
    while len(reader) % chunk:
        chunk -= 1
    try:
        if method != "minmax" and not ranges_cache.is_file():
            # The histogram methods' ranges, streamed (see ranges.py); quantize_static then reads them from the cache.
            feeds = [{reader.input_name: batch} for batch in reader.batches]
            calibrator_options = {key: recipe.extra[name] for name, key in CALIBRATOR_OPTIONS if name in recipe.extra}
            with contextlib.redirect_stdout(io.StringIO()), quiet_native_output():  # as below
                ranges = collect_ranges(fp32_path, list(recipe.op_types), feeds, methods[method], calibrator_options,
                                        chunk, budget_bytes)  # fmt: skip
            with atomic_path(ranges_cache) as temp:
                save_tensors_data(ranges, temp)
        # Its calibrators print progress notes on stdout, its sessions' C++ logger on stderr.
        with contextlib.redirect_stdout(io.StringIO()), quiet_native_output():
            quantize_static(
                str(fp32_path),
                str(output),
                reader,
                quant_format=QuantFormat.QDQ if recipe.fmt == "qdq" else QuantFormat.QOperator,
                op_types_to_quantize=list(recipe.op_types),
                per_channel=recipe.per_channel,
                reduce_range=False,
                activation_type=QuantType.QInt8 if recipe.activation == "int8" else QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=list(exclude),
                nodes_to_quantize=list(only) if only else None,
                calibrate_method=methods[method],
                extra_options={**recipe.extra, "CalibStridedMinMax": chunk},
                calibration_cache_path=str(ranges_cache),
            )
    except EdgesegError:
        raise
    except Exception as exc:  # the quantizer raises bare exceptions for graphs it cannot handle
        raise EdgesegError(
            f"ONNX Runtime cannot quantize this graph ({recipe.name}): {str(exc).splitlines()[0]}"
        ) from None
    finally:
        root_logger.setLevel(previous_level)
    if recipe.target == "tensorrt":
        check_opset(output)
        return []
    from edgeseg.calibration.cpu_form import tune_for_cpu

    return tune_for_cpu(output, widen)


def check_opset(path: Path, limit: int = 17) -> None:
    """TensorRT 8.5 (JetPack 5) parses opset <= 17: refuse to hand out a TensorRT graph the quantizer raised past it."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    version = max((e.version for e in model.opset_import if e.domain in ("", "ai.onnx")), default=0)
    if version > limit:
        raise EdgesegError(
            f"the quantized graph needs opset {version}, past the {limit} TensorRT 8.5 parses; re-export the bundle "
            f"with --opset {limit}"
        )
