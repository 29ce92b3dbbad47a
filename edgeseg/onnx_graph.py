"""Walking an ONNX graph by tensor names (only static_shapes imports onnx: the rest works on any ModelProto)."""

from __future__ import annotations

from collections import deque
from typing import Any


def producers(graph: Any) -> dict[str, Any]:
    """The node that writes each tensor."""
    return {name: node for node in graph.node for name in node.output}


def consumers(graph: Any) -> dict[str, list[int]]:
    """The indices of the nodes that read each tensor (indices: protobuf nodes have no stable identity)."""
    readers: dict[str, list[int]] = {}
    for index, node in enumerate(graph.node):
        for name in node.input:
            readers.setdefault(name, []).append(index)
    return readers


def downstream(graph: Any, tensors: list[str], stop: tuple[str, ...] = ()) -> tuple[list[int], list[int]]:
    """Indices of the nodes reachable from `tensors` without passing a node whose op is in `stop`,
    and the indices of the stop nodes met on the way. Indices, not node objects: protobuf nodes
    have no stable identity and unnamed nodes are common in imported graphs."""
    readers = consumers(graph)
    reached: list[int] = []
    stops: list[int] = []
    frontier = deque(tensors)
    while frontier:
        for index in readers.get(frontier.popleft(), []):
            node = graph.node[index]
            if node.op_type in stop:
                if index not in stops:
                    stops.append(index)
            elif index not in reached:
                reached.append(index)
                frontier.extend(node.output)
    return reached, stops


def static_shapes(model: Any) -> dict[str, list[int]]:
    """Each tensor's dims as far as ONNX shape inference knows them (0 where unknown)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    values = list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
    return {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}
