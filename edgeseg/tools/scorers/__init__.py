"""One scorer per output kind: `edgeseg eval`'s figures (mIoU, COCO AP, PCK) and `edgeseg info`'s columns for them.
The registry (registry.py) is the one place eval and info read a bundle's output kind."""

from edgeseg.tools.scorers.base import Scorer, Scores
from edgeseg.tools.scorers.registry import SCORERS, scorer_for

__all__ = ["SCORERS", "Scorer", "Scores", "scorer_for"]
