"""`edgeseg deploy`: DeepStream and Triton Inference Server outputs from a bundle."""

from edgeseg.deploy.deploy import TARGETS, deploy
from edgeseg.deploy.options import DeployOptions
from edgeseg.deploy.plain_onnx import plain_io_model

__all__ = ["TARGETS", "DeployOptions", "deploy", "plain_io_model"]
