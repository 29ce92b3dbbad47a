"""`-o display://0`: an OpenCV window; q or Esc stops the run."""

from __future__ import annotations

import os

import cv2
import numpy as np

from edgeseg.errors import EdgesegError
from edgeseg.redact import redact
from edgeseg.runtime.frames import Prediction
from edgeseg.runtime.sinks.base import Sink


class DisplaySink(Sink):
    def __init__(self, uri: str):
        if os.name == "posix" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise EdgesegError(
                f"'{redact(uri)}' needs a display, and DISPLAY is not set; write a file instead (-o out.mp4) or use "
                "-o none"
            )
        self.window = f"edgeseg {redact(uri)}"

    def write(self, image: np.ndarray, prediction: Prediction) -> None:
        cv2.imshow(self.window, image)
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.stop_requested = True

    def close(self) -> None:
        cv2.destroyWindow(self.window)
