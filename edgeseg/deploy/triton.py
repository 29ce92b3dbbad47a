"""Triton Inference Server: a model repository (model dir, version dir, artifact, config.pbtxt) from a bundle."""

from __future__ import annotations

import shutil
from pathlib import Path

from edgeseg.bundle import Bundle, InputContract, OutputContract
from edgeseg.deploy.options import DeployOptions, choose_artifact
from edgeseg.errors import EdgesegError
from edgeseg.fileio import write_text_atomic

TRITON_TYPES = {"uint8": "TYPE_UINT8", "float32": "TYPE_FP32", "float16": "TYPE_FP16", "int64": "TYPE_INT64"}


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


def config_text(
    name: str,
    platform: str,
    contract_in: InputContract,
    contract_out: OutputContract,
    input_dims: list[int],
    output_dims: list[int],
    max_batch: int,
    options: DeployOptions,
    kind: str,
) -> str:
    def dims(values: list[int]) -> str:
        return ", ".join(str(v) for v in values)

    lines = [
        f'name: "{name}"',
        f'platform: "{platform}"',
        f"max_batch_size: {max_batch}",
        "input [",
        "  {",
        f'    name: "{contract_in.name}"',
        f"    data_type: {TRITON_TYPES[contract_in.dtype]}",
        f"    dims: [ {dims(input_dims)} ]",
        "  }",
        "]",
        "output [",
        "  {",
        f'    name: "{contract_out.name}"',
        f"    data_type: {TRITON_TYPES[contract_out.dtype]}",
        f"    dims: [ {dims(output_dims)} ]",
        "  }",
        "]",
    ]
    if max_batch > 0:
        lines += ["dynamic_batching {", f"  max_queue_delay_microseconds: {options.queue_delay_us}", "}"]
    lines += ["instance_group [", "  {", f"    count: {options.instances}", f"    kind: {kind}", "  }", "]"]
    return "\n".join(lines) + "\n"


def write_triton(bundle: Bundle, output: Path, options: DeployOptions) -> list[Path]:
    artifact = choose_artifact(bundle, options.precision, prefer_engine=True)
    engine = artifact.kind == "engine"
    name = options.model_name or bundle.manifest["model"]["name"].replace("-", "_")
    version = output / name / "1"
    version.mkdir(parents=True, exist_ok=True)
    target = version / ("model.plan" if engine else "model.onnx")
    shutil.copyfile(bundle.artifact_path(artifact), target)
    for companion in artifact.files:  # external weights sit beside the graph
        shutil.copyfile(bundle.inside(companion), version / Path(companion).name)
    batched = bundle.input.batch is None  # a dynamic batch dimension lets Triton batch requests
    input_dims, output_dims = tensor_dims(bundle, batched)
    if engine and options.instance_kind == "cpu":
        raise EdgesegError("a TensorRT plan runs on a GPU only; drop --instance-kind cpu or deploy an ONNX precision")
    kind = f"KIND_{options.instance_kind.upper()}"
    config = output / name / "config.pbtxt"
    write_text_atomic(
        config,
        config_text(
            name,
            "tensorrt_plan" if engine else "onnxruntime_onnx",
            bundle.input,
            bundle.output,
            input_dims,
            output_dims,
            options.max_batch if batched else 0,
            options,
            kind,
        ),
    )
    write_text_atomic(output / name / "labels.txt", "".join(f"{c.name}\n" for c in bundle.classes))
    return [config, target]
