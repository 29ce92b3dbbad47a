"""What `edgeseg deploy` is asked for, and which of the bundle's artifacts that means."""

from __future__ import annotations

from dataclasses import dataclass

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
