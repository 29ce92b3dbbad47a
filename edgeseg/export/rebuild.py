"""The PyTorch model a bundle was exported from, built again: for bench's baseline row and deploy's re-exports.

A bundle remembers its model by name (a zoo entry or package.module:function), options and weights
file. That is the very model only when the weights come from a file that is still there, or from a
function that builds the same weights at every call.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from typing import Any

from edgeseg.bundle import Bundle
from edgeseg.errors import EdgesegError
from edgeseg.export.options import ExportOptions


def why_not_rebuildable(bundle: Bundle) -> str | None:
    """Why the bundle's PyTorch model cannot be built again from what the bundle records, or None."""
    model_info = bundle.manifest["model"]
    if importlib.util.find_spec("torch") is None:
        return "torch is not installed (pip install 'edgeseg[export]')"
    if model_info.get("source") not in ("zoo", "module"):
        return "the bundle was imported from ONNX: there is no PyTorch model to build again"
    weights = (model_info.get("weights") or {}).get("path")
    if model_info.get("source") == "zoo" and not weights:
        return "the bundle was exported without weights: PyTorch would build other random weights"
    if weights and not Path(weights).is_file():
        return f"the weights the bundle was exported from ({weights}) are not here"
    return None


def export_options_of(bundle: Bundle, **changes: Any) -> ExportOptions:
    """The options the bundle was exported with, as far as its manifest records them, with `changes` applied."""
    model_info, contract = bundle.manifest["model"], bundle.input
    weights = (model_info.get("weights") or {}).get("path")
    options = ExportOptions(
        size=tuple(contract.size),
        classes=bundle.classes,
        weights=Path(weights) if weights else None,
        opset=bundle.select("onnx", "fp32", targets=("any",)).extra.get("opset") or 17,
        mean=tuple(contract.mean),
        std=tuple(contract.std),
        model_options=model_info.get("options") or {},
        progress=False,
    )
    return dataclasses.replace(options, **changes)


def rebuild_model(bundle: Bundle) -> Any:
    """The bundle's PyTorch model with the weights it was exported with; one line where that cannot be."""
    from edgeseg.export.torch_export import build, with_defaults

    reason = why_not_rebuildable(bundle)
    if reason:
        raise EdgesegError(reason)
    name = bundle.manifest["model"]["name"]
    options = with_defaults(name, export_options_of(bundle))
    model, _, _ = build(name, options)
    if bundle.manifest["model"].get("source") == "module" and options.weights is None:
        # The function is all the bundle remembers: if it initialises randomly, a rebuild is another model.
        again, _, _ = build(name, options)
        if not same_parameters(model, again):
            raise EdgesegError(
                f"{name} builds different weights at each call (random initialisation): export with --weights so "
                "the model the bundle holds can be built again"
            )
    return model


def same_parameters(first: Any, second: Any) -> bool:
    """Whether two builds of a torch module hold the same weights and buffers."""
    import torch

    a, b = first.state_dict(), second.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)
