"""Walking an ONNX graph by tensor names (no onnx import needed: works on any ModelProto)."""

from __future__ import annotations

from collections import deque
from typing import Any


def downstream(graph: Any, tensors: list[str], stop: tuple[str, ...] = ()) -> tuple[list[int], list[int]]:
    """Indices of the nodes reachable from `tensors` without passing a node whose op is in `stop`,
    and the indices of the stop nodes met on the way. Indices, not node objects: protobuf nodes
    have no stable identity and unnamed nodes are common in imported graphs."""
    consumers: dict[str, list[int]] = {}
    for index, node in enumerate(graph.node):
        for name in node.input:
            consumers.setdefault(name, []).append(index)
    reached: list[int] = []
    stops: list[int] = []
    frontier = deque(tensors)
    while frontier:
        for index in consumers.get(frontier.popleft(), []):
            node = graph.node[index]
            if node.op_type in stop:
                if index not in stops:
                    stops.append(index)
            elif index not in reached:
                reached.append(index)
                frontier.extend(node.output)
    return reached, stops
