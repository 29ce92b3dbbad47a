"""What an ONNX file would make a loader read besides itself: its external-data locations, read from the
protobuf wire format directly, so the lean runtime can check a bundle without the onnx package and
before ONNX Runtime, onnx or TensorRT open a single external file.

Field numbers from onnx.proto: ModelProto.graph 7; GraphProto.node 1, initializer 5,
sparse_initializer 15; NodeProto.attribute 5; AttributeProto.t 5, g 6, tensors 10, graphs 11,
sparse_tensor 22, sparse_tensors 23; SparseTensorProto.values 1, indices 2; TensorProto.external_data 13;
StringStringEntryProto.key 1, value 2.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from pathlib import Path

# message kind -> {field number: kind of the embedded message}
NESTED = {
    "model": {7: "graph"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
    "tensor": {13: "entry"},
}


class MalformedONNX(ValueError):
    pass


def _varint(data: memoryview, position: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if position >= len(data) or shift > 63:
            raise MalformedONNX("truncated varint")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7


def _fields(data: memoryview) -> Iterator[tuple[int, memoryview | None]]:
    """(field number, payload of a length-delimited field, else None) for each field of one message."""
    position = 0
    while position < len(data):
        tag, position = _varint(data, position)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            _, position = _varint(data, position)
            yield number, None
        elif wire == 1:
            position += 8
            yield number, None
        elif wire == 5:
            position += 4
            yield number, None
        elif wire == 2:
            length, position = _varint(data, position)
            if position + length > len(data):
                raise MalformedONNX("a field runs past the end of the file")
            yield number, data[position : position + length]
            position += length
        else:
            raise MalformedONNX(f"wire type {wire}")


def _locations(data: memoryview, kind: str, depth: int = 0) -> Iterator[str]:
    if depth > 64:
        raise MalformedONNX("messages nested too deep")
    if kind == "entry":
        entry = {number: bytes(payload) for number, payload in _fields(data) if payload is not None}
        if entry.get(1) == b"location":
            yield entry.get(2, b"").decode("utf-8", errors="replace")
        return
    nested = NESTED[kind]
    for number, payload in _fields(data):
        if payload is not None and number in nested:
            yield from _locations(payload, nested[number], depth + 1)


def external_data_locations(path: Path) -> list[str]:
    """Every external-data location an ONNX file names (initializers, constants, subgraphs, sparse tensors)."""
    with open(path, "rb") as handle:
        if Path(path).stat().st_size == 0:
            return []
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            view = memoryview(mapped)
            try:
                return sorted(set(_locations(view, "model")))
            finally:
                view.release()
