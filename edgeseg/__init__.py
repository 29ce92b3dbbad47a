"""edgeseg: PyTorch semantic segmentation to ONNX, TensorRT and live video at the edge."""

__version__ = "0.1.0"
