"""One head per output kind: a graph's outputs decoded into a typed answer at frame resolution, drawn, and written
by --save-mask. The registry (registry.py) is the one place the runtime reads a bundle's output kind."""

from edgeseg.runtime.heads.base import DrawOptions, Head, Instance, Keypoint, Result
from edgeseg.runtime.heads.registry import HEADS, check_run_options, head_class, head_for

__all__ = [
    "HEADS",
    "DrawOptions",
    "Head",
    "Instance",
    "Keypoint",
    "Result",
    "check_run_options",
    "head_class",
    "head_for",
]
