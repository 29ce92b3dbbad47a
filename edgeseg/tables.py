"""Plain-text tables and summaries for the terminal (no dependency beyond the standard library)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def printable(text: str) -> str:
    """Text from a file (class names, paths) made safe for a terminal: control characters and escape
    sequences are shown as escapes (\\x1b, \\n), so a manifest cannot move the cursor or recolour the screen."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(text))


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[printable(h) for h in headers]] + [[printable(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule] + [line(r) for r in cells[1:]])


def stage_table(stages: dict[str, dict[str, float]]) -> str:
    order = ["capture", "preprocess", "infer", "postprocess", "overlay", "sink", "latency"]
    names = [s for s in order if s in stages] + [s for s in stages if s not in order]
    rows = [
        [
            name,
            f"{stages[name]['mean_ms']:.2f}",
            f"{stages[name]['p50_ms']:.2f}",
            f"{stages[name]['p90_ms']:.2f}",
            f"{stages[name]['p99_ms']:.2f}",
            f"{stages[name]['max_ms']:.2f}",
        ]
        for name in names
    ]
    return format_table(["stage (ms)", "mean", "p50", "p90", "p99", "max"], rows)
