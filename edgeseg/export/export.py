"""PyTorch -> ONNX bundle: zoo models, any `module:function`, or an existing .onnx to import.

Uses the TorchScript exporter (dynamo=False) at opset 17 by default: TensorRT 8.5 on JetPack 5
parses opset <= 17, and the dynamo exporter cannot lower some graphs (ASPP's image pooling) to 17
(measured with torch 2.13: a DeepLabV3+ stayed at opset 18).
"""

from __future__ import annotations

from pathlib import Path

from edgeseg.bundle import Bundle
from edgeseg.export.options import ExportOptions
from edgeseg.fileio import refuse_non_empty


def export(model_spec: str, output: Path, options: ExportOptions) -> Bundle:
    """Export MODEL (zoo name, module:function or .onnx) into a new bundle at `output`."""
    output = Path(output)
    refuse_non_empty(output, options.force)
    # Each path imports only what it needs: importing an .onnx works without torch.
    if model_spec.lower().endswith(".onnx"):
        from edgeseg.export.onnx_import import import_onnx

        return import_onnx(Path(model_spec), output, options)
    if ":" not in model_spec:
        from edgeseg.models.zoo import zoo_entry

        if zoo_entry(model_spec).kind == "instances":
            from edgeseg.export.instances import export_instances

            return export_instances(model_spec, output, options)
        if zoo_entry(model_spec).kind == "keypoints":
            from edgeseg.export.keypoints import export_keypoints

            return export_keypoints(model_spec, output, options)
    from edgeseg.export.torch_export import export_torch

    return export_torch(model_spec, output, options)
