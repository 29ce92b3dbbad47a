"""What `edgeseg deploy` is asked for, and which of the bundle's artifacts that means."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field

from edgeseg.bundle import Artifact, Bundle
from edgeseg.errors import EdgesegError


@dataclass
class DeployOptions:
    target: str
    precision: str = "best"
    streams: int = 1
    model_name: str | None = None
    max_batch: int = 8
    queue_delay_us: int = 100
    instances: int = 1
    instance_kind: str = "gpu"  # gpu | cpu (a CPU-only Triton serving the ONNX)
    force: bool = False
    inputs: list[str] = field(default_factory=list)  # DeepStream sources (default: NVIDIA's sample video per stream)
    jetpack: str = "6"  # DeepStream INT8: whose TensorRT's calibration cache nvinfer reads
    encoder: str = "software"  # DeepStream file sink: software (x264, works without NVENC) or hardware
    ort_tensorrt: bool = False  # Triton: ONNX Runtime's TensorRT execution accelerator for an ONNX model


def choose_artifact(bundle: Bundle, precision: str, prefer_engine: bool) -> Artifact:
    kinds = ("engine", "onnx") if prefer_engine else ("onnx",)
    for kind in kinds:
        if any(a.kind == kind for a in bundle.artifacts):
            try:
                return bundle.select(kind, precision, targets=("tensorrt", "any") if kind == "onnx" else ("tensorrt",))
            except EdgesegError:
                if kind == kinds[-1]:
                    raise
    raise EdgesegError(f"bundle {bundle.root} has no artifact to deploy")


# Triton's model names, DeepStream's file names, scp and FAT filesystems all take these characters.
NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9_]+")


def deploy_name(bundle: Bundle, given: str | None, prefix: str = "") -> str:
    """The name deploy writes under: --name as given (letters, digits and _ only), else the bundle's model name with
    every run of other characters as one _ ('pkg.models:build_net' -> 'pkg_models_build_net')."""
    if given is not None:
        if not given or NAME_CHARACTERS.search(given):
            suggestion = NAME_CHARACTERS.sub("_", given).strip("_") or "model"
            raise EdgesegError(
                f"--name '{given}': deploy names are letters, digits and _ only (Triton's model names, DeepStream's "
                f"file names); use --name {suggestion}"
            )
        return given
    model_name = str(bundle.manifest["model"]["name"])
    name = prefix + (NAME_CHARACTERS.sub("_", model_name).strip("_") or "model")
    if NAME_CHARACTERS.search(model_name):
        print(
            f"edgeseg: note: model '{model_name}' is deployed as '{name}' (Triton's model names and DeepStream's "
            "file names take letters, digits and _; --name sets another)",
            file=sys.stderr,
        )
    return name
