"""What every scorer gives: `edgeseg eval`'s figures for its kind of bundle, and `edgeseg info`'s columns for them.

A scorer is to eval and info what a head is to the runtime and a profile to calibration: the one part of its layer
that knows a bundle's output kind. The registry (registry.py) picks it from the manifest's output kind, once.

  evaluate(bundle, data, ...)  run the bundle over labelled frames: Scores (`report()` the table, `to_dict()` --json)
  output_line(bundle)          info's line describing the graph's outputs
  agreement_columns, accuracy_columns, fidelity_cells(fidelity)
                               info's fidelity table: how a variant agrees with FP32, and what it scores
  calibration_figures(calibration)
                               what FP32 scored on the held-out frames when the bundle was calibrated
  parity_key, parity_figures(parity)
                               how the ONNX matched PyTorch at export (the parity section holds parity_key)
"""

from __future__ import annotations

from typing import Any, Protocol

from edgeseg.bundle import Bundle


class Scores(Protocol):
    """One eval's figures."""

    def report(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


class Scorer(Protocol):
    kinds: tuple[str, ...]  # the manifest output kinds it scores
    agreement_columns: tuple[str, ...]
    accuracy_columns: tuple[str, ...]

    def evaluate(self, bundle: Bundle, data: str, backend: str, precision: str, frames: int | None,
                 progress: bool) -> Scores: ...  # fmt: skip

    def output_line(self, bundle: Bundle) -> str: ...

    def fidelity_cells(self, fidelity: dict[str, Any]) -> list[str]: ...

    def calibration_figures(self, calibration: dict[str, Any]) -> str: ...

    parity_key: str

    def parity_figures(self, parity: dict[str, Any]) -> str: ...


class FiguresDict(dict):
    """A detector's eval figures: the dict --json writes, with the table that shows them (`report`)."""

    def report(self) -> str:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return dict(self)
