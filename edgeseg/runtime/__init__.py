"""The lean runtime: sources, backends, overlay, sinks and the pipeline.

Imports numpy, OpenCV and one inference backend; never torch or onnx (a test checks it).
"""

from edgeseg.runtime.backends import Backend, TensorSpec, open_backend
from edgeseg.runtime.overlay import Overlay
from edgeseg.runtime.pipeline import Pipeline, RunSummary, source_options
from edgeseg.runtime.sinks import open_sinks
from edgeseg.runtime.sources import open_source

__all__ = [
    "Backend",
    "Overlay",
    "Pipeline",
    "RunSummary",
    "TensorSpec",
    "open_backend",
    "open_sinks",
    "open_source",
    "source_options",
]
