"""Export a PyTorch model (zoo name or module:function) into a bundle, with a parity check."""

from __future__ import annotations

import importlib
import math
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

from edgeseg.bundle import Bundle, ClassInfo, InputContract, OutputContract
from edgeseg.errors import EdgesegError, require
from edgeseg.export.artifacts import (
    materialize_shared_weights,
    record_torch_export,
    sample_frames,
    save_onnx,
    write_bundle,
)
from edgeseg.export.options import DEFAULT_SIZE, MODEL_FILE, ExportOptions
from edgeseg.export.outputs import binary_record, model_classes, probe_output, threshold_logit
from edgeseg.export.parity import measure_parity
from edgeseg.export.wrapper import SegmentationGraph
from edgeseg.fileio import sha256_file
from edgeseg.native_output import quiet_native_output
from edgeseg.progress import Progress
from edgeseg.runtime.tensors import frames_to_input


def read_weights(path: Path) -> tuple[dict[str, Any], list[ClassInfo] | None]:
    """A state dict (weights_only=True: no code runs), and class names when the file carries them."""
    torch = require("torch", "export")
    if not Path(path).is_file():
        raise EdgesegError(f"weights file '{path}' does not exist")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for foreign or damaged files
        raise EdgesegError(f"cannot load weights '{path}' as a state dict: {str(exc).splitlines()[0]}") from None
    classes = None
    if isinstance(state, dict) and "state_dict" in state:  # edgeseg's training format
        classes = [ClassInfo(c["name"], tuple(c["color"])) for c in state.get("classes", [])] or None
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise EdgesegError(f"weights '{path}' hold a {type(state).__name__}, not a state dict")
    return state, classes


def apply_weights(model: Any, state: dict[str, Any], path: Path, hint: str) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        details = [line.strip() for line in str(exc).splitlines()[1:] if line.strip()]
        raise EdgesegError(f"weights '{path}' do not fit the model: {details[0] if details else exc}; {hint}") from None


def user_model(spec: str, options: dict[str, Any]) -> Any:
    """`package.module:function` -> the nn.Module the function returns (called with --arg options)."""
    torch = require("torch", "export")
    module_name, _, function_name = spec.partition(":")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # let users name a module in the current directory
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or anything the module raises on import
        raise EdgesegError(f"cannot import module '{module_name}' for '{spec}': {exc}") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise EdgesegError(f"'{module_name}' has no function '{function_name}'; MODEL must be package.module:function")
    try:
        model = function(**options)
    except Exception as exc:
        raise EdgesegError(f"'{spec}' failed when called: {type(exc).__name__}: {exc}") from None
    if not isinstance(model, torch.nn.Module):
        raise EdgesegError(f"'{spec}' returned {type(model).__name__}, not a torch.nn.Module")
    return model.eval()


def build(spec: str, options: ExportOptions) -> tuple[Any, list[ClassInfo], dict[str, Any]]:
    """The model in eval mode, its classes, and the manifest's model section."""
    from edgeseg.models import zoo_entry

    require("torch", "export")
    state, weight_classes = read_weights(options.weights) if options.weights else (None, None)
    if ":" in spec:
        model = user_model(spec, options.model_options)
        if state is not None:
            apply_weights(model, state, options.weights, "check that the weights belong to this model")
        returned = probe_output(spec, model, options.size)  # refuses what edgeseg cannot serve, before any file
        classes = model_classes(spec, returned, options.classes or weight_classes)
        info = {"name": spec, "source": "module", "family": type(model).__name__}
    else:
        from edgeseg.models import build_model

        entry = zoo_entry(spec)
        height, width = options.size
        multiple = entry.size_multiple
        if height % multiple or width % multiple:
            nearest = [max(1, round(side / multiple)) * multiple for side in (height, width)]
            raise EdgesegError(
                f"--size {height}x{width}: {spec} needs height and width divisible by {multiple} (its "
                f"stride); e.g. --size {nearest[0]}x{nearest[1]}"
            )
        if options.dynamic_size and not entry.dynamic_size:
            raise EdgesegError(
                f"{spec} exports only for a fixed input size (its pooling bins are fixed at export); drop "
                "--dynamic-size"
            )
        classes = options.classes or weight_classes
        if classes is None:
            raise EdgesegError(f"zoo model '{spec}' needs a class count: pass --classes N or a names file")
        model = build_model(spec, len(classes), **options.model_options)
        if state is not None:
            apply_weights(
                model,
                state,
                options.weights,
                "check --classes and --arg width=... against how the weights were trained",
            )
        returned = probe_output(spec, model, options.size)
        info = {"name": spec, "source": "zoo", "family": entry.family, "size_multiple": multiple}
    binary = binary_record(spec, returned, options.threshold)
    if binary:
        info["binary"] = binary
    info["parameters"] = int(sum(p.numel() for p in model.parameters()))
    info["options"] = options.model_options
    info["weights"] = (
        {"path": str(options.weights), "sha256": sha256_file(options.weights)} if options.weights else None
    )
    return model, classes, info


