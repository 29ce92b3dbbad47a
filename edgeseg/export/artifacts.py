"""What every export writes: the bundle directory (atomically), the ONNX file, its artifact entry."""

from __future__ import annotations

import errno
import importlib
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.bundle import Artifact, Bundle, utc_now
from edgeseg.errors import EdgesegError, require
from edgeseg.export.options import EXTERNAL_DATA_LIMIT, MODEL_FILE
from edgeseg.fileio import atomic_directory, sha256_file
from edgeseg.progress import Progress


def tool_versions(*modules: str) -> dict[str, str]:
    versions = {}
    for name in modules:
        module = sys.modules.get(name) or importlib.import_module(name)
        versions[name] = str(getattr(module, "__version__", "unknown"))
    return versions


def write_bundle(output: Path, force: bool, fill: Any, progress: Progress | None = None) -> Bundle:
    """Build the bundle in a temporary directory with `fill(tmpdir) -> Bundle`; move it into place when complete,
    and only then say so (a step of `progress`). Another process that put a bundle there first wins: OutputRaced."""
    try:
        with atomic_directory(output, replace=force) as scratch:
            bundle = fill(scratch)
            bundle.save()
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            exc.filename = str(output)  # the CLI says how much room is left there
            raise
        raise EdgesegError(f"cannot write bundle '{output}': {exc.strerror or exc}; choose a writable path") from None
    if progress is not None:
        progress.advance(f"bundle written to {output}")
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
    return Artifact(
        path=path.name,
        kind="onnx",
        precision="fp32",
        sha256=sha256_file(path),
        size=path.stat().st_size,
        files=files,
        tools=tools,
        created=utc_now(),
        extra={"opset": opset, **extra},
    )


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


def record_torch_export(bundle: Bundle, files: dict[str, str], opset: int, parity: dict[str, Any]) -> Bundle:
    """List the graph torch.onnx wrote as the bundle's FP32 artifact, with the tools that made it and its parity."""
    tools = {**tool_versions("torch", "onnx", "onnxruntime"), "exporter": "torch.onnx (TorchScript)"}
    bundle.add_artifact(onnx_artifact(bundle.root / MODEL_FILE, files, opset, tools))
    bundle.manifest["parity"] = parity
    return bundle
