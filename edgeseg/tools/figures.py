"""Figures read from a manifest or measured by eval, formatted for the terminal: '-' when absent, '?' when not a
number (a hand-edited manifest may hold anything)."""

from __future__ import annotations


def figure(value: object, spec: str, scale: float = 1.0) -> str:
    """A measured figure from the manifest, formatted; '-' when absent, '?' when it is not a number."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "?"
    value = value * scale if scale != 1.0 else value
    if spec.endswith("d"):  # a count: a hand-edited manifest may hold 3.0 (shown as 3) or 2.5 (not a count)
        if isinstance(value, float) and not value.is_integer():
            return "?"
        value = int(value)
    return format(value, spec)


def percent(value: object) -> str:
    return figure(value, ".2f", 100.0) + (
        "%" if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
    )


def points(change: float | None) -> str:
    """A change of a 0..1 score in points (hundredths)."""
    return figure(change, "+.2f", 100.0) + (" pt" if change is not None else "")
