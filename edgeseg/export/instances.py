"""Export an instance segmentation model (the zoo's Mask R-CNN) into a bundle, with a parity check.

The graph takes uint8 BGR frames [1, H, W, 3] like the semantic bundles and gives the detector's fixed-size
answer: boxes [N, 4], scores [N] (0 pads), classes [N] (int32, index into the bundle's classes), masks
[N, 28, 28] and count []. Parity compares PyTorch and ONNX Runtime on the same frames: the same count, boxes
within a pixel, and each detection's pasted mask against its twin (IoU).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.bundle import Bundle, ClassInfo, InputContract, OutputContract
from edgeseg.errors import EdgesegError, require
from edgeseg.export.artifacts import record_torch_export, save_onnx, write_bundle
from edgeseg.export.options import MODEL_FILE, ExportOptions
from edgeseg.export.torch_export import apply_weights, check_onnx, with_defaults
from edgeseg.native_output import quiet_native_output
from edgeseg.progress import Progress
from edgeseg.runtime.tensors import frames_to_input

OUTPUTS = ("boxes", "scores", "classes", "masks", "count")
MASK_SIZE = 28
MIN_MASK_IOU = 0.98  # mean IoU of twin detections' masks between PyTorch and ONNX Runtime


def instance_graph(model: Any, mean: tuple[float, ...], std: tuple[float, ...]) -> Any:
    """uint8 NHWC BGR frame -> the detector's five outputs, with the semantic graphs' fused preprocessing."""
    from edgeseg.export.wrapper import SegmentationGraph

    class InstanceGraph(SegmentationGraph):
        def forward(self, frame: Any) -> tuple[Any, ...]:
            return self.model(self.preprocess(frame))

    return InstanceGraph(model, mean, std).eval()


def instance_classes(options: ExportOptions, weight_classes: list[dict] | None) -> list[dict[str, Any]]:
    if weight_classes:
        return weight_classes
    from edgeseg.data.synthetic import DRIVING_CLASSES, INSTANCE_CLASSES

    if options.classes:
        return [{"name": c.name, "color": list(c.color)} for c in options.classes]
    return [{"name": DRIVING_CLASSES[i][0], "color": list(DRIVING_CLASSES[i][1]), "category_id": i}
            for i in INSTANCE_CLASSES]  # fmt: skip


# RoiAlign's coordinate_transformation_mode (half_pixel, what torchvision's aligned=True computes) is opset 16's.
ROI_ALIGN_OPSET = 16


def export_instances(spec: str, output: Path, options: ExportOptions) -> Bundle:
    torch = require("torch", "export")
    max_detections = options.max_detections
    from edgeseg.models import build_model, check_size

    options = with_defaults(spec, options)
    if options.dynamic_batch or options.dynamic_size or options.batch != 1:
        raise EdgesegError(f"{spec} exports for one frame at a fixed size (its anchors are constants of the graph)")
    if not options.fuse_preprocess or not options.fuse_argmax:
        raise EdgesegError(f"{spec} has no logits or float input to expose; drop --no-fuse-preprocess/--no-fuse-argmax")
    if options.opset < ROI_ALIGN_OPSET:
        # Not a silent raise of the opset: the user asked for one a TensorRT reads (13: JetPack 4.6).
        raise EdgesegError(
            f"{spec} cannot be exported at opset {options.opset}: its RoiAlign needs opset {ROI_ALIGN_OPSET} "
            "(coordinate_transformation_mode=half_pixel), and TensorRT 8.2 (JetPack 4.6) has no RoiAlign at all; "
            f"export it with --opset {ROI_ALIGN_OPSET} or more, for JetPack 5.1 and later"
        )
    entry = check_size(spec, options.size)
    height, width = options.size
    progress = Progress(5, "export", enabled=options.progress)
    state, classes = None, None
    if options.weights:
        checkpoint = torch.load(str(options.weights), map_location="cpu", weights_only=True)
        state, classes = checkpoint["state_dict"], checkpoint.get("classes")
    classes = instance_classes(options, classes)
    model = build_model(spec, len(classes), image_size=(height, width), max_detections=max_detections,
                        **options.model_options)  # fmt: skip
    if state is not None:
        apply_weights(model, state, options.weights, "check --arg width=... against how the weights were trained")
    graph = instance_graph(model.eval(), options.mean, options.std)
    info = {"name": spec, "source": "zoo", "family": entry.family, "parameters": int(sum(p.numel() for p in
            model.parameters())), "options": options.model_options, "weights": str(options.weights) if
            options.weights else None}  # fmt: skip
    progress.advance(f"built {entry.family} ({info['parameters']:,} parameters)")
    input_contract = InputContract("frame", (height, width), 1, "NHWC", "uint8", "BGR", options.mean, options.std,
                                   True, False)  # fmt: skip
    output_contract = OutputContract("boxes", "instances", "float32", False)
    frames = driving_frames(height, width)

    def fill(scratch: Path) -> Bundle:
        raw = scratch / "raw"
        raw.mkdir()
        example = torch.from_numpy(frames_to_input([frames[0]], input_contract))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    graph,
                    (example,),
                    str(raw / MODEL_FILE),
                    input_names=["frame"],
                    output_names=list(OUTPUTS),
                    opset_version=options.opset,
                    dynamo=False,
                )
        except Exception as exc:
            raise EdgesegError(f"ONNX export failed: {str(exc).splitlines()[0]}") from None
        fix_output_shapes(raw / MODEL_FILE, max_detections)
        progress.advance(f"exported at opset {options.opset}")
        files = save_onnx(check_onnx(raw / MODEL_FILE), scratch / MODEL_FILE)
        for leftover in raw.iterdir():
            leftover.unlink()
        raw.rmdir()
        progress.advance("onnx.checker and shape inference passed")
        parity = instance_parity(graph, scratch / MODEL_FILE, frames, input_contract)
        progress.advance(f"parity: {parity['detections']} detections, mask IoU {parity['mean_mask_iou']:.4f}")
        if not parity["passed"]:
            raise EdgesegError(f"ONNX and PyTorch disagree on the detections: {parity['problem']}")
        bundle = Bundle.create(scratch, info, [ClassInfo(c["name"], tuple(c["color"])) for c in classes],
                               input_contract, output_contract)  # fmt: skip
        bundle.manifest["classes"] = classes
        bundle.manifest["instances"] = {"outputs": list(OUTPUTS), "max_detections": max_detections,
                                        "mask_size": MASK_SIZE}  # fmt: skip
        record_torch_export(bundle, files, options.opset, parity)
        return bundle

    return write_bundle(output, options.force, fill, progress)  # says "bundle written" once it is in place


def driving_frames(height: int, width: int, count: int = 4) -> list[np.ndarray]:
    """Frames with objects in them, so parity compares real detections (random noise has none)."""
    from edgeseg.data.synthetic import make_scene

    scene = make_scene("driving", width, height, seed=4242)
    return [scene.render(index * 50).image for index in range(count)]


def fix_output_shapes(path: Path, max_detections: int) -> None:
    """TopK's K is a constant, so every output's size is known; say so in the graph (the exporter leaves the
    data-dependent NMS before it as unknown dims), which TensorRT's DLA and Triton's config need."""
    onnx = require("onnx", "export")
    model = onnx.load(str(path))
    shapes = {"boxes": [max_detections, 4], "scores": [max_detections], "classes": [max_detections],
              "masks": [max_detections, MASK_SIZE, MASK_SIZE], "count": []}  # fmt: skip
    for value in model.graph.output:
        dims = value.type.tensor_type.shape
        dims.ClearField("dim")
        for size in shapes[value.name]:
            dims.dim.add().dim_value = size
    onnx.save(model, str(path))


def run_both(graph: Any, path: Path, frame: np.ndarray, contract: InputContract) -> tuple[list, list]:
    import onnxruntime as ort
    import torch

    batch = frames_to_input([frame], contract)
    with torch.no_grad():
        mine = [t.numpy() for t in graph(torch.from_numpy(batch))]
    with quiet_native_output():
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return mine, session.run(None, {"frame": batch})


def instance_parity(graph: Any, path: Path, frames: list[np.ndarray], contract: InputContract) -> dict[str, Any]:
    """Each PyTorch detection matched with ONNX Runtime's of the same class and most overlapping box (equal
    scores may come out of the two TopKs in either order): box difference and pasted-mask IoU of the pairs."""
    from edgeseg.data.coco import paste_mask

    detections, ious, box_diff, problem = 0, [], 0.0, ""
    for frame in frames:
        (boxes, _, classes, masks, count), (onnx_boxes, _, onnx_classes, onnx_masks, onnx_count) = run_both(
            graph, path, frame, contract
        )
        count = int(count)
        if count != int(onnx_count):
            problem = problem or f"{count} detections in PyTorch, {int(onnx_count)} in ONNX Runtime"
            continue
        detections += count
        height, width = frame.shape[:2]
        for i in range(count):
            twins = [j for j in range(count) if onnx_classes[j] == classes[i]]
            if not twins:
                problem = problem or f"class {int(classes[i])} found by PyTorch only"
                continue
            j = min(twins, key=lambda k: float(np.abs(onnx_boxes[k] - boxes[i]).max()))
            box_diff = max(box_diff, float(np.abs(boxes[i] - onnx_boxes[j]).max()))
            a = paste_mask(boxes[i], masks[i], height, width)
            b = paste_mask(onnx_boxes[j], onnx_masks[j], height, width)
            union = (a | b).sum()
            ious.append(float((a & b).sum() / union) if union else 1.0)
    mean_iou = float(np.mean(ious)) if ious else 1.0
    if not problem and (box_diff > 1.0 or mean_iou < MIN_MASK_IOU):
        problem = f"boxes differ by up to {box_diff:.2f} px, masks' mean IoU {mean_iou:.4f}"
    return {"frames": len(frames), "detections": detections, "max_box_diff_px": box_diff, "mean_mask_iou": mean_iou,
            "min_mask_iou": MIN_MASK_IOU, "passed": not problem, "problem": problem}  # fmt: skip
