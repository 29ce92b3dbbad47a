"""PyTorch -> ONNX bundle: zoo models, any `module:function`, or an existing .onnx to import."""

from edgeseg.export.artifacts import materialize_shared_weights, save_onnx
from edgeseg.export.export import export
from edgeseg.export.options import ExportOptions

__all__ = ["ExportOptions", "export", "materialize_shared_weights", "save_onnx"]
