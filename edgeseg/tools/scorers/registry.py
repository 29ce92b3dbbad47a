"""The scorers by the manifest's output kind: the one place eval and info decide what kind of model a bundle holds."""

from __future__ import annotations

from edgeseg.bundle import Bundle
from edgeseg.tools.scorers.base import Scorer
from edgeseg.tools.scorers.instances import InstanceScorer
from edgeseg.tools.scorers.keypoints import KeypointScorer
from edgeseg.tools.scorers.semantic import SemanticScorer

SCORERS: dict[str, Scorer] = {
    kind: scorer for scorer in (SemanticScorer(), InstanceScorer(), KeypointScorer()) for kind in scorer.kinds
}


def scorer_for(bundle: Bundle) -> Scorer:
    """The scorer for a bundle's output kind (the manifest's output.kind, checked against OUTPUT_KINDS on load)."""
    return SCORERS[bundle.output.kind]
