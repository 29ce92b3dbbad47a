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
measured 1.2x FP32 latency on demo-driving against 0.86x with it.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.errors import EdgesegError
from edgeseg.onnx_graph import consumers, downstream, producers

METHODS = ("entropy", "percentile", "minmax")
WEIGHTED_OPS = ("Conv", "ConvTranspose")
SHAPE_OPS = ("Shape", "Size")


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
        return {"format": self.fmt.upper(), "activations": self.activation, "weights": "int8", "per_channel": self.per_channel, "op_types": list(self.op_types), "symmetric": self.activation == "int8"}


TENSORRT = QuantRecipe(
    "tensorrt", "tensorrt", "qdq", ("Conv", "ConvTranspose", "Add", "MaxPool", "AveragePool", "Resize"), "int8", True,
    {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False, "QDQKeepRemovableActivations": True, "QDQOpTypePerChannelSupportToAxis": {"ConvTranspose": 1}},
)
# Measured on the demo nets (ORT 1.32, 2 cores): adding ConvTranspose costs time (ORT's CPU has no
# int8 ConvTranspose, so it runs DQ -> float -> Q), GlobalAveragePool and Mul gain nothing.
CPU_OPS = ("Conv", "Add", "Concat", "MaxPool", "Resize", "Relu")
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
    # Forward from the image input until a Conv: Cast, channel flip, normalisation.
    head, _ = downstream(graph, [i.name for i in graph.input], stop=WEIGHTED_OPS + SHAPE_OPS)
    # The argmax and everything after it (the casts to uint8).
    argmaxes = [n for n in graph.node if n.op_type == "ArgMax"]
    tail, _ = downstream(graph, [o for n in argmaxes for o in n.output])
    keep = [graph.node[index].name for index in head] + [n.name for n in argmaxes] + [graph.node[index].name for index in tail]
    # Backward from the logits to the last Conv (the final Resize, a score Add): logits stay float.
    frontier = deque([n.input[0] for n in argmaxes] or [o.name for o in graph.output])
    while frontier:
        node = writers.get(frontier.popleft())
        if node is None or node.op_type in WEIGHTED_OPS or node.name in keep:
            continue
        keep.append(node.name)
        frontier.extend(node.input if node.op_type == "Add" else node.input[:1])
    return keep


def resolution_levels(model: Any, op_types: tuple[str, ...]) -> list[list[str]]:
    """Nodes of `op_types` grouped by the spatial size of their output, largest first.

    ONNX Runtime's int8 CPU kernels lose to its float NCHWc kernels on wide, shallow feature maps
    (8-16 channels at full resolution): calibrate measures each level in float and keeps what is faster.
    """
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for info in list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = info.type.tensor_type.shape.dim
        if len(dims) == 4 and all(d.HasField("dim_value") for d in dims[2:]):
            shapes[info.name] = dims[2].dim_value * dims[3].dim_value
    levels: dict[int, list[str]] = {}
    for node in model.graph.node:
        if node.op_type in op_types and node.output[0] in shapes:
            levels.setdefault(shapes[node.output[0]], []).append(node.name)
    return [levels[size] for size in sorted(levels, reverse=True)]


def weighted_nodes(model: Any) -> list[str]:
    """The layers whose precision sensitivity is measured: every Conv and ConvTranspose."""
    return [n.name for n in model.graph.node if n.op_type in WEIGHTED_OPS]


def quantize(fp32_path: Path, output: Path, recipe: QuantRecipe, reader: TensorReader, method: str, ranges_cache: Path, exclude: list[str], only: list[str] | None = None) -> None:
    """Write the quantized model to `output`. Calibration ranges are computed once per (data, method, recipe family) and cached."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    methods = {"entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile, "minmax": CalibrationMethod.MinMax}
    reader.rewind()
    # ONNX Runtime's quantizer logs advice and per-tensor notes on the root logger: keep the terminal readable.
    root_logger = logging.getLogger()
    previous_level = root_logger.level
    root_logger.setLevel(logging.ERROR)
    chunk = max(1, min(len(reader), 16))
    while len(reader) % chunk:
        chunk -= 1
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # its calibrators print progress notes to stdout
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
        raise EdgesegError(f"ONNX Runtime cannot quantize this graph ({recipe.name}): {str(exc).splitlines()[0]}") from None
    finally:
        root_logger.setLevel(previous_level)
    if recipe.target == "tensorrt":
        check_opset(output)
    else:
        tune_for_cpu(output)


def tune_for_cpu(path: Path) -> None:
    """Rewrites that only ONNX Runtime's CPU kernels gain from; the class maps stay what they were."""
    import onnx

    model = onnx.load(str(path))
    channels_last_tail(model)
    share_concat_scales(model)
    onnx.save(model, str(path))


