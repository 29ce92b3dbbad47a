"""What every head keeps: a graph's outputs in, a typed answer at the frame's resolution out, drawn as `run` draws it.

A head is the only part of the runtime that knows a bundle's output kind. The loop (capture, infer, draw, write)
and the Python API ask it to

  infer(backend, batch)        run the graph: the first output, or every output by name (a detector)
  decode(outputs, frame_sizes) one Result per frame, at that frame's resolution
  draw(image, result)          the picture `run` writes
  mask_plane(result)           what --save-mask writes as PNG (class or instance ids), or None
  records(result)              what --save-mask writes as JSON (detections, points), or None

and refuses the run flags that are not its kind's (`check_options`). A second bundle of any kind (`run --also B2`)
answers the same frame; its Result is the first one's `under`: drawn first, with the first drawn over it, and its
typed answer and saved records kept beside the first one's. The registry in heads/__init__.py picks the
head from the manifest's output kind, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeseg.bundle import Bundle
from edgeseg.errors import EdgesegError
from edgeseg.runtime.backends.base import Backend
from edgeseg.runtime.frames import Frame, Prediction


@dataclass
class DrawOptions:
    """How a head draws its answer (`run`'s --alpha, --filter-mode, --visualize, --no-legend, --score-threshold).
    `run`'s RunOptions carries the same attributes, so either serves a head."""

    alpha: float = 0.5
    filter_mode: str = "linear"
    visualize: str = "overlay"
    legend: bool = True
    score_threshold: float | None = None


@dataclass(frozen=True)
class Instance:
    """One detection of an instance bundle, at the frame's resolution."""

    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in frame pixels
    score: float
    class_name: str
    class_index: int
    mask: np.ndarray  # bool HxW: the pixels drawn as this instance (none taken by a higher-scored one)


@dataclass(frozen=True)
class Keypoint:
    """One confident peak of a keypoint bundle, at the frame's resolution."""

    name: str
    x: float
    y: float
    confidence: float
    object: int  # which object it belongs to (points joined by the skeleton share one), 0 first


@dataclass
class Result:
    """One frame's answer, decoded by its bundle's head: what `edgeseg.load(B)(frame)` returns.

    `.class_map`, `.instances` and `.keypoints` are the kind's typed answer (None for the other kinds); `.plot(frame)`
    draws it as `run` does. `answer` is the head's own form (class maps, detections, peaks), `under` the answer of a
    second bundle drawn beneath this one (`run --also`).
    """

    head: Head
    frame_size: tuple[int, int]  # (height, width) of the frame it answers
    answer: Any
    under: Result | None = None
    cache: dict[str, Any] = field(default_factory=dict, repr=False)  # what a head derives once, on first use

    @property
    def class_map(self) -> np.ndarray | None:
        """uint8 HxW class ids at the frame's size (semantic bundles, or one drawn under); else None."""
        return self.head.class_map(self)

    @property
    def instances(self) -> list[Instance] | None:
        return self.head.instances(self)

    @property
    def keypoints(self) -> list[Keypoint] | None:
        return self.head.keypoints(self)

    def plot(self, frame: np.ndarray) -> np.ndarray:
        """The frame drawn as `run` draws it (a new array: the head's drawing buffers are reused frame to frame)."""
        return np.array(self.head.draw(frame, self), copy=True)

    def records(self) -> dict[str, Any] | None:
        return self.head.records(self)

    def mask_plane(self) -> np.ndarray | None:
        return self.head.mask_plane(self)


class Head:
    """Base of the per-kind heads. A subclass sets `kinds` and implements decode and draw, and the typed answer and
    --save-mask outputs its kind has."""

    kinds: tuple[str, ...] = ()
    what = "this bundle"  # how refusals name the kind
    all_outputs = False  # True: the graph's outputs are read by name (a detector's five), not only the first
    batches = True  # False: its graph answers one frame per call (a detector's outputs have no batch axis)
    takes: tuple[str, ...] = ()  # the kind-specific run flags it takes: score_threshold

    def __init__(self, bundle: Bundle, options: Any = None):
        self.bundle = bundle
        self.options = options if options is not None else DrawOptions()

    # -- run flags -------------------------------------------------------------------------------
    @classmethod
    def check_options(cls, bundle: Bundle, options: Any, also: type[Head] | None = None) -> None:
        """Refuse, in one line, a kind-specific run flag that neither this kind nor the --also bundle's (`also`, its
        head) takes (`takes`). heads.check_run_options calls it with both."""
        taken = cls.takes + (also.takes if also is not None else ())
        if "score_threshold" not in taken and getattr(options, "score_threshold", None) is not None:
            raise EdgesegError(cls.score_threshold_refusal(bundle))

    @classmethod
    def score_threshold_refusal(cls, bundle: Bundle) -> str:
        return f"--score-threshold is for instance bundles (Mask R-CNN); {bundle.root} is {cls.what}"

    # -- one batch -------------------------------------------------------------------------------
    def infer(self, backend: Backend, batch: np.ndarray) -> Any:
        """The graph's answer for a batch: its first output, or every output by name where the head reads them."""
        return backend.infer_outputs(batch) if self.all_outputs else backend.infer(batch)

    def decode(self, outputs: Any, frame_sizes: list[tuple[int, int]]) -> list[Result]:
        raise NotImplementedError

    def draw(self, image: np.ndarray, result: Result, readout: str = "") -> np.ndarray:
        """The frame with the answer drawn (over the --also bundle's: `under_drawn`); `image` is left as it is. The
        returned array may be a buffer the next draw reuses."""
        raise NotImplementedError

    @staticmethod
    def under_drawn(image: np.ndarray, result: Result) -> np.ndarray:
        """The frame with the --also bundle's answer drawn, for this head to draw over; the frame itself without
        one. Either may be a buffer the next frame reuses: a head drawing in place copies `image` only."""
        return result.under.head.draw(image, result.under) if result.under is not None else image

    # -- the typed answer: each kind gives its own; the others are the --also bundle's, else None -----
    def class_map(self, result: Result) -> np.ndarray | None:
        return result.under.class_map if result.under is not None else None

    def instances(self, result: Result) -> list[Instance] | None:
        return result.under.instances if result.under is not None else None

    def keypoints(self, result: Result) -> list[Keypoint] | None:
        return result.under.keypoints if result.under is not None else None

    # -- --save-mask -----------------------------------------------------------------------------
    def mask_plane(self, result: Result) -> np.ndarray | None:
        """The ids --save-mask writes as PNG (the sink resizes it to the frame, nearest), or None."""
        return result.under.mask_plane() if result.under is not None else None

    def records(self, result: Result) -> dict[str, Any] | None:
        """What --save-mask writes as JSON beside the PNG, or None; the --also bundle's under "also"."""
        return self.under_records(result) or None

    @staticmethod
    def under_records(result: Result) -> dict[str, Any]:
        """{"also": the --also bundle's records} where it has any, for a head to add its own beside (two bundles of
        one kind would otherwise write the same key)."""
        records = result.under.records() if result.under is not None else None
        return {"also": records} if records else {}

    def prediction(self, frame: Frame, result: Result, save_mask: bool = False) -> Prediction:
        """What the sinks take for a frame: its --save-mask plane and records, and the answer itself."""
        records = self.records(result) if save_mask else None
        stored = Frame(frame.index, frame.image, frame.timestamp, stream=frame.stream, name=frame.name)
        return Prediction(stored, self.mask_plane(result), None, records, result)
