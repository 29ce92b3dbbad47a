"""The contract every inference backend keeps: open, specs, infer, close; usable as a context manager.

Modelled on Polygraphy's runners: the heavy library is imported when a backend opens, not before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeseg.errors import EdgesegError


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | None, ...]  # None marks a dynamic dimension
    dtype: np.dtype


class Backend:
    """Base contract. Subclasses implement `_open`, `_infer` and `_close`."""

    name = "backend"

    def __init__(self) -> None:
        self.is_open = False
        self.inputs: list[TensorSpec] = []
        self.outputs: list[TensorSpec] = []

    def open(self) -> Backend:
        if not self.is_open:
            self._open()
            self.is_open = True
        return self

    def close(self) -> None:
        if self.is_open:
            self._close()
            self.is_open = False

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch through the graph's single input; return its first output."""
        if not self.is_open:
            raise RuntimeError(f"{self.name} backend used before open()")
        return self._infer(batch)

    def infer_outputs(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run one batch; return every output by name (a detector's boxes, scores, classes, masks and count)."""
        if not self.is_open:
            raise RuntimeError(f"{self.name} backend used before open()")
        return self._infer_outputs(batch)

    @property
    def runs_on_cpu(self) -> bool:
        """True when inference shares the host's cores with capture and drawing."""
        return False

    def throughput_sessions(self) -> int:
        """How many sessions of this graph a pipeline reading files runs side by side, each on its own inference
        thread: one, unless running several is measured to give more frames per second (`replica` makes them)."""
        return 1

    def replica(self, sessions: int) -> Backend:
        """A new, unopened backend on the same artifact, as one of `sessions` running side by side."""
        raise NotImplementedError(f"the {self.name} backend runs one session")

    @property
    def batch_size(self) -> int:
        """Frames per infer call: the graph's fixed batch, or 1 for a dynamic batch."""
        first = self.inputs[0].shape[0] if self.inputs else None
        return first if isinstance(first, int) and first > 0 else 1

    def __enter__(self) -> Backend:
        return self.open()

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def describe(self) -> str:
        return self.name

    @property
    def artifact_name(self) -> str:
        """The file this backend runs, for reports; a remote backend names what it talks to."""
        return self.describe()

    def _open(self) -> None:
        raise NotImplementedError

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _infer_outputs(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        raise EdgesegError(f"the {self.name} backend returns a single output; run this bundle with onnxruntime or "
                           "tensorrt")  # fmt: skip

    def _close(self) -> None:
        pass
