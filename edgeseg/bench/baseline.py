"""The baseline row: what a user writes without edgeseg (the model in PyTorch eager float32 and a plain OpenCV loop).

It is measured as one more row: its model call joins the rows' interleaved engine timing, and its loop joins their
rounds, so a busy moment of a shared machine falls on it and on them alike. A semantic bundle's baseline is the model
on a normalised tensor, its argmax coloured and blended with cv2.addWeighted; an instance or keypoint bundle's is the
model as its export wrapped it (uint8 frames in, the graph's outputs out), its answer drawn as `run` draws it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeseg.bundle import Bundle
from edgeseg.errors import EdgesegError
from edgeseg.runtime.heads import head_for
from edgeseg.runtime.heads.semantic import ClassMaps
from edgeseg.runtime.tensors import frames_to_input

BASELINE_KEY = ("pytorch", "fp32")
BASELINE_NAME = "pytorch eager fp32 (baseline)"


class BaselineLoop:
    """A model in PyTorch eager with the loop a user writes around it: `step` one frame (infer and draw)."""

    artifact = ""

    def infer_call(self, frame: np.ndarray) -> Callable[[], Any]:
        """The model on one prepared frame: the engine-only figure of this row."""
        raise NotImplementedError

    def answer(self, frame: np.ndarray) -> Any:
        """The model's answer for one frame, in the form the bundle's head answers (the accuracy columns')."""
        raise NotImplementedError

    def step(self, frame: np.ndarray) -> None:
        raise NotImplementedError

    def loop_fps(self, timing_source: str, frames: int) -> float:
        """The loop a user writes: read a frame with OpenCV, run the model, draw its answer."""
        capture = cv2.VideoCapture(timing_source)
        count = 0
        start = time.perf_counter()
        try:
            while count < frames:
                ok, frame = capture.read()
                if not ok:
                    break
                self.step(frame)
                count += 1
        finally:
            capture.release()
        if count == 0:
            raise EdgesegError(f"the baseline loop read no frame of {timing_source}")
        return count / (time.perf_counter() - start)


class Baseline(BaselineLoop):
    """A semantic bundle's PyTorch model in eager mode: a normalised tensor in, the argmax coloured and blended."""

    def __init__(self, bundle: Bundle, model: Any):
        import torch

        self.torch, self.model = torch, model
        self.artifact = f"{bundle.manifest['model']['name']} (torch {torch.__version__})"
        self.height, self.width = bundle.input.size
        self.mean = np.asarray(bundle.input.mean, np.float32)
        self.std = np.asarray(bundle.input.std, np.float32)
        self.palette = np.array([c.color[::-1] for c in bundle.classes], np.uint8)
        from edgeseg.export.outputs import threshold_logit

        self.threshold_logit = threshold_logit(bundle.manifest["model"])  # a binary model's --threshold, as exported

    @classmethod
    def of(cls, bundle: Bundle) -> tuple[Baseline | None, str]:
        """The baseline, or None and why there is none (no torch, no weights, a function that initialises randomly)."""
        from edgeseg.export.rebuild import rebuild_model, why_not_rebuildable

        reason = why_not_rebuildable(bundle)
        if reason:
            return None, reason
        try:
            return cls(bundle, rebuild_model(bundle)), ""
        except EdgesegError as exc:
            return None, str(exc)

    def to_tensor(self, frame: np.ndarray) -> Any:
        resized = cv2.resize(frame, (self.width, self.height))
        rgb = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        return self.torch.from_numpy(((rgb - self.mean) / self.std).transpose(2, 0, 1)[None].copy())

    def infer_call(self, frame: np.ndarray) -> Callable[[], Any]:
        example = self.to_tensor(frame)

        def call() -> Any:
            with self.torch.no_grad():
                return self.model(example)

        return call

    def segment(self, frame: np.ndarray) -> np.ndarray:
        from edgeseg.export.wrapper import select_logits

        with self.torch.no_grad():
            logits = select_logits(self.model(self.to_tensor(frame)), self.threshold_logit)
            return logits.argmax(1)[0].numpy().astype(np.uint8)

    def answer(self, frame: np.ndarray) -> ClassMaps:
        return ClassMaps(self.segment(frame))

    def step(self, frame: np.ndarray) -> None:
        """Colour the mask at frame size, blend."""
        mask = cv2.resize(self.segment(frame), frame.shape[1::-1], interpolation=cv2.INTER_NEAREST)
        cv2.addWeighted(frame, 0.5, self.palette[mask], 0.5, 0.0)


class GraphBaseline(BaselineLoop):
    """An instance or keypoint bundle's PyTorch model in eager mode, wrapped as its export wraps it: uint8 frames in,
    the graph's outputs out, decoded and drawn by the bundle's head."""

    def __init__(self, bundle: Bundle, graph: Any):
        import torch

        self.torch, self.graph, self.bundle = torch, graph, bundle
        self.head = head_for(bundle)
        self.names = (bundle.manifest.get("instances") or {}).get("outputs")  # a detector's outputs, by name
        self.artifact = f"{bundle.manifest['model']['name']} (torch {torch.__version__})"

    @classmethod
    def of(cls, bundle: Bundle, graph_of: Callable[[Bundle], Any]) -> tuple[GraphBaseline | None, str]:
        """The baseline of the graph `graph_of` builds (the kind's model wrapped as its export wraps it), or None and
        why there is none (no torch, no weights file)."""
        reason = why_not_rebuildable(bundle)
        if reason:
            return None, reason
        try:
            return cls(bundle, graph_of(bundle)), ""
        except EdgesegError as exc:
            return None, str(exc)

    def outputs(self, example: Any) -> Any:
        with self.torch.no_grad():
            answer = self.graph(example)
        if isinstance(answer, (tuple, list)):
            return {name: tensor.numpy() for name, tensor in zip(self.names, answer)}
        return answer.numpy()

    def infer_call(self, frame: np.ndarray) -> Callable[[], Any]:
        example = self.torch.from_numpy(frames_to_input([frame], self.bundle.input))
        return lambda: self.outputs(example)

    def result(self, frame: np.ndarray) -> Any:
        example = self.torch.from_numpy(frames_to_input([frame], self.bundle.input))
        return self.head.decode(self.outputs(example), [frame.shape[:2]])[0]

    def answer(self, frame: np.ndarray) -> Any:
        return self.result(frame).answer

    def step(self, frame: np.ndarray) -> None:
        self.head.draw(frame, self.result(frame))


def why_not_rebuildable(bundle: Bundle) -> str | None:
    """Why an instance or keypoint bundle's PyTorch model cannot be built again, or None: its export records the zoo
    model and the weights file it loaded."""
    import importlib.util

    model_info = bundle.manifest["model"]
    if importlib.util.find_spec("torch") is None:
        return "torch is not installed (pip install 'edgeseg[export]')"
    weights = weights_path(model_info)
    if model_info.get("source") != "zoo" or not weights:
        return "the bundle was exported without weights: PyTorch would build other random weights"
    if not Path(weights).is_file():
        return f"the weights the bundle was exported from ({weights}) are not here"
    return None


def weights_path(model_info: dict[str, Any]) -> str | None:
    """The weights file a bundle's model section names (a path, or a record with one)."""
    weights = model_info.get("weights")
    return weights.get("path") if isinstance(weights, dict) else weights


def rebuilt_model(bundle: Bundle, classes: int, **build_options: Any) -> Any:
    """The bundle's zoo model with the weights it was exported with, in eval mode (its kind's part wraps it as its
    export did)."""
    import torch

    from edgeseg.export.torch_export import apply_weights
    from edgeseg.models import build_model

    info = bundle.manifest["model"]
    weights = Path(weights_path(info) or "")
    checkpoint = torch.load(str(weights), map_location="cpu", weights_only=True)
    model = build_model(info["name"], classes, **build_options, **(info.get("options") or {}))
    apply_weights(model, checkpoint["state_dict"], weights, "the weights file changed since the bundle was exported")
    return model.eval()
