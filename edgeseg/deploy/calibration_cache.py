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

The cache names every activation the FP32 graph computes that a scale is known for, not only the Q/DQ graph's
quantized inputs: a tensor without a scale makes TensorRT run its layer in float (nvinfer sets kINT8 alone).
Scales come from the Q/DQ graph, then from the calibration ranges ONNX Runtime collected (bundle/.cache), then are
carried through operators that keep the range, as NVIDIA's qdq-translator does (Deep-Learning-Accelerator-SW
tools/qdq-translator, QATModelParser.infer_unchanged_scales): forward from input to output, then backward.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
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


# Operators whose output lies within their first input's range, both ways (qdq-translator's default set, with
# Resize and the shape operators that only move values).
RANGE_KEEPING = {
    "Relu", "MaxPool", "GlobalMaxPool", "Pad", "Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity",
    "Resize", "Upsample", "Slice", "Split", "DepthToSpace", "SpaceToDepth",
}  # fmt: skip
# Averages lie within their input's range, so the input's scale bounds the output; not the other way.
AVERAGING = {"AveragePool", "GlobalAveragePool", "ReduceMean"}


def keeps_range(node: Any) -> bool:
    """Nearest and linear Resize interpolate within the input's range; cubic can overshoot it."""
    if node.op_type in ("Resize", "Upsample"):
        mode = next((a.s.decode() for a in node.attribute if a.name == "mode"), "nearest")
        return mode in ("nearest", "linear", "bilinear")
    return node.op_type in RANGE_KEEPING


def propagate_scales(model: Any, scales: dict[str, float]) -> dict[str, float]:
    """The scales carried to the tensors next to known ones through range-keeping operators, forward then backward,
    until nothing changes: qdq-translator's infer_unchanged_scales, with Concat's output the largest of its inputs'
    scales (its range is their union) once every input has one."""
    result = dict(scales)
    changed = True
    while changed:
        changed = False
        for node in model.graph.node:  # forward, in the graph's (topological) order
            data = node.input[0] if node.input else ""
            if node.op_type == "Concat":
                known = [result.get(name) for name in node.input]
                if node.output[0] not in result and known and None not in known:
                    result[node.output[0]] = max(known)  # type: ignore[type-var]
                    changed = True
            elif (keeps_range(node) or node.op_type in AVERAGING) and data in result:
                for output in node.output:
                    if output and output not in result:
                        result[output] = result[data]
                        changed = True
        for node in reversed(model.graph.node):  # backward
            if node.op_type == "Concat" and node.output[0] in result:
                for name in node.input:
                    if name not in result:
                        result[name] = result[node.output[0]]
                        changed = True
            elif keeps_range(node) and node.input and node.input[0] not in result:
                known = [result[o] for o in node.output if o in result]
                if known:
                    result[node.input[0]] = max(known)
                    changed = True
    return result


def calibration_ranges(bundle_root: Path, method: str | None = None) -> dict[str, float]:
    """Scales (amax / 127) from the calibration ranges edgeseg's calibrate left in the bundle's .cache for the
    TensorRT form, where they are still there; {} where not (a bundle copied without its .cache)."""
    found: dict[str, float] = {}
    pattern = f"ranges-*-{method}-tensorrt-*.json" if method else "ranges-*-tensorrt-*.json"
    files = sorted((bundle_root / ".cache").glob(pattern), key=lambda p: p.stat().st_mtime)
    if not files:
        return found
    try:
        data = json.loads(files[-1].read_text())
    except (OSError, ValueError):
        return found
    for name, value in tensor_ranges(data).items():
        amax = max(abs(float(value[0])), abs(float(value[1])))
        if amax > 0:
            found[name] = amax / 127.0
    return found


def tensor_ranges(data: Any) -> dict[str, tuple[float, float]]:
    """name -> (lowest, highest) from ONNX Runtime's saved TensorsData (save_tensors_data's JSON: each tensor's
    TensorData with the range its calibration method chose as lowest/highest)."""
    table = data.get("data", {}) if isinstance(data, dict) else {}
    ranges = {}
    for name, entry in table.items():
        try:
            ranges[name] = (float(entry["lowest"]), float(entry["highest"]))
        except (KeyError, TypeError, ValueError):
            continue
    return ranges


def graph_tensors(model: Any) -> set[str]:
    """The activations a graph computes: its inputs and every node output."""
    return {i.name for i in model.graph.input} | {o for node in model.graph.node for o in node.output if o}


def activations_4d(model: Any, before: str | None = None) -> list[str]:
    """The 4-D activations of a graph (inputs and node outputs), the tensor `before` and what follows it left out."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    rank = {v.name: len(v.type.tensor_type.shape.dim)
            for v in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output)}  # fmt: skip
    names = [i.name for i in model.graph.input] + [o for node in model.graph.node for o in node.output if o]
    return [name for name in names if rank.get(name) == 4 and name != before]


def cache_scales(model: Any, known: dict[str, float], ranges: dict[str, float], output: str) -> dict[str, float]:
    """The scales of the cache for the graph nvinfer builds: the Q/DQ graph's where it has one, the calibration
    ranges' elsewhere, carried through range-keeping operators to the rest; never for `output` (nvinfer's
    Softmax, left in float). Every name is one of the graph's tensors."""
    tensors = graph_tensors(model)
    missing = sorted(set(known) - tensors)
    if missing:
        raise EdgesegError(
            f"the INT8 scales name {len(missing)} tensor(s) the DeepStream graph does not have ({missing[0]}, ...); "
            "calibrate the bundle again"
        )
    scales = dict(known)
    for name, scale in ranges.items():
        if name in tensors and name not in scales:
            scales[name] = scale
    scales = propagate_scales(model, scales)
    constants = {t.name for t in model.graph.initializer}
    return {name: scale for name, scale in scales.items() if name in tensors and name not in constants
            and name != output}  # fmt: skip