def with_defaults(spec: str, options: ExportOptions) -> ExportOptions:
    """Fill what the user left out: a demo entry brings its shipped weights and training size."""
    import dataclasses

    from edgeseg.models import shipped_weights, zoo_entry

    if ":" in spec:
        return dataclasses.replace(options, size=options.size or DEFAULT_SIZE)
    entry = zoo_entry(spec)
    return dataclasses.replace(
        options,
        weights=options.weights or shipped_weights(entry),
        size=options.size or entry.default_size or DEFAULT_SIZE,
    )


def contracts(options: ExportOptions) -> tuple[InputContract, OutputContract]:
    fused = options.fuse_preprocess
    input_contract = InputContract(
        name="frame" if fused else "input",
        size=options.size,
        batch=None if options.dynamic_batch else options.batch,
        layout="NHWC" if fused else "NCHW",
        dtype="uint8" if fused else "float32",
        color_order="BGR" if fused else "RGB",
        mean=options.mean,
        std=options.std,
        fused_preprocess=fused,
        dynamic_size=options.dynamic_size,
    )
    output_contract = OutputContract(
        name="classes" if options.fuse_argmax else "logits",
        kind="class_map" if options.fuse_argmax else "logits",
        dtype="uint8" if options.fuse_argmax else "float32",
        fused_argmax=options.fuse_argmax,
    )
    return input_contract, output_contract


def dynamic_axes(input_contract: InputContract, output_contract: OutputContract) -> dict[str, dict[int, str]]:
    axes: dict[str, dict[int, str]] = {input_contract.name: {}, output_contract.name: {}}
    if input_contract.batch is None:
        axes[input_contract.name][0] = axes[output_contract.name][0] = "batch"
    if input_contract.dynamic_size:
        in_hw = (1, 2) if input_contract.layout == "NHWC" else (2, 3)
        out_hw = (1, 2) if output_contract.kind == "class_map" else (2, 3)
        axes[input_contract.name].update({in_hw[0]: "height", in_hw[1]: "width"})
        axes[output_contract.name].update({out_hw[0]: "height", out_hw[1]: "width"})
    return {name: value for name, value in axes.items() if value}


def trace_to_onnx(
    graph: Any, example: Any, path: Path, input_contract: InputContract, output_contract: OutputContract, opset: int
) -> None:
    torch = require("torch", "export")
    require("onnx", "export")
    try:
        # Tracer warnings about shape arithmetic are expected; on failure the exporter prints its whole graph from
        # C++ (hundreds of lines) before raising.
        with warnings.catch_warnings(), quiet_native_output():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph,
                (example,),
                str(path),
                input_names=[input_contract.name],
                output_names=[output_contract.name],
                dynamic_axes=dynamic_axes(input_contract, output_contract) or None,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    except OSError:
        raise  # a full disk or an unwritable path is not the exporter's failure: the CLI names it
    except Exception as exc:
        reason = str(exc).splitlines()[0].split(" [Caused by ")[0]  # the rest is TorchScript IR
        hint = adaptive_pooling_hint(graph, example, input_contract)
        raise EdgesegError(
            f"ONNX export failed at opset {opset}: {hint or reason} (--verbose shows the exporter's output)"
        ) from None


