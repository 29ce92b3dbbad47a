"""`edgeseg calibrate`: INT8 and FP16 ONNX variants of a bundle's FP32 graph, and what each one costs."""

from edgeseg.calibration.calibrate import CPU_FORMATS, PRECISIONS, CalibrateOptions, Calibration, calibrate

__all__ = ["CPU_FORMATS", "PRECISIONS", "CalibrateOptions", "Calibration", "calibrate"]
