"""Triton Inference Server: a model repository (model dir, version dir, artifact, config.pbtxt) from a bundle."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.bundle import Artifact, Bundle
from edgeseg.deploy.options import DeployOptions, choose_artifact, deploy_name
from edgeseg.deploy.plain_onnx import cpu_session
from edgeseg.errors import EdgesegError, require
from edgeseg.fileio import sha256_file, write_text_atomic

TRITON_TYPES = {
    "uint8": "TYPE_UINT8",
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
}
# precision_mode of ONNX Runtime's TensorRT accelerator per artifact precision; FP32 is its default.
ACCELERATOR_PRECISION = {"int8": "INT8", "fp16": "FP16"}
ORT_TYPES = {"tensor(float)": "float32", **{f"tensor({name})": name for name in ("uint8", "int32", "int64", "float16")}}


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


def onnx_tensors(path: Path, batched: bool) -> tuple[list[ConfigTensor], list[ConfigTensor]]:
    """Inputs and outputs exactly as ONNX Runtime reports them (a named dim is -1), which is what Triton's ONNX
    Runtime backend compares a config with, dim for dim; without the batch dim when Triton batches."""
    session = cpu_session(str(path))

    def specs(values: list[Any]) -> list[ConfigTensor]:
        result = []
        for value in values:
            dims = [d if isinstance(d, int) else -1 for d in value.shape]
            result.append(ConfigTensor(value.name, ORT_TYPES[value.type], dims[1:] if batched else dims))
        return result

    return specs(session.get_inputs()), specs(session.get_outputs())


def scalars_as_one_element(path: Path) -> None:
    """A model Triton does not batch cannot answer a scalar, not even through a reshape (tritonserver refuses to load
    it: "model output 'count' cannot have empty reshape for non-batching model as scalar tensors are not supported"):
    the served copy of the graph gives each scalar output (a detector's count) as [1]; the Triton backend gives it
    back as the scalar the bundle's graph answers."""
    onnx = require("onnx", "calibrate")
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    scalars = [o for o in graph.output if not o.type.tensor_type.shape.dim]
    axes = f"{scalars[0].name}_unsqueeze_axes"
    graph.initializer.append(numpy_helper.from_array(np.array([0], np.int64), axes))
    for output in scalars:
        inner = f"{output.name}_scalar"
        for node in graph.node:
            node.output[:] = [inner if name == output.name else name for name in node.output]
            node.input[:] = [inner if name == output.name else name for name in node.input]
        graph.node.append(helper.make_node("Unsqueeze", [inner, axes], [output.name], f"{output.name}_as_one_element"))
        output.type.tensor_type.shape.dim.add().dim_value = 1
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def tensor_text(spec: ConfigTensor) -> list[str]:
    lines = ["  {", f'    name: "{spec.name}"', f"    data_type: {TRITON_TYPES[spec.dtype]}"]
    # A scalar output of a batched model is one value per frame: dims [1], reshaped to the model's [batch]. (A model
    # Triton does not batch answers its scalars as [1]: scalars_as_one_element.)
    if spec.dims:
        lines.append(f"    dims: [ {', '.join(str(v) for v in spec.dims)} ]")
    else:
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
    precision: str = "fp32",
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
    lines += warmup_text(inputs)
    if options.ort_tensorrt and platform == "onnxruntime_onnx":
        # ONNX Runtime's TensorRT execution provider inside Triton's ONNX Runtime backend (its README, "ONNX Runtime
        # with TensorRT optimization"). precision_mode defaults to FP32, which leaves TensorRT's INT8 off: a Q/DQ
        # graph then fails to build ("int8 is not configured in the builder"); INT8 sets trt_int8_enable, FP16
        # trt_fp16_enable (onnxruntime_backend src/onnxruntime.cc).
        mode = ACCELERATOR_PRECISION.get(precision)
        parameters = f' parameters {{ key: "precision_mode" value: "{mode}" }}' if mode else ""
        lines += [
            "optimization {",
            "  execution_accelerators {",
            f'    gpu_execution_accelerator: [ {{ name: "tensorrt"{parameters} }} ]',
            "  }",
            "}",
        ]
    return "\n".join(lines) + "\n"


def warmup_text(inputs: list[ConfigTensor]) -> list[str]:
    """One request of zeros before the model is marked ready, so the first real frame does not pay for the
    backend's lazy initialisation (for TensorRT plans and ORT's TensorRT provider, engine building)."""
    lines = ["model_warmup [", "  {", '    name: "zeros"', "    batch_size: 1"]  # 1 for a model without batching too
    for spec in inputs:
        dims = ", ".join(str(max(d, 1)) for d in spec.dims) or "1"
        lines += [
            "    inputs {",
            f'      key: "{spec.name}"',
            f"      value: {{ data_type: {TRITON_TYPES[spec.dtype]} dims: [ {dims} ] zero_data: true }}",
            "    }",
        ]
    return lines + ["  }", "]"]


def write_triton(bundle: Bundle, output: Path, options: DeployOptions) -> list[Path]:
    artifact = choose_artifact(bundle, options.precision, prefer_engine=True)
    engine = artifact.kind == "engine"
    name = deploy_name(bundle, options.model_name)
    version = output / name / "1"
    version.mkdir(parents=True, exist_ok=True)
    target = version / ("model.plan" if engine else "model.onnx")
    shutil.copyfile(bundle.artifact_path(artifact), target)
    if artifact.sha256 and sha256_file(target) != artifact.sha256:
        # A plan cannot be opened without TensorRT; its bytes are what can be checked before the repository is
        # in place: the copy is the artifact the manifest lists (a changed or truncated file is not served).
        raise EdgesegError(
            f"{bundle.artifact_path(artifact)} is not the file the manifest lists (its sha256 differs); export or "
            "build it again"
        )
    for companion in artifact.files:  # external weights sit beside the graph
        shutil.copyfile(bundle.inside(companion), version / Path(companion).name)
    batched = bundle.input.batch is None  # a dynamic batch dimension lets Triton batch requests
    if not engine and not batched and any(not output.shape for output in cpu_session(str(target)).get_outputs()):
        scalars_as_one_element(target)
    if engine:
        input_dims, output_dims = tensor_dims(bundle, batched)
        inputs = [ConfigTensor(bundle.input.name, bundle.input.dtype, input_dims)]
        outputs = [ConfigTensor(bundle.output.name, bundle.output.dtype, output_dims)]
    else:
        inputs, outputs = onnx_tensors(target, batched)
    if engine and options.instance_kind == "cpu":
        raise EdgesegError("a TensorRT plan runs on a GPU only; drop --instance-kind cpu or deploy an ONNX precision")
    max_batch = options.max_batch if batched else 0
    if engine and batched:
        max_batch = plan_max_batch(bundle, artifact, max_batch)
    kind = f"KIND_{options.instance_kind.upper()}"
    config = output / name / "config.pbtxt"
    write_text_atomic(
        config,
        config_text(
            name,
            "tensorrt_plan" if engine else "onnxruntime_onnx",
            inputs,
            outputs,
            max_batch,
            options,
            kind,
            artifact.precision,
        ),
    )
    labels = output / name / "labels.txt"
    write_text_atomic(labels, "".join(f"{c.name}\n" for c in bundle.classes))
    return [config, target, labels]


def plan_max_batch(bundle: Bundle, engine: Artifact, asked: int) -> int:
    """max_batch_size for a plan: at most its optimisation profile's largest batch, which Triton's TensorRT backend
    reads from the engine and refuses a config above ("configuration specified max-batch 8 but TensorRT engine only
    supports max-batch 1", tensorrt_backend src/model_state.cc). The profile is in the manifest (build's --batch;
    without it build makes 1,1,1)."""
    source = engine.extra.get("source", "model.onnx")
    rebuild = f"edgeseg build {bundle.root} --precision {engine.precision} --batch 1,{asked},{asked}"
    build_options = engine.extra.get("build_options")
    if not isinstance(build_options, dict):
        raise EdgesegError(
            f"{engine.path}: the manifest does not say which batches its profile takes, so Triton's max_batch_size "
            f"cannot be set within it; rebuild it: {rebuild}"
        )
    profile = build_options.get("batch") or (1, 1, 1)
    largest = int(profile[2])
    if asked > largest:
        print(
            f"edgeseg: note: {engine.path} (from {source}) takes batches up to {largest}: max_batch_size {largest}, "
            f"not {asked}; for batches of {asked}, rebuild it: {rebuild}",
            file=sys.stderr,
        )
        return largest
    return asked
