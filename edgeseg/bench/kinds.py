"""The bench's part per output kind, picked through the runtime's head registry: the one place bench decides what
kind of model a bundle holds."""

from __future__ import annotations

from edgeseg.bench.instances import InstanceKind
from edgeseg.bench.keypoints import KeypointKind
from edgeseg.bench.kind import BenchKind
from edgeseg.bench.semantic import SemanticKind
from edgeseg.bundle import Bundle
from edgeseg.runtime.heads import Head
from edgeseg.runtime.heads.instances import InstanceHead
from edgeseg.runtime.heads.keypoints import KeypointHead
from edgeseg.runtime.heads.semantic import SemanticHead

BENCH_KINDS: dict[type[Head], type[BenchKind]] = {
    SemanticHead: SemanticKind,
    InstanceHead: InstanceKind,
    KeypointHead: KeypointKind,
}


def bench_kind(bundle: Bundle) -> type[BenchKind]:
    """The bench's part for the bundle's kind: keyed by the head `run` gives it (head_class)."""
    from edgeseg.runtime.heads import head_class

    return BENCH_KINDS[head_class(bundle)]
