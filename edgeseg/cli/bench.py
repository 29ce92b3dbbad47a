"""edgeseg bench: latency per stage and accuracy, every backend and precision in one run; or N streams batched."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edgeseg.arguments import count, non_negative
from edgeseg.cli.groups import (
    add_backend,
    add_frames,
    add_kind_flags,
    add_max_pixels,
    add_precision,
    add_sources,
    add_streams,
    add_threads,
    kind_options,
)

# --streams writes its one report with --json; the per-precision bench's other writers do not apply to it.
STREAMS_CONTRADICTIONS = tuple(
    ("streams", dest, "--streams writes its report with --json; --md and --plot are for the per-precision bench")
    for dest in ("md", "plot")
)


def cmd_bench(args: argparse.Namespace) -> int:
    from edgeseg.bench import BenchOptions, run_bench
    from edgeseg.bench.report import print_terminal, write_json, write_markdown, write_plot
    from edgeseg.fileio import check_writable

    if args.streams is not None:
        return cmd_bench_streams(args)
    outputs = [
        (Path(p), writer)
        for p, writer in ((args.json, write_json), (args.md, write_markdown), (args.plot, write_plot))
        if p
    ]
    for path, _ in outputs:
        check_writable(path)  # fail now, not after minutes of measuring
    options = BenchOptions(
        source=args.input,
        frames=args.frames,
        warmup=args.warmup,
        backend=args.backend,
        precisions=args.precision,
        accuracy_frames=args.accuracy_frames,
        baseline=not args.no_baseline,
        threads=args.threads,
        also=kind_options(args)["also"],
    )
    report = run_bench(Path(args.bundle), options).to_dict()
    print_terminal(report)
    for path, writer in outputs:
        writer(report, path)
        print(f"wrote {path}")
    return 0


def cmd_bench_streams(args: argparse.Namespace) -> int:
    from edgeseg.bench.report import write_json
    from edgeseg.bench.streams import run_stream_bench, stream_table
    from edgeseg.fileio import check_writable

    if args.json:
        check_writable(Path(args.json))
    precision = "best" if args.precision == "all" else args.precision
    report = run_stream_bench(Path(args.bundle), args.streams, args.frames, backend=args.backend, precision=precision)
    print(stream_table(report))
    if args.json:
        write_json(report.to_dict(), Path(args.json))
        print(f"wrote {args.json}")
    return 0


def add_bench(verbs: Any) -> None:
    from edgeseg.bench import DEFAULT_SOURCE

    bench = verbs.add_parser(
        "bench", help="latency percentiles per stage, every precision side by side with its accuracy"
    )
    bench.add_argument("bundle")
    add_sources(bench, "frames to benchmark on (default: synthetic driving at 1280x720)", default=DEFAULT_SOURCE)
    add_frames(bench, 200, "measured frames per row (default 200)")
    bench.add_argument("--warmup", type=non_negative, default=20, help="discarded warm-up runs (default 20)")
    add_backend(bench)
    add_precision(bench, "all", listed=True)
    bench.add_argument("--accuracy-frames", type=count, default=32, help="frames for agreement and mIoU (default 32)")
    bench.add_argument("--no-baseline", action="store_true", help="skip the PyTorch-eager baseline row")
    add_streams(
        bench,
        "instead: N synthetic 720p streams in one batched run against N separate runs (--frames per stream)",
        low=2,
    )
    add_threads(bench)
    bench.add_argument("--json", help="write the full report as JSON")
    bench.add_argument("--md", help="write a Markdown report")
    bench.add_argument("--plot", help="write a PNG: latency distribution per row, accuracy against latency")
    add_max_pixels(bench)
    add_kind_flags(bench, ("also",))
    bench.set_defaults(handler=cmd_bench, contradictions=STREAMS_CONTRADICTIONS)
