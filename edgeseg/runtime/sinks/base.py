"""The contract every output keeps: write each drawn frame, close at the end."""

from __future__ import annotations

# typing's forms: the alias below is evaluated, and Python 3.8 cannot subscript the builtins
from typing import Any, Callable, Dict

import numpy as np

from edgeseg.runtime.frames import Prediction

LiveStats = Callable[[], Dict[str, Any]]  # the running pipeline's FPS, stage times and stream gaps


class Sink:
    stop_requested = False

    def show_stats(self, stats: LiveStats) -> None:
        """Given the figures of the pipeline that feeds this sink, for sinks that show them (the live view)."""

    def write(self, image: np.ndarray, prediction: Prediction) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return type(self).__name__


class NullSink(Sink):
    def write(self, image: np.ndarray, prediction: Prediction) -> None:
        pass

    def describe(self) -> str:
        return "none"