def adaptive_pooling_hint(graph: Any, example: Any, input_contract: InputContract) -> str | None:
    """Which input sizes export, where an adaptive pooling's bins do not divide the map it pools: ONNX has no
    adaptive pooling, so the exporter writes a fixed kernel and stride, which exists only when they divide."""
    torch = require("torch", "export")
    pools = (torch.nn.AdaptiveAvgPool2d, torch.nn.AdaptiveMaxPool2d)
    seen: list[tuple[str, tuple[int, int], tuple[int, int]]] = []
    names = {module: name.removeprefix("model.") for name, module in graph.named_modules()}  # the user's names

    def record(module: Any, inputs: tuple[Any, ...], output: Any) -> None:
        seen.append((names[module], tuple(inputs[0].shape[-2:]), tuple(output.shape[-2:])))

    hooks = [m.register_forward_hook(record) for m in graph.modules() if isinstance(m, pools)]
    try:
        with torch.no_grad():
            graph(example)
    except Exception:  # the model's own failure is what the exporter said
        return None
    finally:
        for hook in hooks:
            hook.remove()
    height, width = input_contract.size
    multiples = [1, 1]
    bad = None
    for name, pooled, bins in seen:
        for axis, (side, size, count) in enumerate(zip(pooled, (height, width), bins)):
            stride = size // side if side and size % side == 0 else None
            if stride is None:
                return None  # a map that is not the input divided by a whole stride: no rule to give
            multiples[axis] = math.lcm(multiples[axis], stride * count)
            if side % count and bad is None:
                bad = f"{name} pools a {pooled[0]}x{pooled[1]} map into {bins[0]}x{bins[1]} bins"
    if bad is None:
        return None
    below = [max(m, (side // m) * m) for m, side in zip(multiples, (height, width))]
    above = [-(-side // m) * m for m, side in zip(multiples, (height, width))]
    # Below the first multiple, the nearest size below and above are the same: name it once.
    sizes = " or ".join(dict.fromkeys(f"--size {h}x{w}" for h, w in (below, above)))
    return (
        f"--size {height}x{width}: {bad}, which ONNX export needs to divide evenly; sizes that work are multiples of "
        f"{multiples[0]}x{multiples[1]}, e.g. {sizes}"
    )


def declare_output_dims(
    path: Path, input_contract: InputContract, output_contract: OutputContract, classes: int
) -> None:
    """Write the output's dims as the contract has them: [batch, H, W] for a class map, [batch, C, H, W] for logits.
    The exporter names a dim it cannot trace through a Resize to the input's size after the op that wrote it
    ('Castclasses_dim_1'), and Triton's ONNX Runtime backend compares a model's dims with its config exactly."""
    onnx = require("onnx", "export")
    model = onnx.load(str(path), load_external_data=False)  # the weights stay where the exporter put them
    batch: int | str = input_contract.batch or "batch"
    height, width = ("height", "width") if input_contract.dynamic_size else input_contract.size
    wanted = [batch, height, width] if output_contract.kind == "class_map" else [batch, classes, height, width]
    dims = model.graph.output[0].type.tensor_type.shape.dim
    if len(dims) != len(wanted):
        return  # the checker and the parity run say what is wrong with this output
    for dim, value in zip(dims, wanted):
        dim.Clear()
        if isinstance(value, str):
            dim.dim_param = value
        else:
            dim.dim_value = value
    onnx.save(model, str(path))


def check_onnx(path: Path) -> Any:
    """onnx.checker and shape inference on the file (path-based, so external data works); return the model."""
    onnx = require("onnx", "export")
    try:
        onnx.shape_inference.infer_shapes_path(str(path), str(path))
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        raise EdgesegError(f"the exported ONNX fails onnx.checker: {str(exc).splitlines()[0]}") from None

    return materialize_shared_weights(onnx.load(str(path)))


def export_torch(spec: str, output: Path, options: ExportOptions) -> Bundle:
    torch = require("torch", "export")
    progress = Progress(5, "export", enabled=options.progress)
    options = with_defaults(spec, options)
    model, classes, model_info = build(spec, options)
    input_contract, output_contract = contracts(options)
    graph = SegmentationGraph(
        model, options.mean, options.std, options.fuse_preprocess, options.fuse_argmax, threshold_logit(model_info)
    ).eval()
    progress.advance(f"built {model_info['family']} ({model_info['parameters']:,} parameters)")

    batch = options.batch if input_contract.batch else 1
    frames = sample_frames(options.size, count=max(4, batch))
    inputs = frames_to_input(list(frames[: batch * (len(frames) // batch)]), input_contract)

    def fill(scratch: Path) -> Bundle:
        raw_dir = scratch / "raw"
        raw_dir.mkdir()
        trace_to_onnx(
            graph,
            torch.from_numpy(inputs[:batch]),
            raw_dir / MODEL_FILE,
            input_contract,
            output_contract,
            options.opset,
        )
        declare_output_dims(raw_dir / MODEL_FILE, input_contract, output_contract, len(classes))
        progress.advance(f"exported at opset {options.opset}")
        onnx_model = check_onnx(raw_dir / MODEL_FILE)
        files = save_onnx(onnx_model, scratch / MODEL_FILE)
        shutil.rmtree(raw_dir)
        progress.advance("onnx.checker and shape inference passed")
        parity = measure_parity(graph, scratch / MODEL_FILE, inputs, batch)
        progress.advance(
            f"parity: agreement {parity['class_map_agreement']:.4%}, max |diff| {parity['max_abs_logit_diff']:.2e}"
        )
        if not parity["passed"]:
            raise EdgesegError(
                f"ONNX and PyTorch disagree on {1 - parity['class_map_agreement']:.3%} of pixels (max |logit diff| "
                f"{parity['max_abs_logit_diff']:.3g}); "
                "the model uses an op the exporter mis-translates: try another --opset, or open an issue with the model"
            )
        bundle = Bundle.create(scratch, model_info, classes, input_contract, output_contract)
        record_torch_export(bundle, files, options.opset, parity)
        return bundle

    return write_bundle(output, options.force, fill, progress)  # says "bundle written" once it is in place
