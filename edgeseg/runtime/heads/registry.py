"""The heads by the manifest's output kind: the one place the runtime decides what kind of model a bundle holds."""

from __future__ import annotations

from typing import Any

from edgeseg.bundle import Bundle
from edgeseg.runtime.heads.base import Head
from edgeseg.runtime.heads.instances import InstanceHead
from edgeseg.runtime.heads.keypoints import KeypointHead
from edgeseg.runtime.heads.semantic import SemanticHead

HEADS: dict[str, type[Head]] = {
    kind: head for head in (SemanticHead, InstanceHead, KeypointHead) for kind in head.kinds
}


def head_class(bundle: Bundle) -> type[Head]:
    """The head for a bundle's output kind (the manifest's output.kind, checked against OUTPUT_KINDS on load)."""
    return HEADS[bundle.output.kind]


def check_run_options(bundle: Bundle, options: Any) -> None:
    """The run flags for `bundle` and its --also bundle, before any frame is read: an --also bundle that cannot be
    loaded, or a kind-specific flag neither bundle's kind takes (--score-threshold: an instance bundle's, first or
    second), is one line."""
    also = getattr(options, "also", None)
    head_class(bundle).check_options(bundle, options, head_class(Bundle.load(also)) if also is not None else None)


def head_for(bundle: Bundle, options: Any = None) -> Head:
    """A bundle's head, drawing with `options` (DrawOptions, or run's RunOptions; defaults where None)."""
    return head_class(bundle)(bundle, options)
