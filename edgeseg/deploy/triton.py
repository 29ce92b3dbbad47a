"""Triton Inference Server: a model repository (model dir, version dir, artifact, config.pbtxt) from a bundle."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from edgeseg.bundle import Bundle
from edgeseg.deploy.options import DeployOptions, choose_artifact, deploy_name
from edgeseg.errors import EdgesegError, require
from edgeseg.fileio import write_text_atomic

TRITON_TYPES = {
    "uint8": "TYPE_UINT8",
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
}
ONNX_TYPES = {1: "float32", 2: "uint8", 6: "int32", 7: "int64", 10: "float16"}  # onnx.TensorProto element types


@dataclass
class ConfigTensor:
    name: str
    dtype: str  # a TRITON_TYPES key
    dims: list[int]


def tensor_dims(bundle: Bundle, batched: bool) -> tuple[list[int], list[int]]:
    """Input and output dims; without the batch dimension when Triton batches (max_batch_size > 0)."""
    height, width = bundle.input.size
    classes = len(bundle.classes)
    input_dims = [height, width, 3] if bundle.input.layout == "NHWC" else [3, height, width]
    output_dims = [height, width] if bundle.output.kind == "class_map" else [classes, height, width]
    if not batched:
        batch = bundle.input.batch or 1
        return [batch, *input_dims], [batch, *output_dims]
    return input_dims, output_dims


def instance_outputs(bundle: Bundle) -> list[ConfigTensor]:
    """An instance graph's five outputs exactly as the graph declares them (fixed sizes: boxes [N,4], scores [N],
    classes [N], masks [N,28,28], count []). Triton's ONNX Runtime backend compares them with the model's own."""
    onnx = require("onnx", "calibrate")
    fp32 = bundle.select("onnx", "fp32", targets=("any",))
    graph = onnx.load(str(bundle.artifact_path(fp32)), load_external_data=False).graph
    specs = []
    for output in graph.output:
        tensor = output.type.tensor_type
        specs.append(ConfigTensor(output.name, ONNX_TYPES[tensor.elem_type], [d.dim_value for d in tensor.shape.dim]))
    return specs


def tensor_text(spec: ConfigTensor) -> list[str]:
    lines = ["  {", f'    name: "{spec.name}"', f"    data_type: {TRITON_TYPES[spec.dtype]}"]
    if spec.dims:
        lines.append(f"    dims: [ {', '.join(str(v) for v in spec.dims)} ]")
    else:  # Triton wants non-empty dims: a scalar is served as [1], reshaped to the model's []
        lines += ["    dims: [ 1 ]", "    reshape: { shape: [ ] }"]
    return lines + ["  }"]


def config_text(
    name: str,
    platform: str,
    inputs: list[ConfigTensor],
    outputs: list[ConfigTensor],
    max_batch: int,
    options: DeployOptions,
    kind: str,
) -> str:
    def section(title: str, specs: list[ConfigTensor]) -> list[str]:
        blocks = [tensor_text(spec) for spec in specs]
        for block in blocks[:-1]:  # entries are separated by commas: "}," closes all but the last
            block[-1] = "  },"
        return [f"{title} [", *(line for block in blocks for line in block), "]"]

    lines = [f'name: "{name}"', f'platform: "{platform}"', f"max_batch_size: {max_batch}"]
    lines += section("input", inputs) + section("output", outputs)
    if max_batch > 0:
        lines += ["dynamic_batching {", f"  max_queue_delay_microseconds: {options.queue_delay_us}", "}"]
    lines += ["instance_group [", "  {", f"    count: {options.instances}", f"    kind: {kind}", "  }", "]"]
    return "\n".join(lines) + "\n"


def write_triton(bundle: Bundle, output: Path, options: DeployOptions) -> list[Path]:
    artifact = choose_artifact(bundle, options.precision, prefer_engine=True)
    engine = artifact.kind == "engine"
    name = deploy_name(bundle, options.model_name)
    version = output / name / "1"
    version.mkdir(parents=True, exist_ok=True)
    target = version / ("model.plan" if engine else "model.onnx")
    shutil.copyfile(bundle.artifact_path(artifact), target)
    for companion in artifact.files:  # external weights sit beside the graph
        shutil.copyfile(bundle.inside(companion), version / Path(companion).name)
    batched = bundle.input.batch is None  # a dynamic batch dimension lets Triton batch requests
    input_dims, output_dims = tensor_dims(bundle, batched)
    inputs = [ConfigTensor(bundle.input.name, bundle.input.dtype, input_dims)]
    if bundle.is_instances:
        outputs = instance_outputs(bundle)
    else:
        outputs = [ConfigTensor(bundle.output.name, bundle.output.dtype, output_dims)]
    if engine and options.instance_kind == "cpu":
        raise EdgesegError("a TensorRT plan runs on a GPU only; drop --instance-kind cpu or deploy an ONNX precision")
    kind = f"KIND_{options.instance_kind.upper()}"
    config = output / name / "config.pbtxt"
    write_text_atomic(
        config,
        config_text(
            name,
            "tensorrt_plan" if engine else "onnxruntime_onnx",
            inputs,
            outputs,
            options.max_batch if batched else 0,
            options,
            kind,
        ),
    )
    write_text_atomic(output / name / "labels.txt", "".join(f"{c.name}\n" for c in bundle.classes))
    return [config, target]
