"""TensorRT's INT8 calibration cache, written from the scales edgeseg's calibration chose.

The text that IInt8EntropyCalibrator2 writes and reads back: a header line naming the TensorRT version and
the calibrator, then one "tensor_name: scale" line per tensor, the scale a float32 in hexadecimal (its
IEEE-754 bits), the tensor's dynamic range being +-127*scale. The scales are those of the bundle's Q/DQ
graph (model.int8-tensorrt.onnx): symmetric int8, zero point 0, so its QuantizeLinear scale is exactly
TensorRT's. TensorRT 11 has no calibrator: there a cache means nothing.

The header's number is NV_TENSORRT_VERSION of the TensorRT that reads it (NvInferVersion.h): major*1000 +
minor*100 + patch on 8.x ("TRT-8201", "TRT-8502", "TRT-8602"), major*10000 + minor*100 + patch from 10.0 on
("TRT-100300" for 10.3.0, "TRT-101303" for 10.13.3; DeepStream 7.1's samples begin "TRT-100300-"). A cache
whose header is another version's is ignored (NVIDIA/TensorRT#1378), and nvinfer's INT8 build then has no
scales: so there is one cache per JetPack release. tests/test_deploy.py reads the number from NVIDIA's real
bindings (the version their createInferBuilder passes to libnvinfer).
"""

from __future__ import annotations

import struct
from typing import Any

from edgeseg.errors import EdgesegError

# The TensorRT release each JetPack ships, one calibration cache each (JETSON.md §6): JetPack 4.6 TensorRT 8.2.1,
# 5.1 8.5.2, 6.0 8.6.2, 6.1/6.2 10.3.0, 7.0 10.13.3. The key names the cache file (calibration_jp{key}.cache); "6"
# is 6.1/6.2, as it was before 6.0 got its own.
TENSORRT_OF_JETPACK = {"4": (8, 2, 1), "5": (8, 5, 2), "6.0": (8, 6, 2), "6": (10, 3, 0), "7": (10, 13, 3)}
# The release each key stands for, in the words the configs' notes use.
JETPACK_RELEASE = {"4": "4.6", "5": "5.1", "6.0": "6.0", "6": "6.1/6.2", "7": "7.0"}
# What --jetpack takes: each key, and the releases the keys stand for.
JETPACK_ALIASES = {"4.6": "4", "5.1": "5", "6.1": "6", "6.2": "6", "7.0": "7"}
JETPACK_CHOICES = (*TENSORRT_OF_JETPACK, *JETPACK_ALIASES)


def jetpack_key(value: str) -> str:
    """The cache key of a --jetpack value ("6.2" -> "6"); one line for one no JetPack has."""
    key = JETPACK_ALIASES.get(value, value)
    if key not in TENSORRT_OF_JETPACK:
        raise EdgesegError(f"--jetpack {value}: choose one of {', '.join(JETPACK_CHOICES)}")
    return key


def tensorrt_version_number(version: tuple[int, int, int]) -> int:
    """NV_TENSORRT_VERSION: major*1000 + minor*100 + patch before 10.0, major*10000 + minor*100 + patch from 10.0."""
    major, minor, patch = version
    return major * (10000 if major >= 10 else 1000) + minor * 100 + patch


def header(version: tuple[int, int, int]) -> str:
    return f"TRT-{tensorrt_version_number(version)}-EntropyCalibration2"


def cache_name(key: str) -> str:
    return f"calibration_jp{key}.cache"


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
