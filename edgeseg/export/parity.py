"""Parity: the PyTorch graph and the exported ONNX on the same frames, through ONNX Runtime."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.native_output import quiet_native_output

MIN_AGREEMENT = 0.999


def logits_tensor_name(model: Any) -> str | None:
    """The tensor that feeds the fused ArgMax, or None when the graph already outputs logits."""
    for node in model.graph.node:
        if node.op_type == "ArgMax":
            return node.input[0]
    return None


def onnx_logits_and_maps(model_path: Path, inputs: np.ndarray, batch: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Run the ONNX in batches of `batch` frames with its logits exposed as an extra output."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(model_path))
    logits_name = logits_tensor_name(model)
    if logits_name is not None:
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(logits_name))
    with tempfile.TemporaryDirectory() as scratch:
        probe = Path(scratch) / "probe.onnx"
        # External data keeps graphs over 2 GB loadable; small ones are written whole.
        onnx.save(model, str(probe), save_as_external_data=model.ByteSize() > 1_800_000_000)
        with quiet_native_output():
            session = ort.InferenceSession(str(probe), providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name
        with quiet_native_output():  # ONNX Runtime warns per run where a graph's declared shapes are not its own
            results = [session.run(None, {input_name: inputs[i : i + batch]}) for i in range(0, len(inputs), batch)]
    outputs = np.concatenate([r[0] for r in results])
    logits = np.concatenate([r[-1] for r in results]) if logits_name else outputs
    maps = outputs if logits_name else outputs.argmax(axis=1)
    return logits, maps.astype(np.int64)


def measure_parity(graph: Any, model_path: Path, inputs: np.ndarray, batch: int = 1) -> dict[str, Any]:
    """Max |logit difference| and class-map agreement between PyTorch and ONNX Runtime."""
    import torch

    with torch.no_grad():
        frames = torch.from_numpy(inputs)
        torch_logits = torch.cat([graph.logits(frames[i : i + batch]) for i in range(0, len(inputs), batch)]).numpy()
    onnx_logits, onnx_maps = onnx_logits_and_maps(model_path, inputs, batch)
    agreement = float((torch_logits.argmax(axis=1) == onnx_maps).mean())
    return {
        "frames": int(len(inputs)),
        "max_abs_logit_diff": float(np.abs(torch_logits - onnx_logits).max()),
        "class_map_agreement": agreement,
        "min_agreement": MIN_AGREEMENT,
        "passed": agreement >= MIN_AGREEMENT,
    }
