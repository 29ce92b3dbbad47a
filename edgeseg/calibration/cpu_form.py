"""The CPU INT8 artifact's own graph rewrites: what ONNX Runtime's CPU kernels run faster.

Each one keeps the class maps what they were (a test checks the numbers) and is applied to the CPU
artifact only: TensorRT fuses these patterns itself and gains nothing.

Before quantization, `upsample_as_depth_to_space` turns each ConvTranspose whose kernel equals its
stride into a 1x1 Conv and a channels-last depth-to-space. After it, `tune_for_cpu` moves the
logits' resize and argmax channels-last and gives Concat inputs the Concat's own quantization.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.onnx_graph import consumers, downstream, producers, static_shapes


def upsample_as_depth_to_space(model: Any) -> list[str]:
    """Rewrite each ConvTranspose whose kernel equals its stride (a U-Net's 2x2 upsampling) as a
    1x1 Conv to kernel*kernel*C channels followed by a depth-to-space done channels-last. Returns
    the names rewritten; the Conv keeps the ConvTranspose's name, so lists of layers still apply.

    ONNX Runtime's CPU has no int8 ConvTranspose: it dequantizes, runs a float NCHW ConvTranspose,
    and transposes the int8 feature maps out of and back into its channels-last layout around it,
    at every decoder level. The 1x1 Conv runs as an int8 channels-last QLinearConv, the
    depth-to-space is a byte shuffle on uint8 data, and ORT cancels the Transposes against its
    own, so the decoder stays channels-last. Measured on demo-medical (U-Net, 4 upsamplings):
    0.79x -> 0.74x FP32 latency, agreement unchanged. The arithmetic is the same: output pixel
    (k*i + a, k*j + b) of the ConvTranspose is channel block (a, b) of the 1x1 Conv at (i, j).
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    shapes = static_shapes(model)
    rewritten, replaced = [], set()
    for node in [n for n in graph.node if n.op_type == "ConvTranspose"]:
        block = upsampling_block(node, initializers, shapes)
        if block is None:
            continue
        weight = numpy_helper.to_array(initializers[node.input[1]])  # [in, out, k, k]
        out_channels = weight.shape[1]
        bias = (
            numpy_helper.to_array(initializers[node.input[2]])
            if len(node.input) > 2 and node.input[2]
            else np.zeros(out_channels, weight.dtype)
        )
        _, _, height, width = shapes[node.input[0]]
        name, output = node.name or node.output[0], node.output[0]
        constants = {
            "weight_1x1": weight.transpose(2, 3, 1, 0).reshape(
                block * block * out_channels, weight.shape[0], 1, 1
            ),  # channel (a, b, out)
            "bias_1x1": np.tile(bias, block * block),
            "block_shape": np.array([0, height, width, block, block, out_channels], np.int64),
            "image_shape": np.array([-1, block * height, block * width, out_channels], np.int64),
        }
        graph.initializer.extend(numpy_helper.from_array(value, f"{name}/{key}") for key, value in constants.items())
        steps = [
            helper.make_node(
                "Conv",
                [node.input[0], f"{name}/weight_1x1", f"{name}/bias_1x1"],
                [f"{output}/blocks"],
                name=name,
                kernel_shape=[1, 1],
            ),
            helper.make_node(
                "Transpose", [f"{output}/blocks"], [f"{output}/blocks_nhwc"], name=f"{name}/to_nhwc", perm=[0, 2, 3, 1]
            ),
            helper.make_node(
                "Reshape", [f"{output}/blocks_nhwc", f"{name}/block_shape"], [f"{output}/split"], name=f"{name}/split"
            ),
            helper.make_node(
                "Transpose",
                [f"{output}/split"],
                [f"{output}/interleaved"],
                name=f"{name}/interleave",
                perm=[0, 1, 3, 2, 4, 5],
            ),
            helper.make_node(
                "Reshape", [f"{output}/interleaved", f"{name}/image_shape"], [f"{output}/nhwc"], name=f"{name}/merge"
            ),
            helper.make_node("Transpose", [f"{output}/nhwc"], [output], name=f"{name}/to_nchw", perm=[0, 3, 1, 2]),
        ]
        position = list(graph.node).index(node)
        replaced.update(node.input[1:])
        graph.node.remove(node)
        for offset, step in enumerate(steps):
            graph.node.insert(position + offset, step)
        rewritten.append(name)
    used = {name for node in graph.node for name in node.input}
    for initializer in [t for t in graph.initializer if t.name in replaced and t.name not in used]:
        graph.initializer.remove(initializer)  # the ConvTransposes' own weights: ORT warns about each one left
    return rewritten


def upsampling_block(node: Any, initializers: dict[str, Any], shapes: dict[str, list[int]]) -> int | None:
    """The block size of a ConvTranspose that only spreads each input pixel over a k x k block, else None."""
    from onnx import helper

    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    kernel = list(attributes.get("kernel_shape", []))
    plain = (
        attributes.get("group", 1) == 1
        and len(kernel) == 2
        and kernel[0] == kernel[1]
        and list(attributes.get("strides", [])) == kernel
        and not any(attributes.get("pads", []))
        and not any(attributes.get("output_padding", []))
        and set(attributes.get("dilations", [1])) == {1}
        and attributes.get("auto_pad", b"NOTSET") in (b"NOTSET", b"VALID")
        and "output_shape" not in attributes
    )
    known = node.input[1] in initializers and (
        len(node.input) < 3 or not node.input[2] or node.input[2] in initializers
    )
    shape = shapes.get(node.input[0], [])
    return kernel[0] if plain and known and len(shape) == 4 and all(d > 0 for d in shape[1:]) else None


def tune_for_cpu(path: Path, widen: bool = True) -> list[str]:
    """Rewrites that only ONNX Runtime's CPU kernels gain from; the class maps stay what they were.
    Returns the Convs widened (none when `widen` is off: where MLAS has no such kernel, as on ARM64,
    widening only adds work, so calibrate times both)."""
    import onnx

    model = onnx.load(str(path))
    channels_last_tail(model)
    share_concat_scales(model)
    widened = widen_narrow_convs(model) if widen else []
    onnx.save(model, str(path))
    return widened


# MLAS's fast int8 channels-last convolution (MlasConvSym, x86 AVX2/AVX-512) packs filters 16 output
# channels at a time and takes no layer with fewer: those fall back to im2col and a generic GEMM.
CONV_SYM_MIN_FILTERS = 16
# Ops that treat every channel alike, through which zero channels stay zero.
CHANNELWISE = ("QuantizeLinear", "DequantizeLinear", "Relu", "MaxPool")
CONVOLUTIONS = ("Conv", "QLinearConv", "ConvTranspose")


def widen_narrow_convs(model: Any) -> list[str]:
    """Give each int8 Conv with fewer than 16 filters zero filters up to 16, and each layer that
    reads its output zero weights for the new channels. Returns the Convs widened.

    ONNX Runtime runs an int8 Conv with fewer than 16 filters (a U-Net's 8-channel full-resolution
    level) through im2col and a generic GEMM, slower there than its float kernels; at 16 filters it
    takes MLAS's channels-last int8 kernel. The zero filters output zero (the zero point), and the
    readers' zero weights ignore it, so every other channel is computed exactly as before. Only
    Convs whose output reaches nothing but convolutions (through Relu, MaxPool, Q/DQ, Concat) are
    widened: a graph output or an ArgMax must keep its channels. Measured on demo-medical: its
    full-resolution level goes from faster in float to faster in int8, 0.72x -> 0.66x FP32 latency.
    """
    return ConvWidener(model).run()


class ConvWidener:
    """One pass of widen_narrow_convs over a quantized graph (QDQ or QOperator)."""

    def __init__(self, model: Any):
        self.graph = model.graph
        self.initializers = {t.name: t for t in self.graph.initializer}
        self.writers, self.readers = producers(self.graph), consumers(self.graph)
        self.channels = {name: dims[1] for name, dims in static_shapes(model).items() if len(dims) > 1}
        self.outputs = {o.name for o in self.graph.output}

    def value(self, name: str) -> np.ndarray:
        from onnx import numpy_helper

        return numpy_helper.to_array(self.initializers[name])

    def store(self, name: str, array: np.ndarray) -> None:
        from onnx import numpy_helper

        self.initializers[name].CopyFrom(numpy_helper.from_array(array, name))

    def run(self) -> list[str]:
        narrow = [node.name for node in self.graph.node if self.is_narrow(node)]
        if narrow:
            self.widen(set(narrow))
            del self.graph.value_info[:]  # the channel counts recorded there are stale
        return narrow

    def is_narrow(self, node: Any) -> bool:
        found = self.parameters(node) if node.op_type in ("Conv", "QLinearConv") else None
        return (
            bool(found)
            and self.weight(node) is not None
            and self.value(found["weight"]).shape[0] < CONV_SYM_MIN_FILTERS
            and self.reaches_only_convolutions(node.output[0])
        )

    def parameters(self, node: Any) -> dict[str, str] | None:
        """Initializer names of an int8 conv's weights, their scale and zero point, its bias and the bias's scale."""
        if node.op_type == "QLinearConv":
            return {
                "weight": node.input[3],
                "weight_scale": node.input[4],
                "weight_zero": node.input[5],
                "bias": node.input[8] if len(node.input) > 8 else "",
            }
        dequantize = self.writers.get(node.input[1]) if node.op_type == "Conv" else None
        if (
            dequantize is None
            or dequantize.op_type != "DequantizeLinear"
            or dequantize.input[0] not in self.initializers
        ):
            return None
        found = {
            "weight": dequantize.input[0],
            "weight_scale": dequantize.input[1],
            "weight_zero": dequantize.input[2] if len(dequantize.input) > 2 else "",
        }
        bias = node.input[2] if len(node.input) > 2 else ""
        bias_dequantize = self.writers.get(bias)
        if bias_dequantize is not None and bias_dequantize.op_type == "DequantizeLinear":
            found.update(bias=bias_dequantize.input[0], bias_scale=bias_dequantize.input[1])
        else:
            found["bias"] = bias
        return found

    def weight(self, node: Any) -> str | None:
        """The initializer with a convolution's weights (under its QDQ DequantizeLinear), if nothing else reads it."""
        from onnx import helper

        if next((helper.get_attribute_value(a) for a in node.attribute if a.name == "group"), 1) != 1:
            return None
        found = self.parameters(node)
        name = found["weight"] if found else node.input[1]
        return name if name in self.initializers and len(self.readers.get(name, [])) == 1 else None

    def reaches_only_convolutions(self, tensor: str) -> bool:
        from onnx import helper

        seen, frontier = set(), [tensor]
        while frontier:
            current = frontier.pop()
            if current in seen:
                continue
            seen.add(current)
            if current in self.outputs:
                return False
            for node in (self.graph.node[index] for index in self.readers.get(current, [])):
                axis = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), None)
                per_tensor = all(self.value(name).size == 1 for name in node.input[1:3] if name in self.initializers)
                parts = node.input if node.op_type == "Concat" else node.input[2::3]
                if node.op_type in CHANNELWISE and node.input[0] == current and per_tensor:
                    frontier.append(node.output[0])
                elif (
                    node.op_type in ("Concat", "QLinearConcat")
                    and axis == 1
                    and all(self.channels.get(part, 0) > 0 for part in parts)
                ):
                    frontier.append(node.output[0])
                elif not (node.op_type in CONVOLUTIONS and node.input[0] == current and self.weight(node)):
                    return False
        return True

    def widen(self, narrow: set[str]) -> None:
        """In graph order: widen each narrow Conv's filters, carry each tensor's channel layout
        (where its original channels now sit, out of how many) through channel-wise ops and
        Concats, and spread each reader's weights to match."""
        layouts: dict[str, tuple[list[int], int]] = {}
        for node in self.graph.node:
            data = node.input[0] if node.input else ""
            if node.op_type in CONVOLUTIONS and (data in layouts or node.name in narrow):
                weight = self.weight(node)
                array = self.value(weight)
                if data in layouts:  # the input-channel axis: second, or first for ConvTranspose
                    array = spread(array, 0 if node.op_type == "ConvTranspose" else 1, *layouts[data])
                if node.name in narrow:
                    filters = array.shape[0]
                    layouts[node.output[0]] = (list(range(filters)), CONV_SYM_MIN_FILTERS)
                    array = spread(array, 0, *layouts[node.output[0]])
                    self.pad_filters(self.parameters(node), filters)
                self.store(weight, array)
            elif node.op_type in CHANNELWISE and data in layouts:
                layouts[node.output[0]] = layouts[data]
            elif node.op_type in ("Concat", "QLinearConcat") and any(name in layouts for name in node.input):
                positions, offset = [], 0
                for part in node.input if node.op_type == "Concat" else node.input[2::3]:
                    part_positions, part_total = layouts.get(
                        part, (list(range(self.channels[part])), self.channels[part])
                    )
                    positions += [offset + position for position in part_positions]
                    offset += part_total
                layouts[node.output[0]] = (positions, offset)

    def pad_filters(self, found: dict[str, str], filters: int) -> None:
        """Per-filter parameters of a widened Conv: bias 0, scale 1 and zero point 0 for the new filters.
        Scales and zero points of one value are per-tensor and stay as they are."""
        for key, fill in (("bias", 0), ("weight_scale", 1.0), ("weight_zero", 0), ("bias_scale", 1.0)):
            name = found.get(key, "")
            array = self.value(name) if name else None
            if array is not None and array.ndim == 1 and array.shape[0] == filters and (key == "bias" or filters > 1):
                self.store(name, np.concatenate([array, np.full(CONV_SYM_MIN_FILTERS - filters, fill, array.dtype)]))