def share_concat_scales(model: Any) -> int:
    """Give each quantized Concat input the Concat's own scale where their zero points already match.

    ONNX Runtime's QLinearConcat copies an input whose scale and zero point equal the output's and
    requantizes every other one through a lookup table, byte by byte, across the channels-last
    layout. TensorRT gives a Concat one scale for the same reason. Only inputs with the output's
    zero point are changed, so a Relu folded into a zero point of 0 still clips. Measured on
    demo-driving: 0.75x -> 0.68x FP32 latency, agreement unchanged. Returns the inputs changed.
    """
    from onnx import numpy_helper

    initializers = {t.name: t for t in model.graph.initializer}
    writers, readers = producers(model.graph), consumers(model.graph)
    value = lambda name: numpy_helper.to_array(initializers[name])  # noqa: E731
    changed: dict[str, float] = {}
    for node in model.graph.node:
        pairs = concat_scales(model.graph, node, writers, readers)
        # Per-tensor parameters only (the CPU recipe's activations): a per-axis scale is left alone.
        if pairs is None or not all(name in initializers and value(name).size == 1 for pair in pairs for name in pair):
            continue
        (out_scale, out_zero), inputs = pairs[0], pairs[1:]
        for scale, zero in inputs:
            target = float(value(out_scale))
            if scale == out_scale or value(zero).item() != value(out_zero).item() or changed.get(scale, target) != target:
                continue
            initializers[scale].CopyFrom(numpy_helper.from_array(value(out_scale).astype(np.float32), scale))
            changed[scale] = target
    return len(changed)


def concat_scales(graph: Any, node: Any, writers: dict[str, Any], readers: dict[str, list[int]]) -> list[tuple[str, str]] | None:
    """(scale, zero point) names of a quantized concat: the output's first, then each input's.

    QOperator: QLinearConcat(y_scale, y_zero, x, x_scale, x_zero, ...). QDQ: DequantizeLinear on
    every input, one QuantizeLinear after; each input's Q and DQ must share their scale names, so
    that changing the value changes both."""
    if node.op_type == "QLinearConcat":
        return [(node.input[0], node.input[1])] + [(node.input[i + 1], node.input[i + 2]) for i in range(2, len(node.input), 3)]
    if node.op_type != "Concat":
        return None
    after = [graph.node[index] for index in readers.get(node.output[0], [])]
    dequantizes = [writers.get(name) for name in node.input]
    if len(after) != 1 or after[0].op_type != "QuantizeLinear" or not all(d is not None and d.op_type == "DequantizeLinear" and len(d.input) == 3 for d in dequantizes):
        return None
    for dequantize in dequantizes:
        quantize = writers.get(dequantize.input[0])
        if quantize is None or quantize.op_type != "QuantizeLinear" or list(quantize.input[1:3]) != list(dequantize.input[1:3]):
            return None
    return [(after[0].input[1], after[0].input[2])] + [(d.input[1], d.input[2]) for d in dequantizes]


def channels_last_tail(model: Any) -> bool:
    """Resize the logits and take their argmax channels-last, in the CPU artifact.

    ONNX Runtime's int8 kernels work channels-last, so the logits leave the last QLinearConv in
    NHWC; ORT transposes them back for the graph's NCHW Resize, which then runs its plain kernel.
    A Resize whose scales leave dims 1 and 3 alone runs ORT's NHWC kernel instead. Measured on
    demo-driving: 0.83x -> 0.74x FP32 latency, class maps identical (the same interpolation per
    axis, and ArgMax breaks ties by the first index on either axis). FP32 gains nothing, so only
    the CPU artifact is rewritten. Graphs without a fused argmax behind a Resize are left alone.
    Returns whether the graph was rewritten.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    writers, readers = producers(graph), consumers(graph)
    argmaxes = [n for n in graph.node if n.op_type == "ArgMax"]
    if len(argmaxes) != 1:
        return False
    argmax = argmaxes[0]
    attributes = {a.name: helper.get_attribute_value(a) for a in argmax.attribute}
    resize = writers.get(argmax.input[0])
    resize_mode = next((helper.get_attribute_value(a) for a in resize.attribute if a.name == "coordinate_transformation_mode"), b"half_pixel") if resize is not None else None
    if resize is None or resize.op_type != "Resize" or attributes.get("axis", 0) != 1 or attributes.get("keepdims", 1) != 0 or len(readers.get(resize.output[0], [])) != 1 or resize_mode == b"tf_crop_and_resize":
        return False
    order = numpy_helper.from_array(np.array([0, 2, 3, 1], np.int64), f"{resize.name}/nhwc_order")
    graph.initializer.append(order)
    added = [helper.make_node("Transpose", [resize.input[0]], [f"{resize.input[0]}/nhwc"], perm=[0, 2, 3, 1], name=f"{resize.name}/to_nhwc")]
    inputs = list(resize.input)
    inputs[0] = added[0].output[0]
    for slot in (2, 3):  # scales and sizes, constant or computed: reorder them to NHWC
        if len(inputs) > slot and inputs[slot]:
            added.append(helper.make_node("Gather", [inputs[slot], order.name], [f"{inputs[slot]}/nhwc"], axis=0, name=f"{resize.name}/{slot}_nhwc"))
            inputs[slot] = added[-1].output[0]
    del resize.input[:]
    resize.input.extend(inputs)
    for attribute in argmax.attribute:
        if attribute.name == "axis":
            attribute.i = 3
    position = list(graph.node).index(resize)
    for offset, node in enumerate(added):
        graph.node.insert(position + offset, node)
    return True


def check_opset(path: Path, limit: int = 17) -> None:
    """TensorRT 8.5 (JetPack 5) parses opset <= 17: refuse to hand out a TensorRT graph the quantizer raised past it."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    version = max((e.version for e in model.opset_import if e.domain in ("", "ai.onnx")), default=0)
    if version > limit:
        raise EdgesegError(f"the quantized graph needs opset {version}, past the {limit} TensorRT 8.5 parses; re-export the bundle with --opset {limit}")
