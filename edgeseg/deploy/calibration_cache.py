"""TensorRT's INT8 calibration cache, written from the scales edgeseg's calibration chose.

The text that IInt8EntropyCalibrator2 writes and reads back: a header line naming the TensorRT
version and the calibrator ("TRT-8502-EntropyCalibration2": major*1000 + minor*100 + patch), then
one "tensor_name: scale" line per tensor, the scale a float32 in hexadecimal (its IEEE-754 bits),
the tensor's dynamic range being +-127*scale. TensorRT rejects a cache whose header names another
version, so there is one cache per JetPack. The scales are those of the bundle's Q/DQ graph
(model.int8-tensorrt.onnx): symmetric int8, zero point 0, so its QuantizeLinear scale is exactly
TensorRT's. TensorRT 11 has no calibrator: there a cache means nothing.
"""

from __future__ import annotations

import struct
from typing import Any

from edgeseg.errors import EdgesegError

# The TensorRT release each JetPack ships: JetPack 5.1 TensorRT 8.5.2, JetPack 6.1/6.2 10.3.0, JetPack 7.0 10.13.3.
TENSORRT_OF_JETPACK = {"5": (8, 5, 2), "6": (10, 3, 0), "7": (10, 13, 3)}


def header(version: tuple[int, int, int]) -> str:
    major, minor, patch = version
    return f"TRT-{major * 1000 + minor * 100 + patch}-EntropyCalibration2"


def activation_scales(qdq_model: Any) -> dict[str, float]:
    """Each quantized activation's scale in a Q/DQ graph, by tensor name (weights, which are initializers, apart)."""
    from onnx import numpy_helper

    initializers = {t.name: t for t in qdq_model.graph.initializer}
    constants = {n.output[0]: n for n in qdq_model.graph.node if n.op_type == "Constant"}
    scales: dict[str, float] = {}
    for node in qdq_model.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in initializers:
            continue
        scale = value_of(node.input[1], initializers, constants, numpy_helper)
        zero = value_of(node.input[2], initializers, constants, numpy_helper) if len(node.input) > 2 else 0
        if scale.size != 1 or float(abs(zero).max() if hasattr(zero, "max") else zero) != 0:
            raise EdgesegError(
                f"tensor {node.input[0]} is not quantized symmetrically per tensor; TensorRT's calibration cache "
                "holds one symmetric scale per tensor"
            )
        scales[node.input[0]] = float(scale.reshape(-1)[0])
    return scales


def value_of(name: str, initializers: dict[str, Any], constants: dict[str, Any], numpy_helper: Any) -> Any:
    if name in initializers:
        return numpy_helper.to_array(initializers[name])
    if name in constants:
        return numpy_helper.to_array(constants[name].attribute[0].t)
    raise EdgesegError(f"the Q/DQ graph computes the scale {name} at run time; expected a constant")


def cache_text(scales: dict[str, float], version: tuple[int, int, int]) -> str:
    lines = [header(version)]
    lines += [f"{name}: {struct.unpack('>I', struct.pack('>f', scale))[0]:08x}" for name, scale in scales.items()]
    return "\n".join(lines) + "\n"


def parse_cache(text: str) -> tuple[str, dict[str, float]]:
    """The header and the scales of a calibration cache, as TensorRT reads them back."""
    first, *rest = text.strip().splitlines()
    scales = {}
    for line in rest:
        name, _, bits = line.rpartition(": ")
        scales[name] = struct.unpack(">f", struct.pack(">I", int(bits, 16)))[0]
    return first, scales
