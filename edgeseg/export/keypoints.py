"""Export a keypoint heatmap model (the zoo's stacked hourglass) into a bundle, with a parity check.

The graph takes uint8 BGR frames [N, H, W, 3] like the other bundles. With the decoder fused (the default) it
answers `keypoints` [N, K, peaks, 3]: per keypoint its highest local maxima as (x, y) in input pixels and a
confidence (decode_peaks), so a few hundred bytes leave the accelerator instead of the heatmaps. With
--no-fuse-argmax it answers the last stack's `heatmaps` [N, K, H/4, W/4] and the runtime decodes them.
Parity runs PyTorch and ONNX Runtime on the same frames: every confident peak of one must have a twin in the
other within half a heatmap cell (a neighbour comparison may tip the other way on float rounding).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.bundle import Bundle, ClassInfo, OutputContract
from edgeseg.errors import EdgesegError, require
from edgeseg.export.artifacts import record_torch_export, save_onnx, write_bundle
from edgeseg.export.options import MODEL_FILE, ExportOptions
from edgeseg.export.torch_export import apply_weights, check_onnx, contracts, trace_to_onnx, with_defaults
from edgeseg.native_output import quiet_native_output
from edgeseg.progress import Progress
from edgeseg.runtime.tensors import frames_to_input

STRIDE = 4  # heatmaps are at a quarter of the input's size
MAX_HEATMAP_DIFF = 1e-3  # confidences (peak heights) of PyTorch and ONNX Runtime, or raw heatmap values
PARITY_TOLERANCE_PX = STRIDE / 2


def keypoint_graph(model: Any, mean: tuple[float, ...], std: tuple[float, ...], fuse_decoder: bool, peaks: int) -> Any:
    """uint8 NHWC BGR frames -> heatmaps, and with the decoder fused -> (x, y, confidence) per keypoint and peak."""
    from edgeseg.export.wrapper import SegmentationGraph
    from edgeseg.models.hourglass import decode_peaks

    class KeypointGraph(SegmentationGraph):
        def forward(self, frame: Any) -> Any:
            heatmaps = self.model(self.preprocess(frame))
            return decode_peaks(heatmaps, STRIDE, peaks) if fuse_decoder else heatmaps

    return KeypointGraph(model, mean, std).eval()


def schema_from(checkpoint: dict[str, Any] | None) -> dict[str, Any]:
    """Names, skeleton and category from the weights, else the medical scene's graspers (what the zoo trains on)."""
    if checkpoint and "keypoints" in checkpoint:
        return checkpoint["keypoints"]
    from edgeseg.data.synthetic import KEYPOINTS, SKELETON

    return {"names": list(KEYPOINTS), "skeleton": [list(bone) for bone in SKELETON], "category": [3, "instrument"]}


