"""The plain-IO graph DeepStream's nvinfer takes: the bundle's graph without its fused uint8 head and argmax tail."""

from __future__ import annotations

from typing import Any

from edgeseg.errors import EdgesegError
from edgeseg.native_output import quiet_native_output
from edgeseg.onnx_graph import downstream


def cpu_session(model: str | bytes) -> Any:
    """An ONNX Runtime CPU session for a graph deploy writes or checks (a path or serialized bytes), its C++
    logger's warnings kept off the terminal (--verbose shows them)."""
    import onnxruntime as ort

    with quiet_native_output():
        return ort.InferenceSession(model, providers=["CPUExecutionProvider"])


def plain_io_model(model: Any) -> Any:
    """The graph without its fused ends: float NCHW RGB normalised input, float logits output.

    DeepStream's nvinfer normalises frames itself (net-scale-factor, offsets) and takes the argmax
    of per-class outputs itself (network-type=2), so the uint8 Cast/flip/normalise head and the
    ArgMax tail come off; the layers between are untouched (Q/DQ included).
    """
    import onnx
    from onnx import helper

    graph = model.graph
    inputs = [i.name for i in graph.input]
    head, first_layers = downstream(graph, inputs, stop=("Conv", "QuantizeLinear"))
    if not first_layers:
        raise EdgesegError(
            "cannot find where the network starts in this graph; export with --no-fuse-preprocess for DeepStream"
        )
    # The first layer's input coming from the head (or the graph input) is the normalised tensor.
    head_outputs = {o for index in head for o in graph.node[index].output} | set(inputs)
    normalised = next(name for name in graph.node[first_layers[0]].input if name in head_outputs)
    # The head is what computes the normalised tensor; shape computations that read the input (a dynamic
    # batch's Resize sizes) are reached from it too, but belong to the network.
    head = ancestors(graph, normalised, set(head))
    argmax = [index for index, node in enumerate(graph.node) if node.op_type == "ArgMax"]
    tail, _ = downstream(graph, [o for index in argmax for o in graph.node[index].output])
    drop = set(head) | set(argmax) | set(tail)
    result = onnx.ModelProto.FromString(model.SerializeToString())
    kept = [node for index, node in enumerate(result.graph.node) if index not in drop]
    dropped = ({o for index in head for o in graph.node[index].output} | set(inputs)) - {normalised}
    readers = sorted({node.name or node.op_type for node in kept if dropped & set(node.input)})
    if readers:
        raise EdgesegError(
            f"{', '.join(readers)} read the uint8 frame before it is normalised, so the fused head cannot come off; "
            "export with --no-fuse-preprocess for DeepStream"
        )
    height_width = [d for d in graph.input[0].type.tensor_type.shape.dim]
    fused_input = graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    if fused_input:
        batch, height, width = height_width[0], height_width[1], height_width[2]
        dims = [batch.dim_value or batch.dim_param or "batch", 3, height.dim_value, width.dim_value]
        new_input = helper.make_tensor_value_info(normalised, onnx.TensorProto.FLOAT, dims)
        del result.graph.input[:]
        result.graph.input.append(new_input)
    if argmax:
        logits = graph.node[argmax[0]].input[0]
        del result.graph.output[:]
        result.graph.output.append(logits_output(model, logits))
    del result.graph.node[:]
    result.graph.node.extend(kept)
    # The head's constants go with it: ONNX Runtime warns of each initializer no node reads.
    used = {name for node in kept for name in node.input}
    unused = [tensor for tensor in result.graph.initializer if tensor.name not in used]
    for tensor in unused:
        result.graph.initializer.remove(tensor)
    del result.graph.value_info[:]
    result = onnx.shape_inference.infer_shapes(result)
    onnx.checker.check_model(result)
    return result


def ancestors(graph: Any, tensor: str, among: set[int]) -> list[int]:
    """Indices of the nodes in `among` that `tensor` is computed from."""
    producer = {output: index for index in among for output in graph.node[index].output}
    found: set[int] = set()
    frontier = [tensor]
    while frontier:
        index = producer.get(frontier.pop())
        if index is not None and index not in found:
            found.add(index)
            frontier.extend(graph.node[index].input)
    return sorted(found)


def logits_output(model: Any, logits: str) -> Any:
    """The logits as a declared float output [batch, classes, H, W]: batch, H and W as the class map output declares
    them, the class count as shape inference finds it. An output left without a type fails onnx.checker, and
    shape inference cannot always type it: a Resize whose sizes are computed from a dynamic batch is one."""
    import onnx
    from onnx import helper

    def dim(value: Any, default: str) -> int | str:
        return value.dim_value or value.dim_param or default

    batch, height, width = (dim(d, n) for d, n in zip(model.graph.output[0].type.tensor_type.shape.dim,
                                                      ("batch", "height", "width")))  # fmt: skip
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    known = {v.name: v for v in (*inferred.graph.value_info, *inferred.graph.output)}
    dims = known[logits].type.tensor_type.shape.dim if logits in known else []
    classes = dim(dims[1], "classes") if len(dims) == 4 else "classes"
    return helper.make_tensor_value_info(logits, onnx.TensorProto.FLOAT, [batch, classes, height, width])
