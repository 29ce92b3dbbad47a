"""PyTorch -> ONNX bundle: zoo models, any `module:function`, or an existing .onnx to import.

Uses the TorchScript exporter (dynamo=False) at opset 17 by default: TensorRT 8.5 on JetPack 5
parses opset <= 17, and the dynamo exporter cannot lower some graphs (ASPP's image pooling) to 17
(shared/PROBES.md).
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.bundle import Artifact, Bundle, ClassInfo, utc_now
from edgeseg.errors import EdgesegError, require
from edgeseg.fileio import atomic_directory, sha256_file

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MODEL_FILE = "model.onnx"
DEFAULT_SIZE = (256, 256)
EXTERNAL_DATA_LIMIT = 1_800_000_000  # protobuf's 2 GB cap, with headroom for the graph itself


@dataclass
class ExportOptions:
    size: tuple[int, int] | None = None  # height, width; None: the zoo entry's size, else DEFAULT_SIZE
    classes: list[ClassInfo] | None = None
    weights: Path | None = None
    opset: int = 17
    batch: int = 1
    dynamic_batch: bool = False
    dynamic_size: bool = False
    fuse_preprocess: bool = True
    fuse_argmax: bool = True
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    model_options: dict[str, Any] = field(default_factory=dict)
    force: bool = False
    progress: bool = True


def tool_versions(*modules: str) -> dict[str, str]:
    versions = {}
    for name in modules:
        module = sys.modules.get(name) or importlib.import_module(name)
        versions[name] = str(getattr(module, "__version__", "unknown"))
    return versions


def export(model_spec: str, output: Path, options: ExportOptions) -> Bundle:
    """Export MODEL (zoo name, module:function or .onnx) into a new bundle at `output`."""
    output = Path(output)
    if output.is_file():
        raise EdgesegError(f"output '{output}' is a file; a bundle is a directory: choose another path")
    if output.is_dir() and any(output.iterdir()) and not options.force:
        raise EdgesegError(f"output '{output}' already exists and is not empty; choose another path or pass --force to replace it")
    if model_spec.lower().endswith(".onnx"):
        from edgeseg.export.onnx_import import import_onnx

        return import_onnx(Path(model_spec), output, options)
    from edgeseg.export.torch_export import export_torch

    return export_torch(model_spec, output, options)


def write_bundle(output: Path, force: bool, fill: Any) -> Bundle:
    """Build the bundle in a temporary directory with `fill(tmpdir) -> Bundle`; move it into place when complete."""
    try:
        with atomic_directory(output, replace=force or output.is_dir()) as scratch:
            bundle = fill(scratch)
            bundle.save()
    except OSError as exc:
        raise EdgesegError(f"cannot write bundle '{output}': {exc.strerror or exc}; choose a writable path") from None
    return Bundle.load(output)


def save_onnx(model: Any, path: Path, external: bool = False) -> dict[str, str]:
    """Save an ONNX model; as external data when asked or when too big for one protobuf.

    Returns the companion files with their sha256, for the artifact's `files`.
    """
    onnx = require("onnx", "export")
    data_name = path.name + ".data"
    external = external or model.ByteSize() > EXTERNAL_DATA_LIMIT
    onnx.save_model(model, str(path), save_as_external_data=external, all_tensors_to_one_file=True, location=data_name)
    return {data_name: sha256_file(path.parent / data_name)} if external else {}


def materialize_shared_weights(model: Any) -> Any:
    """Replace Identity nodes that alias an initializer with a copy of it, in place.

    The TorchScript exporter deduplicates equal weights (e.g. the zero biases BatchNorm folding
    leaves) behind Identity nodes; quantizers and engine builders expect weights as initializers.
    """
    initializers = {t.name: t for t in model.graph.initializer}
    aliases = [n for n in model.graph.node if n.op_type == "Identity" and n.input[0] in initializers]
    for node in aliases:
        copy = model.graph.initializer.add()
        copy.CopyFrom(initializers[node.input[0]])
        copy.name = node.output[0]
        model.graph.node.remove(node)
    return model


def onnx_artifact(path: Path, files: dict[str, str], opset: int, tools: dict[str, str], **extra: Any) -> Artifact:
    return Artifact(path=path.name, kind="onnx", precision="fp32", sha256=sha256_file(path), files=files, tools=tools, created=utc_now(), extra={"opset": opset, **extra})


def sample_frames(size: tuple[int, int], count: int = 4) -> np.ndarray:
    """Realistic uint8 BGR frames at the export size: synthetic scenes and one noise frame."""
    from edgeseg.data.synthetic import make_scene

    height, width = size
    frames = []
    for index in range(count - 1):
        scene = make_scene("driving" if index % 2 == 0 else "medical", width, height, seed=1000 + index)
        frames.append(scene.render(index * 7).image)
    frames.append(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8))
    return np.stack(frames)
