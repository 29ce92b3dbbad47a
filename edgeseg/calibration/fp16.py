"""FP32 -> FP16 ONNX with the graph's own I/O types kept (float32 or fused uint8).

Written here rather than with onnxconverter-common: its keep_io_types leaves the fused uint8
input's Cast producing float32 into an FP16 graph (ONNX Runtime refuses the model), and it is the
source of the known FP16 leak through Resize. The rules:
  - float32 initializers and Constant tensors become float16, except Resize's roi/scales, which
    the ONNX spec requires in float32;
  - Cast(to=FLOAT) becomes Cast(to=FLOAT16) unless it converts integers (shape arithmetic, the
    argmax class ids), which stay exact in float32;
  - float32 graph inputs get a Cast to float16, float32 graph outputs a Cast back to float32.
"""

from __future__ import annotations

from typing import Any

import numpy as np

FLOAT, FLOAT16, INT32, INT64 = 1, 10, 6, 7  # onnx.TensorProto element types


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


def convert_to_fp16(model: Any) -> Any:
    """A new ModelProto computing in float16 with the original input and output types."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    types = _element_types(model)
    keep_float = _resize_float_inputs(graph)

    for tensor in graph.initializer:
        if tensor.data_type == FLOAT and tensor.name not in keep_float:
            tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float16), tensor.name))
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] not in keep_float:
            for attribute in node.attribute:
                if attribute.name == "value" and attribute.t.data_type == FLOAT:
                    attribute.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attribute.t).astype(np.float16)))
        if node.op_type == "Cast" and types.get(node.input[0]) not in (INT32, INT64):
            for attribute in node.attribute:
                if attribute.name == "to" and attribute.i == FLOAT:
                    attribute.i = FLOAT16

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
        for index, name in enumerate(node.input):
            if name in renames:
                node.input[index] = renames[name]
    casts_out = []
    for graph_output in graph.output:
        if graph_output.type.tensor_type.elem_type == FLOAT:
            internal = f"{graph_output.name}_fp16"
            for node in graph.node:
                node.output[:] = [internal if o == graph_output.name else o for o in node.output]
            casts_out.append(
                helper.make_node("Cast", [internal], [graph_output.name], to=FLOAT, name=f"{graph_output.name}_to_fp32")
            )
    nodes = casts_in + list(graph.node) + casts_out
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]  # stale float32 annotations; re-inferred below
    return onnx.shape_inference.infer_shapes(model)


def float16_leaks(model: Any) -> list[str]:
    """Graph outputs typed float16, or Resize roi/scales that are not float32: what must never happen."""
    types = _element_types(model)
    leaks = [f"output {o.name}" for o in model.graph.output if o.type.tensor_type.elem_type == FLOAT16]
    leaks += [f"Resize input {name}" for name in _resize_float_inputs(model.graph) if types.get(name, FLOAT) != FLOAT]
    return leaks
