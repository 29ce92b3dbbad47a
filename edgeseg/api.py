"""The Python API, as `edgeseg.load` and `edgeseg.stream`: a bundle's model as a callable, and a running `run` as an
iterator. The runtime (numpy, OpenCV, a backend) is imported on the first call, so `import edgeseg` stays as light
as the CLI's start; nothing here imports torch or onnx.

    import edgeseg
    model = edgeseg.load("bundle")                    # what `run` picks: --backend auto --precision best
    result = model(frame_bgr)                         # .class_map / .instances / .keypoints, .plot(frame)
    for frame, result in edgeseg.stream(model, "video.mp4", outputs=["out.mp4"]):
        ...
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from edgeseg.runtime.heads import Result
    from edgeseg.runtime.model import Model


def load(bundle: str | Path, backend: str = "auto", precision: str = "best", threads: int | None = None,
         score_threshold: float | None = None) -> Model:  # fmt: skip
    """A bundle's model on the backend and artifact `edgeseg run` picks for the same --backend and --precision.

    `model(frame)` answers one uint8 BGR frame (HxWx3) with a Result; `model.predict([f1, f2])` a list of them.
    `score_threshold` is the instance bundles' (default 0.5). Close it with `model.close()` or a `with` block.
    """
    from edgeseg.runtime.model import Model

    return Model.open(bundle, backend, precision, threads, score_threshold)


def stream(model: Model, sources: str | list[str], outputs: list[str] | None = None, frames: int | None = None,
           save_mask: bool = False) -> Iterator[tuple[np.ndarray, Result]]:  # fmt: skip
    """`edgeseg run` with the model's bundle, backend and precision, as an iterator of (frame, Result): every frame
    of a file or folder, the newest of a live source; `outputs` are `run -o` URIs, written as `run` writes them."""
    from edgeseg.runtime.model import stream as run_stream

    return run_stream(model, sources, outputs, frames, save_mask)