def export_keypoints(spec: str, output: Path, options: ExportOptions) -> Bundle:
    torch = require("torch", "export")
    from edgeseg.data.synthetic import MEDICAL_CLASSES
    from edgeseg.models import build_model, check_size
    from edgeseg.models.keypoint_train import MIN_CONFIDENCE, PEAKS

    options = with_defaults(spec, options)
    if options.dynamic_size or not options.fuse_preprocess:
        raise EdgesegError(f"{spec} exports uint8 frames at a fixed size; drop --dynamic-size/--no-fuse-preprocess")
    entry = check_size(spec, options.size)
    height, width = options.size
    progress = Progress(5, "export", enabled=options.progress)
    checkpoint = None
    if options.weights:
        checkpoint = torch.load(str(options.weights), map_location="cpu", weights_only=True)
        if checkpoint.get("kind") != "keypoints":
            raise EdgesegError(f"weights '{options.weights}' are not a keypoint model's (train them with "
                               "edgeseg train hourglass --data 'synthetic://medical?keypoints=1')")  # fmt: skip
    schema = schema_from(checkpoint)
    model = build_model(spec, len(schema["names"]), **options.model_options)
    if checkpoint is not None:
        apply_weights(model, checkpoint["state_dict"], options.weights, "check --arg width=/stacks= against training")
    fused = options.fuse_argmax
    graph = keypoint_graph(model.eval(), options.mean, options.std, fused, PEAKS)
    info = {"name": spec, "source": "zoo", "family": entry.family, "parameters": int(sum(p.numel() for p in
            model.parameters())), "options": options.model_options, "weights": str(options.weights) if
            options.weights else None}  # fmt: skip
    progress.advance(f"built {entry.family} ({info['parameters']:,} parameters)")
    input_contract, _ = contracts(options)
    output_contract = OutputContract("keypoints" if fused else "heatmaps", "keypoints", "float32", fused)
    batch = input_contract.batch or 1
    frames = medical_frames(height, width, max(4, batch))
    inputs = frames_to_input(frames[: batch * (len(frames) // batch)], input_contract)
    category_colour = dict(MEDICAL_CLASSES).get(schema["category"][1], (0, 120, 255))

    def fill(scratch: Path) -> Bundle:
        raw = scratch / "raw"
        raw.mkdir()
        trace_to_onnx(graph, torch.from_numpy(inputs[:batch]), raw / MODEL_FILE, input_contract, output_contract,
                      options.opset)  # fmt: skip
        progress.advance(f"exported at opset {options.opset}")
        files = save_onnx(check_onnx(raw / MODEL_FILE), scratch / MODEL_FILE)
        shutil.rmtree(raw)
        progress.advance("onnx.checker and shape inference passed")
        parity = keypoint_parity(graph, scratch / MODEL_FILE, inputs, batch, fused, MIN_CONFIDENCE)
        progress.advance(f"parity: {parity['peaks']} confident peaks, max |diff| {parity['max_abs_diff']:.2e}")
        if not parity["passed"]:
            raise EdgesegError(f"ONNX and PyTorch disagree on the keypoints: {parity['problem']}")
        bundle = Bundle.create(scratch, info, [ClassInfo(schema["category"][1], tuple(category_colour))],
                               input_contract, output_contract)  # fmt: skip
        bundle.manifest["keypoints"] = {"names": list(schema["names"]), "skeleton": schema["skeleton"],
                                        "peaks": PEAKS, "stride": STRIDE, "min_confidence": MIN_CONFIDENCE,
                                        "decoder": "local maxima, quarter-cell refinement"}  # fmt: skip
        record_torch_export(bundle, files, options.opset, parity)
        return bundle

    return write_bundle(output, options.force, fill, progress)  # says "bundle written" once it is in place


def medical_frames(height: int, width: int, count: int) -> list[np.ndarray]:
    """Frames with graspers in them, so parity compares real peaks (random noise has none)."""
    from edgeseg.data.synthetic import make_scene

    scene = make_scene("medical", width, height, seed=4242)
    return [scene.render(index * 40).image for index in range(count)]


def keypoint_parity(graph: Any, path: Path, inputs: np.ndarray, batch: int, fused: bool, min_confidence: float
                    ) -> dict[str, Any]:  # fmt: skip
    import onnxruntime as ort
    import torch

    with quiet_native_output():
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    mine, theirs = [], []
    for start in range(0, len(inputs), batch):
        chunk = inputs[start : start + batch]
        with torch.no_grad():
            mine.append(graph(torch.from_numpy(chunk)).numpy())
        theirs.append(session.run(None, {session.get_inputs()[0].name: chunk})[0])
    mine, theirs = np.concatenate(mine), np.concatenate(theirs)
    if not fused:
        diff = float(np.abs(mine - theirs).max())
        problem = "" if diff <= MAX_HEATMAP_DIFF else f"heatmaps differ by up to {diff:.3g}"
        return {"frames": len(inputs), "peaks": 0, "max_abs_diff": diff, "passed": not problem, "problem": problem}
    diff, unmatched, peaks = float(np.abs(mine[..., 2] - theirs[..., 2]).max()), 0, 0
    for ours, other in zip(mine.reshape(-1, mine.shape[2], 3), theirs.reshape(-1, theirs.shape[2], 3)):
        for x, y, _ in ours[ours[:, 2] >= min_confidence]:
            peaks += 1
            unmatched += int(np.hypot(other[:, 0] - x, other[:, 1] - y).min() > PARITY_TOLERANCE_PX)
    problem = ""
    if diff > MAX_HEATMAP_DIFF or unmatched:
        problem = f"confidences differ by up to {diff:.3g}; {unmatched} of {peaks} peaks have no twin within 2 px"
    return {"frames": len(inputs), "peaks": peaks, "max_abs_diff": diff, "unmatched_peaks": unmatched,
            "passed": not problem, "problem": problem}  # fmt: skip
