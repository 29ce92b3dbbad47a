"""One picture for several streams, for an output they share (the live view, a window)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from edgeseg.runtime.frames import Prediction
from edgeseg.runtime.overlay import draw_text
from edgeseg.runtime.sinks.base import Sink


class TiledSink(Sink):
    """Several streams in one picture for a shared sink (the live view, a window): a grid, a label per tile."""

    def __init__(self, inner: Sink, names: list[str], tile_width: int = 640):
        self.inner, self.names, self.tile_width = inner, names, tile_width
        self.columns = int(np.ceil(np.sqrt(len(names))))
        self.rows = int(np.ceil(len(names) / self.columns))
        self.mosaic: np.ndarray | None = None
        self.tile_height = 0

    def show_stats(self, stats: Any) -> None:
        self.inner.show_stats(stats)

    @property
    def stop_requested(self) -> bool:  # type: ignore[override]
        return self.inner.stop_requested

    def write(self, image: np.ndarray, prediction: Prediction) -> None:
        if self.mosaic is None:  # the first frame's aspect decides the tile size
            self.tile_height = round(image.shape[0] * self.tile_width / image.shape[1])
            self.mosaic = np.zeros((self.tile_height * self.rows, self.tile_width * self.columns, 3), np.uint8)
        stream = prediction.frame.stream
        row, column = divmod(stream, self.columns)
        top, left = row * self.tile_height, column * self.tile_width
        tile = self.mosaic[top : top + self.tile_height, left : left + self.tile_width]
        tile[:] = cv2.resize(image, (self.tile_width, self.tile_height), interpolation=cv2.INTER_AREA)
        draw_text(tile, f"{stream}: {self.names[stream]}", (8, self.tile_height - 10))
        self.inner.write(self.mosaic, prediction)

    def close(self) -> None:
        self.inner.close()

    def describe(self) -> str:
        return f"{self.inner.describe()} (tiled, {len(self.names)} streams)"
