"""edgeseg: trained PyTorch models (semantic segmentation, Mask R-CNN instances, hourglass keypoints) to ONNX and
TensorRT, run on live video at the edge. The Python API: `edgeseg.load(bundle)` and `edgeseg.stream(model, source)`."""

from edgeseg.api import load, stream
from edgeseg.version import __version__

__all__ = ["__version__", "load", "stream"]
