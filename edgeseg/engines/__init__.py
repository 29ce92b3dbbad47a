"""TensorRT engines from a bundle's ONNX artifacts, for TensorRT 8.5 (JetPack 5) to 11.x."""

from edgeseg.engines.build import BuildOptions, build, build_engine, build_onnx_file, nvinfer_engine_path
from edgeseg.engines.compat import (
    check_engine,
    current_gpu,
    import_tensorrt,
    network_flags,
    precision_flags,
    trt_version,
)
from edgeseg.engines.cuda import GpuInfo, open_cuda

__all__ = [
    "BuildOptions",
    "GpuInfo",
    "build",
    "build_engine",
    "build_onnx_file",
    "check_engine",
    "current_gpu",
    "import_tensorrt",
    "network_flags",
    "nvinfer_engine_path",
    "open_cuda",
    "precision_flags",
    "trt_version",
]
