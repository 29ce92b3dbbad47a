"""A bundle's graph on a backend, answering through its head, on the caller's thread: the Python API's model, and
what bench, eval and calibration measure. (`run` and `edgeseg.stream` run the same head in runtime/pipeline.py.)

`pick_backend` is the one choice of artifact for `run`, `--also` and the Python API: open_backend's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.bundle import Artifact, Bundle
from edgeseg.runtime.backends import Backend, ONNXRuntimeBackend, TritonOptions, open_backend
from edgeseg.runtime.figures import StageTimes
from edgeseg.runtime.heads import Head, Result, head_for
from edgeseg.runtime.heads.keypoints import KeypointSpec
from edgeseg.runtime.pipeline import HeadModel
from edgeseg.runtime.tensors import frames_to_input

# The backend and artifact a run takes (not yet open), for `run`, `--also` and the Python API alike: open_backend's
# choice, which on ONNX Runtime's CPU provider passes over an FP16 graph as it does an INT8 that buys nothing.
pick_backend = open_backend


class BundleModel:
    """A bundle's graph on a backend, answering through the head of its kind. It opens the backend it is given
    and closes it with `close()`."""

    what = "this bundle"  # how refusals name the kind
    infer_stage = "infer"  # the stage its inference is timed as

    def __init__(self, bundle: Bundle, backend: Backend, options: Any = None):
        self.head: Head = head_for(bundle, options)
        self.bundle, self.backend = bundle, backend.open()
        self.name = backend.artifact_name

    @classmethod
    def for_bundle(cls, bundle: Bundle, backend: str = "auto", precision: str = "best", threads: int | None = None,
                   dla_core: int | None = None, options: Any = None,
                   triton: TritonOptions | None = None) -> Any:  # fmt: skip
        """The artifact `edgeseg run` would pick for this backend and precision."""
        return cls(bundle, pick_backend(bundle, backend, precision, threads, triton, dla_core), options)

    @classmethod
    def for_file(cls, bundle: Bundle, path: Path, threads: int | None = None) -> Any:
        """An ONNX file of this bundle's graph on ONNX Runtime's CPU provider (a variant calibrate measures)."""
        return cls(bundle, ONNXRuntimeBackend(path, providers=["CPUExecutionProvider"], threads=threads))

    @property
    def artifact(self) -> Artifact:
        """The bundle's artifact this model runs."""
        return next(a for a in self.bundle.artifacts if Path(a.path).name == self.name)

    def close(self) -> None:
        self.backend.close()

    def model_input(self, image: np.ndarray) -> np.ndarray:
        """The graph input for one frame of any size: resized to the model's, then as the contract says."""
        return frames_to_input([image], self.bundle.input)

    def answer(self, image: np.ndarray, times: StageTimes, feed: np.ndarray | None = None,
               frame_size: tuple[int, int] | None = None) -> Result:  # fmt: skip
        """One frame's Result at `frame_size` (the image's own by default); `feed` is its graph input where the
        caller made it already."""
        if feed is None:
            with times.stage("preprocess"):
                feed = self.model_input(image)
        with times.stage(self.infer_stage):
            outputs = self.head.infer(self.backend, feed)
        with times.stage("postprocess"):
            return self.head.decode(outputs, [frame_size or image.shape[:2]])[0]

    def answers(self, images: list[np.ndarray]) -> list[Result]:
        """Results for several frames, batched as the run loop batches them (HeadModel.results): one call on a dynamic
        batch, calls of a fixed batch (the last padded), one call per frame for a detector."""
        tensors = [self.model_input(image) for image in images]
        sizes = [(image.shape[0], image.shape[1]) for image in images]
        return HeadModel(self.head, self.backend).results(tensors, sizes, StageTimes())

    def detect(self, image: np.ndarray, times: StageTimes, feed: np.ndarray | None = None) -> Any:
        """The head's own answer for one frame (detections, peaks, class maps), as bench and calibration use it."""
        return self.answer(image, times, feed).answer


class InstanceDetector(BundleModel):
    """An instance graph: frames in, detections at frame resolution out."""

    what = "an instance bundle"


class KeypointDetector(BundleModel):
    """A keypoint graph: frames in, (K, peaks, 3) of x, y in frame pixels and confidence out."""

    what = "a keypoint bundle"

    @property
    def spec(self) -> KeypointSpec:
        return self.head.spec
