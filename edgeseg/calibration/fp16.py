"""FP32 -> FP16 ONNX with the graph's own I/O types kept (float32 or fused uint8).

Written here rather than with onnxconverter-common: its keep_io_types leaves the fused uint8
input's Cast producing float32 into an FP16 graph (ONNX Runtime refuses the model), and it is the
source of the known FP16 leak through Resize. The rules:
  - float32 initializers, Constant tensors and ConstantOfShape values become float16, except Resize's
    roi/scales, which the ONNX spec requires in float32 (a binary model's threshold channel is a
    ConstantOfShape beside float16 logits: left float32, the Concat that joins them does not load);
  - Cast(to=FLOAT) becomes Cast(to=FLOAT16) unless it converts integers (shape arithmetic, the
    argmax class ids), which stay exact in float32;
  - float32 graph inputs get a Cast to float16, float32 graph outputs a Cast back to float32;
  - nodes named in `keep_float` (an instance graph's box decoding, NMS and RoIAlign: ONNX Runtime's
    NonMaxSuppression and RoiAlign take float32 only, and box coordinates in float16 lose a quarter
    pixel past 256) compute in float32 with their own constants: a Cast sits on each edge between a
    kept node and a converted one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeseg.onnx_graph import consumers, producers

FLOAT, FLOAT16, INT32, INT64 = 1, 10, 6, 7  # onnx.TensorProto element types
CONSTANTS = ("Constant", "ConstantOfShape")  # nodes whose float32 `value` attribute is the tensor they write


def _resize_float_inputs(graph: Any) -> set[str]:
    return {name for node in graph.node if node.op_type == "Resize" for name in list(node.input)[1:3] if name}


def _element_types(model: Any) -> dict[str, int]:
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    types = {
        v.name: v.type.tensor_type.elem_type for v in list(graph.value_info) + list(graph.input) + list(graph.output)
    }
    types.update({t.name: t.data_type for t in graph.initializer})
    return types


def convert_to_fp16(model: Any, keep_float: frozenset[str] = frozenset()) -> Any:
    """A new ModelProto computing in float16 with the original input and output types, except in the nodes
    named in `keep_float`."""
    import onnx
    from onnx import numpy_helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    types = _element_types(model)
    float32_inputs = _resize_float_inputs(graph)
    readers = consumers(graph)

    def read_by_kept(tensor: str) -> bool:
        return any(graph.node[i].name in keep_float for i in readers.get(tensor, []))

    # Constants and initializers a kept node reads stay float32; a converted reader gets them through a Cast.
    kept = set(keep_float) | {n.name for n in graph.node if n.op_type in CONSTANTS and read_by_kept(n.output[0])}
    float32_initializers = {t.name for t in graph.initializer if read_by_kept(t.name)}

    for tensor in graph.initializer:
        if tensor.data_type == FLOAT and tensor.name not in float32_inputs | float32_initializers:
            with np.errstate(over="ignore"):  # a weight past float16's range: its reader is kept float or diverges
                half = numpy_helper.to_array(tensor).astype(np.float16)
            tensor.CopyFrom(numpy_helper.from_array(half, tensor.name))
    for node in graph.node:
        if node.name in kept:
            continue
        if node.op_type in CONSTANTS and node.output[0] not in float32_inputs:
            if node.op_type == "ConstantOfShape" and not any(a.name == "value" for a in node.attribute):
                # without a value it fills float32 zeros: say float16 zeros
                zeros = numpy_helper.from_array(np.zeros(1, np.float16))
                node.attribute.append(onnx.helper.make_attribute("value", zeros))
            for attribute in node.attribute:
                if attribute.name == "value" and attribute.t.data_type == FLOAT:
                    attribute.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attribute.t).astype(np.float16)))
        if node.op_type == "Cast" and types.get(node.input[0]) not in (INT32, INT64):
            for attribute in node.attribute:
                if attribute.name == "to" and attribute.i == FLOAT:
                    attribute.i = FLOAT16
    if kept:
        _cast_between(graph, kept, types, float32_initializers, float32_inputs)
    _cast_graph_io(graph, kept)
    del graph.value_info[:]  # stale float32 annotations; re-inferred below
    return onnx.shape_inference.infer_shapes(model)


def _cast_between(
    graph: Any, kept: set[str], types: dict[str, int], float32_initializers: set[str], resize_inputs: set[str]
) -> None:
    """A Cast on every float edge from a converted node to a kept one (to float32) and back (to float16)."""
    from onnx import helper

    writers = producers(graph)
    graph_inputs = {i.name for i in graph.input}

    def side(tensor: str) -> bool:  # True: float32 (a kept node, a float32 input or initializer)
        writer = writers.get(tensor)
        if writer is None:
            return tensor in graph_inputs or tensor in float32_initializers
        if writer.name in kept:
            return True
        return writer.op_type == "Cast" and types.get(writer.input[0]) in (INT32, INT64)  # exact float32 from integers

    casts: dict[tuple[str, int], str] = {}
    nodes = []
    for node in graph.node:
        want = FLOAT if node.name in kept else FLOAT16
        for index, tensor in enumerate(node.input):
            skip = types.get(tensor) != FLOAT or tensor in graph_inputs or tensor in resize_inputs  # float32 by spec
            if skip or side(tensor) == (want == FLOAT):
                continue
            key = (tensor, want)
            if key not in casts:
                casts[key] = f"{tensor}_as_{'fp32' if want == FLOAT else 'fp16'}"
                nodes.append(helper.make_node("Cast", [tensor], [casts[key]], to=want, name=casts[key]))
            node.input[index] = casts[key]
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)


def _cast_graph_io(graph: Any, kept: set[str]) -> None:
    """float32 graph inputs cast to float16 for converted readers; float16 results cast back to float32 outputs."""
    from onnx import helper

    renames: dict[str, str] = {}
    casts_in = []
    for graph_input in graph.input:
        if graph_input.type.tensor_type.elem_type == FLOAT:
            renames[graph_input.name] = f"{graph_input.name}_fp16"
            casts_in.append(
                helper.make_node(
                    "Cast",
                    [graph_input.name],
                    [renames[graph_input.name]],
                    to=FLOAT16,
                    name=f"{graph_input.name}_to_fp16",
                )
            )
    for node in graph.node:
        if node.name in kept:
            continue
        for index, name in enumerate(node.input):
            if name in renames:
                node.input[index] = renames[name]
    writers = producers(graph)
    casts_out = []
    for graph_output in graph.output:
        writer = writers.get(graph_output.name)
        if graph_output.type.tensor_type.elem_type == FLOAT and (writer is None or writer.name not in kept):
            internal = f"{graph_output.name}_fp16"
            for node in graph.node:
                node.output[:] = [internal if o == graph_output.name else o for o in node.output]
            casts_out.append(
                helper.make_node("Cast", [internal], [graph_output.name], to=FLOAT, name=f"{graph_output.name}_to_fp32")
            )
    nodes = casts_in + list(graph.node) + casts_out
    del graph.node[:]
    graph.node.extend(nodes)


def float16_leaks(model: Any) -> list[str]:
    """Graph outputs typed float16, or Resize roi/scales that are not float32: what must never happen."""
    types = _element_types(model)
    leaks = [f"output {o.name}" for o in model.graph.output if o.type.tensor_type.elem_type == FLOAT16]
    leaks += [f"Resize input {name}" for name in _resize_float_inputs(model.graph) if types.get(name, FLOAT) != FLOAT]
    return leaks


FLOAT16_MAX = 65504.0
# A tensor that reaches half of float16's range on the calibration frames stays float32: other frames go further.
OVERFLOW_HEADROOM = 0.5


def _past_float16(tensor: Any) -> bool:
    from onnx import numpy_helper

    values = numpy_helper.to_array(tensor)
    return bool(values.size) and float(np.abs(values).max()) > FLOAT16_MAX


def overflowing_nodes(model: Any, inputs: list[np.ndarray], threads: int | None = None) -> list[str]:
    """The nodes that write or read a float tensor whose FP32 values pass float16's range (with headroom) on
    `inputs` (batches for the graph's one input), in graph order: in float16 that tensor is inf, and so is all
    that follows. Its writer and its readers stay float32, so that it is never cast to float16."""
    import onnx
    import onnxruntime as ort

    from edgeseg.native_output import quiet_native_output

    types = _element_types(model)
    probe = onnx.ModelProto.FromString(model.SerializeToString())
    outputs = {o.name for o in probe.graph.output}
    watched = [t for node in probe.graph.node for t in node.output if types.get(t) == FLOAT and t not in outputs]
    probe.graph.output.extend(onnx.helper.make_tensor_value_info(t, FLOAT, None) for t in watched)
    watched += [o.name for o in model.graph.output if types.get(o.name) == FLOAT]
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    with quiet_native_output():
        session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    peak = dict.fromkeys(names, 0.0)
    input_name = session.get_inputs()[0].name
    for batch in inputs:
        with quiet_native_output():
            results = session.run(None, {input_name: batch})
        for name, value in zip(names, results):
            if value.size and np.issubdtype(value.dtype, np.floating):
                peak[name] = max(peak[name], float(np.abs(value).max()))
    hot = {name for name in watched if peak.get(name, 0.0) > FLOAT16_MAX * OVERFLOW_HEADROOM}
    hot |= {t.name for t in model.graph.initializer if t.data_type == FLOAT and _past_float16(t)}  # weights too
    return [node.name for node in model.graph.node if hot & (set(node.output) | set(node.input))]
