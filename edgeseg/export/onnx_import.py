"""Import an existing .onnx (exported elsewhere, possibly with external weights) into a bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.bundle import Bundle, InputContract, OutputContract
from edgeseg.classes import numbered_classes
from edgeseg.errors import EdgesegError, require
from edgeseg.export.artifacts import onnx_artifact, sample_frames, save_onnx, tool_versions, write_bundle
from edgeseg.export.options import MODEL_FILE, ExportOptions
from edgeseg.export.outputs import OutputShape, binary_record, model_classes, threshold_logit, verdict
from edgeseg.native_output import quiet_native_output
from edgeseg.progress import Progress
from edgeseg.runtime.tensors import frames_to_input, output_to_class_maps

_UINT8, _FLOAT = 2, 1  # onnx.TensorProto element types


def load_checked(path: Path) -> tuple[Any, bool]:
    """The model and whether its weights live in external data files; one line on any failure."""
    onnx = require("onnx", "export")
    from onnx.external_data_helper import uses_external_data

    if not path.is_file():
        raise EdgesegError(f"ONNX file '{path}' does not exist")
    try:
        header = onnx.load(str(path), load_external_data=False)
        external = any(uses_external_data(t) for t in header.graph.initializer)
        onnx.checker.check_model(str(path))
        model = onnx.load(str(path))
    except Exception as exc:
        raise EdgesegError(f"'{path}' is not a valid ONNX model: {str(exc).splitlines()[0]}") from None
    return model, external


def dims(value_info: Any) -> list[int | None]:
    return [d.dim_value if d.HasField("dim_value") else None for d in value_info.type.tensor_type.shape.dim]


def infer_contracts(model: Any, options: ExportOptions) -> tuple[InputContract, OutputContract, int | None]:
    """Read the I/O contract off the graph: uint8 NHWC in means fused preprocessing, integer out a class map."""
    graph_inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if len(graph_inputs) != 1 or not model.graph.output:
        raise EdgesegError(f"edgeseg imports graphs with one image input; this one has {len(graph_inputs)} inputs")
    graph_in, graph_out = graph_inputs[0], model.graph.output[0]
    in_dims, out_dims = dims(graph_in), dims(graph_out)
    in_type, out_type = graph_in.type.tensor_type.elem_type, graph_out.type.tensor_type.elem_type
    if len(in_dims) != 4:
        raise EdgesegError(
            f"input '{graph_in.name}' has rank {len(in_dims)}; expected an NCHW float or NHWC uint8 image batch"
        )
    fused = in_type == _UINT8
    height, width = (in_dims[1], in_dims[2]) if fused else (in_dims[2], in_dims[3])
    size = (height, width) if height and width else options.size
    if size is None:
        raise EdgesegError(
            f"input '{graph_in.name}' has a dynamic height/width: pass --size HxW for the size to run at"
        )
    input_contract = InputContract(
        name=graph_in.name,
        size=size,
        batch=in_dims[0],
        layout="NHWC" if fused else "NCHW",
        dtype="uint8" if fused else "float32",
        color_order="BGR" if fused else "RGB",
        mean=options.mean,
        std=options.std,
        fused_preprocess=fused,
        dynamic_size=not (height and width),
    )
    is_logits = out_type == _FLOAT and len(out_dims) == 4
    output_contract = OutputContract(
        name=graph_out.name,
        kind="logits" if is_logits else "class_map",
        dtype="float32" if is_logits else "uint8",
        fused_argmax=not is_logits,
    )
    return input_contract, output_contract, (out_dims[1] if is_logits else None)


def float_output(model: Any) -> OutputShape | None:
    """The verdict on the graph's (first) output where it holds logits of a fixed channel count, N x C x H x W float
    (C = 1: a binary model); None for a class map or a class dimension the graph leaves open. (A float N x H x W
    stays a class map, as before: in a graph, unlike a PyTorch probe, it may as well be an argmax cast to float.)"""
    graph_out = model.graph.output[0]
    shape, elem = dims(graph_out), graph_out.type.tensor_type.elem_type
    if elem != _FLOAT or len(shape) != 4 or not shape[1]:
        return None
    return verdict(shape[1], f"'{graph_out.name}', float {' x '.join(str(d or '?') for d in shape)}")


def add_binary_head(model: Any, threshold_logit: float) -> None:
    """What the PyTorch export's select_logits does to a binary model, done to its graph: the one channel z becomes
    two, [threshold, z] (Shape, ConstantOfShape, Concat), so the argmax every runtime takes is z > threshold, ties to
    background, and the bundle is the two-class one a one-channel PyTorch model exports as."""
    from onnx import TensorProto, helper

    graph = model.graph
    shape, name = dims(graph.output[0]), graph.output[0].name
    logits = f"{name}_two_class"
    threshold = helper.make_tensor("value", TensorProto.FLOAT, [1], [threshold_logit])
    shape_of, filled = f"{name}_edgeseg_shape", f"{name}_edgeseg_threshold"  # named: calibrate keys nodes by name
    nodes = [
        helper.make_node("Shape", [name], [shape_of], name=shape_of),
        helper.make_node("ConstantOfShape", [shape_of], [filled], name=filled, value=threshold),
        helper.make_node("Concat", [filled, name], [logits], name=logits, axis=1),
    ]
    graph.node.extend(nodes)
    two = [shape[0] or "batch", 2, shape[2] or "height", shape[3] or "width"]
    del graph.output[0]
    graph.output.insert(0, helper.make_tensor_value_info(logits, TensorProto.FLOAT, two))


def import_onnx(path: Path, output: Path, options: ExportOptions) -> Bundle:
    progress = Progress(3, "import", enabled=options.progress)
    model, external = load_checked(path)
    returned = float_output(model)
    binary = binary_record(path.name, returned, options.threshold) if returned else None
    if options.threshold is not None and returned is None:
        raise EdgesegError(f"--threshold is for binary models (one output channel); '{path}' outputs a class map or "
                           "logits of an open class count: drop --threshold")  # fmt: skip
    if binary:
        add_binary_head(model, threshold_logit({"binary": binary}))
    input_contract, output_contract, channels = infer_contracts(model, options)
    if returned is not None:
        classes = model_classes(str(path), returned, options.classes)
    else:
        classes = options.classes or (numbered_classes(channels) if channels else None)
    if classes is None:
        what = (
            "logits whose class dimension is not fixed in the graph"
            if output_contract.kind == "logits"
            else "a class map (one class id per pixel)"
        )
        raise EdgesegError(f"'{path}' outputs {what}, so its class count is unknown: pass --classes N or a names file")
    if channels and len(classes) != channels:
        raise EdgesegError(
            f"'{path}' outputs {channels} classes but {len(classes)} class names were given; fix --classes"
        )
    progress.advance(f"parsed and checked {path.name}")

    def fill(scratch: Path) -> Bundle:
        import onnxruntime

        files = save_onnx(model, scratch / MODEL_FILE, external=external)
        # Smoke-run the copy: the contract read off the graph must hold for real frames.
        with quiet_native_output():
            session = onnxruntime.InferenceSession(str(scratch / MODEL_FILE), providers=["CPUExecutionProvider"])
        batch = input_contract.batch or 1
        inputs = frames_to_input(list(sample_frames(input_contract.size, batch)), input_contract)
        try:
            maps = output_to_class_maps(session.run(None, {input_contract.name: inputs})[0], output_contract)
        except Exception as exc:
            raise EdgesegError(
                f"'{path}' does not run on ONNX Runtime with a {input_contract.size} frame: {str(exc).splitlines()[0]}"
            ) from None
        if maps.shape[-2:] != tuple(input_contract.size) or int(maps.max()) >= len(classes):
            raise EdgesegError(
                f"'{path}' output {maps.shape} is not a class map of the input size with {len(classes)} classes; "
                "check --classes and --size"
            )
        progress.advance("ran on ONNX Runtime")
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        info = {
            "name": path.name,
            "source": "onnx",
            "family": "imported",
            "parameters": int(sum(np.prod(t.dims) for t in model.graph.initializer)),
            "options": {},
            "weights": None,
        }
        if binary:
            info["binary"] = binary
        bundle = Bundle.create(scratch, info, classes, input_contract, output_contract)
        bundle.add_artifact(
            onnx_artifact(
                scratch / MODEL_FILE, files, opset, tool_versions("onnx", "onnxruntime"), imported_from=str(path)
            )
        )
        bundle.manifest["parity"] = {"reference": "none: imported ONNX, no PyTorch model to compare against"}
        return bundle

    return write_bundle(output, options.force, fill, progress)  # says "bundle written" once it is in place