def spread(array: np.ndarray, axis: int, positions: list[int], total: int) -> np.ndarray:
    """`array` with its `axis` widened to `total`, entry i moved to positions[i], zeros elsewhere."""
    shape = list(array.shape)
    shape[axis] = total
    widened = np.zeros(shape, array.dtype)
    index: list[Any] = [slice(None)] * array.ndim
    index[axis] = positions
    widened[tuple(index)] = array
    return widened


def share_concat_scales(model: Any) -> int:
    """Quantize Concat inputs as the Concat's output is quantized, where that changes no value.

    ONNX Runtime's QLinearConcat copies an input whose scale and zero point equal the output's and
    requantizes every other one through a lookup table, byte by byte, across the channels-last
    layout. TensorRT gives a Concat one scale for the same reason. Where the output's range holds
    the input's (to within one output step, so the input's other readers lose nothing but
    precision), an input takes the output's scale when their zero points match (a Relu folded into
    a zero point of 0 still clips), or the output's scale and zero point when it clips nothing
    (its zero point is not 0).
    Measured: demo-driving 0.75x -> 0.68x FP32 latency; demo-medical's upsampled inputs (zero
    point ~127 beside Relu'd skips) 0.74x -> 0.72x; agreement unchanged. Returns the inputs changed.
    """
    from onnx import numpy_helper

    initializers = {t.name: t for t in model.graph.initializer}
    writers, readers = producers(model.graph), consumers(model.graph)
    value = lambda name: numpy_helper.to_array(initializers[name])  # noqa: E731 - a one-line helper used just below
    scales: dict[str, float] = {}  # what each changed initializer now holds: one value per name
    zeros: dict[str, int] = {}

    def assign(name: str, target: float, changed: dict[str, Any]) -> None:
        initializers[name].CopyFrom(numpy_helper.from_array(np.asarray(target).astype(value(name).dtype), name))
        changed[name] = target

    for node in model.graph.node:
        pairs = concat_scales(model.graph, node, writers, readers)
        # Per-tensor parameters only (the CPU recipe's activations): a per-axis scale is left alone.
        if pairs is None or not all(name in initializers and value(name).size == 1 for pair in pairs for name in pair):
            continue
        (out_scale, out_zero), inputs = pairs[0], pairs[1:]
        target_scale, target_zero = float(value(out_scale)), value(out_zero).item()
        for scale, zero in inputs:
            zero_point = value(zero).item()
            if (
                scale == out_scale
                or scales.get(scale, target_scale) != target_scale
                or not covers(value(out_scale), value(out_zero), value(scale), value(zero))
            ):
                continue  # the input's other readers (a skip's pooling) must see what they saw
            if zero_point == target_zero:
                assign(scale, target_scale, scales)
            elif zero_point != 0 and zero != out_zero and zeros.get(zero, target_zero) == target_zero:
                assign(scale, target_scale, scales)
                assign(zero, target_zero, zeros)
    return len(scales)


