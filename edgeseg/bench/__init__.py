"""`edgeseg bench`: every backend x precision of a bundle, engine-only and end-to-end, with accuracy, in one run."""

from edgeseg.bench.bench import run_bench
from edgeseg.bench.rows import DEFAULT_SOURCE, BenchOptions, BenchReport, Row

__all__ = ["DEFAULT_SOURCE", "BenchOptions", "BenchReport", "Row", "run_bench"]