def covers(scale: np.ndarray, zero: np.ndarray, inner_scale: np.ndarray, inner_zero: np.ndarray) -> bool:
    """Whether (scale, zero)'s real range holds (inner_scale, inner_zero)'s, to within one step of the first."""
    limits = np.iinfo(zero.dtype)
    low, high = (limits.min - float(zero)) * float(scale), (limits.max - float(zero)) * float(scale)
    inner_low, inner_high = (
        (limits.min - float(inner_zero)) * float(inner_scale),
        (limits.max - float(inner_zero)) * float(inner_scale),
    )
    return low - float(scale) <= inner_low and inner_high <= high + float(scale)


def concat_scales(
    graph: Any, node: Any, writers: dict[str, Any], readers: dict[str, list[int]]
) -> list[tuple[str, str]] | None:
    """(scale, zero point) names of a quantized concat: the output's first, then each input's.

    QOperator: QLinearConcat(y_scale, y_zero, x, x_scale, x_zero, ...). QDQ: DequantizeLinear on
    every input, one QuantizeLinear after; each input's Q and DQ must share their scale names, so
    that changing the value changes both."""
    if node.op_type == "QLinearConcat":
        return [(node.input[0], node.input[1])] + [
            (node.input[i + 1], node.input[i + 2]) for i in range(2, len(node.input), 3)
        ]
    if node.op_type != "Concat":
        return None
    after = [graph.node[index] for index in readers.get(node.output[0], [])]
    dequantizes = [writers.get(name) for name in node.input]
    if (
        len(after) != 1
        or after[0].op_type != "QuantizeLinear"
        or not all(d is not None and d.op_type == "DequantizeLinear" and len(d.input) == 3 for d in dequantizes)
    ):
        return None
    for dequantize in dequantizes:
        quantize = writers.get(dequantize.input[0])
        if (
            quantize is None
            or quantize.op_type != "QuantizeLinear"
            or list(quantize.input[1:3]) != list(dequantize.input[1:3])
        ):
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
    resize_mode = (
        next(
            (helper.get_attribute_value(a) for a in resize.attribute if a.name == "coordinate_transformation_mode"),
            b"half_pixel",
        )
        if resize is not None
        else None
    )
    if (
        resize is None
        or resize.op_type != "Resize"
        or attributes.get("axis", 0) != 1
        or attributes.get("keepdims", 1) != 0
        or len(readers.get(resize.output[0], [])) != 1
        or resize_mode == b"tf_crop_and_resize"
    ):
        return False
    order = numpy_helper.from_array(np.array([0, 2, 3, 1], np.int64), f"{resize.name}/nhwc_order")
    graph.initializer.append(order)
    added = [
        helper.make_node(
            "Transpose",
            [resize.input[0]],
            [f"{resize.input[0]}/nhwc"],
            perm=[0, 2, 3, 1],
            name=f"{resize.name}/to_nhwc",
        )
    ]
    inputs = list(resize.input)
    inputs[0] = added[0].output[0]
    for slot in (2, 3):  # scales and sizes, constant or computed: reorder them to NHWC
        if len(inputs) > slot and inputs[slot]:
            added.append(
                helper.make_node(
                    "Gather",
                    [inputs[slot], order.name],
                    [f"{inputs[slot]}/nhwc"],
                    axis=0,
                    name=f"{resize.name}/{slot}_nhwc",
                )
            )
            inputs[slot] = added[-1].output[0]
    del resize.input[:]
    resize.input.extend(inputs)
    for attribute in argmax.attribute:
        if attribute.name == "axis":
            attribute.i = 3
    position = list(graph.node).index(resize)
    for offset, node in enumerate(added):
        graph.node.insert(position + offset, node)
    forget_shapes_after(graph, resize.output[0])
    return True


def forget_shapes_after(graph: Any, tensor: str) -> None:
    """Drop the recorded shapes of `tensor` and of everything computed from it: they describe the NCHW graph, and
    ONNX Runtime warns at every session start where a recorded shape disagrees with the one it infers. The graph's
    outputs keep theirs (the argmax's class map is [N, H, W] either way)."""
    reached, _ = downstream(graph, [tensor])
    stale = {tensor} | {name for index in reached for name in graph.node[index].output}
    kept = [info for info in graph.value_info if info.name not in stale]
    del graph.value_info[:]
    graph.value_info.extend(kept)
