"""The flags several verbs share, each added here once and parsed here into what the stage takes.

A verb's module calls `add_*` for the groups it needs; its handler turns the parsed namespace into the stage's
options with the matching parse function (`stream_options`, `view_access_of`, `overlay_options`, `kind_options`).
What a group imports from the runtime it imports when the parser is built, so `import edgeseg.cli` stays lean.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edgeseg.arguments import (
    MaxPixels,
    at_least,
    count,
    fraction,
    non_negative,
    parse_model_args,
    parse_size,
    pixel_count,
    positive_number,
    retries,
)
from edgeseg.fileio import DEFAULT_MAX_PIXELS

# Where a verb's own flags and a group's go: an ArgumentParser, or one of its titled argument groups.
Flags = Any
# --precision: which artifact a verb uses; bundle.BEST_PRECISION says what `best` picks. Each verb states its default.
PRECISION_CHOICES = ("best", "fp32", "fp16", "int8")
# Precisions a verb makes or measures (a comma list): the stage checks each name against what it can make.
PRECISION_LIST_HELP = (
    "all (every ONNX precision in the bundle) or a comma list of fp32, fp16, int8 (default: {default})"
)


# -- every verb --------------------------------------------------------------------------------
def add_verbose(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--verbose", action="store_true", help="also show what PyTorch's and ONNX Runtime's C++ code prints"
    )


def add_max_pixels(parser: Flags) -> None:
    side = int(DEFAULT_MAX_PIXELS**0.5)
    parser.add_argument(
        "--max-pixels", type=pixel_count, action=MaxPixels, default=DEFAULT_MAX_PIXELS, metavar="N|WxH",
        help=f"refuse images, labels and video frames larger than this, from their header, before decoding "
        f"(default {side}x{side}: a PNG of 1 MB can declare 32000x32000 pixels, 3 GB decoded)",
    )  # fmt: skip


# -- what runs the model -----------------------------------------------------------------------
def add_backend(parser: Flags) -> None:
    from edgeseg.runtime.backends import BACKENDS

    named = ", ".join(BACKENDS)

    def backend_name(text: str) -> str:
        # Checked at parse time, in one line, for every verb alike. A Triton URL passes: the server decides what runs.
        if text in BACKENDS or (text.startswith("triton://") and len(text) > len("triton://")):
            return text
        raise argparse.ArgumentTypeError(f"choose one of {named}, or triton://HOST:PORT/MODEL; not '{text}'")

    parser.add_argument(
        "--backend",
        type=backend_name,
        default="auto",
        metavar="BACKEND",
        help=f"inference backend: {named}, or triton://HOST:PORT/MODEL (default: auto: TensorRT when it can run the "
        "bundle here, else ONNX Runtime)",
    )


def add_precision(
    parser: Flags, default: str | None, *, listed: bool = False, choices: tuple[str, ...] = PRECISION_CHOICES,
    help: str | None = None,
) -> None:  # fmt: skip
    """--precision: the one artifact a verb uses (`choices`), or with `listed` the comma list of precisions it makes
    or measures (the stage checks each name; `help` says which it takes)."""
    from edgeseg.bundle import BEST_PRECISION

    if help is None and listed:
        help = PRECISION_LIST_HELP.format(default=default)
    elif help is None:
        *first, last = (BEST_PRECISION if c == "best" else c for c in choices)
        help = f"artifact precision: {', '.join(first)} or {last} (default: {default})"
    parser.add_argument("--precision", choices=None if listed else choices, default=default, help=help)


def add_threads(parser: Flags) -> None:
    parser.add_argument(
        "--threads",
        type=count,
        default=None,
        metavar="N",
        help="CPU threads for ONNX Runtime's inference, in one session (train: PyTorch's) (default: chosen for "
        "this machine; a recording run on the CPU gets two sessions side by side, each with half the cores)",
    )


def add_dla(parser: Flags, help: str, *, core: bool = True) -> None:
    """--dla CORE picks the DLA core an engine is built for or runs on; `core=False`: a switch (check: also check
    for the DLA, whichever core)."""
    kind = dict(type=non_negative, default=None, metavar="CORE") if core else dict(action="store_true")
    parser.add_argument("--dla", help=help, **kind)


# -- frames in ---------------------------------------------------------------------------------
def add_sources(
    parser: Flags, help: str, *, many: bool = False, required: bool = False, default: str | None = None
) -> None:
    """-i/--input: a source URI, or with `many` one per stream (repeat the flag)."""
    parser.add_argument(
        "-i", "--input", action="append" if many else "store", required=required, default=default, help=help
    )


def add_frames(parser: Flags, default: int | None, help: str) -> None:
    parser.add_argument("--frames", type=count, default=default, help=help)


def add_data(parser: Flags, help: str) -> None:
    """--data: the labelled (or calibration) frames a verb learns from or scores against."""
    parser.add_argument("--data", required=True, help=help)


def add_stream(parser: argparse.ArgumentParser) -> None:
    """How live streams (and a remote backend) are opened and kept alive: parsed by stream_options, triton_options."""
    group = parser.add_argument_group("streams", "how network streams and cameras are opened and kept alive")
    group.add_argument(
        "--stream-timeout", type=positive_number, default=10.0, metavar="S",
        help="seconds to open a stream, and without frames before it counts as lost (default 10)",
    )  # fmt: skip
    group.add_argument(
        "--reconnect-retries", type=retries, default=-1, metavar="N",
        help="reconnection attempts per loss (default -1: until stopped)",
    )  # fmt: skip
    group.add_argument(
        "--reconnect-max-wait", type=positive_number, default=8.0, metavar="S",
        help="longest wait between attempts; they double from 0.5 s (default 8)",
    )  # fmt: skip
    group.add_argument("--rtsp-transport", choices=["tcp", "udp"], default=None, help="RTSP transport for FFmpeg")
    group.add_argument(
        "--input-option", action="append", default=[], metavar="KEY=VALUE",
        help="extra FFmpeg demuxer option, e.g. fflags=nobuffer",
    )  # fmt: skip


def stream_options(args: argparse.Namespace) -> Any:
    """The StreamOptions of add_stream's flags."""
    from edgeseg.runtime.sources import StreamOptions

    return StreamOptions(
        timeout=args.stream_timeout,
        retries=args.reconnect_retries,
        backoff_cap=args.reconnect_max_wait,
        transport=args.rtsp_transport,
        ffmpeg_options={k: str(v) for k, v in parse_model_args(args.input_option, "--input-option").items()},
    )


def triton_options(args: argparse.Namespace) -> Any:
    """A remote backend gets the same patience as a live stream; "until stopped" becomes 8 retries."""
    from edgeseg.runtime.backends import TritonOptions

    retries = args.reconnect_retries if args.reconnect_retries >= 0 else 8
    return TritonOptions(timeout=args.stream_timeout, retries=retries, backoff_cap=args.reconnect_max_wait)


# -- frames out --------------------------------------------------------------------------------
# Flags that contradict each other: (first flag's dest, second flag's dest, the one line that says so). A verb lists
# its own with set_defaults(contradictions=...); `edgeseg.cli.entry` checks them after parsing.
VIEW_CONTRADICTION = (
    "view_public", "view_token", "--view-public and --view-token contradict each other: choose who may watch"
)  # fmt: skip


def add_view_access(parser: argparse.ArgumentParser) -> None:
    """Who may watch a live view (-o http://...): parsed by view_access_of; list VIEW_CONTRADICTION with it."""
    group = parser.add_argument_group("live view", "who may watch an -o http://HOST:PORT/ live view")
    group.add_argument(
        "--view-token",
        metavar="TOKEN",
        default=None,
        help="the live view answers only requests with ?token=TOKEN or an X-Edgeseg-Token header; "
        "needed to bind it beyond 127.0.0.1 (or --view-public). Every user of the machine sees a command line "
        "in ps: prefer --view-token-file or $EDGESEG_VIEW_TOKEN",
    )
    group.add_argument(
        "--view-token-file", metavar="FILE",
        help="read the view token from FILE (mode 0600): unlike --view-token, not shown by ps",
    )  # fmt: skip
    group.add_argument(
        "--view-public", action="store_true", help="serve a live view bound beyond 127.0.0.1 to anyone, without a token"
    )


def view_access_of(args: argparse.Namespace) -> Any:
    from edgeseg.runtime.sinks.live import view_access

    return view_access(args.view_token, args.view_token_file, args.view_public)


def add_overlay(parser: argparse.ArgumentParser) -> None:
    """How a frame's answer is drawn and kept: parsed by overlay_options."""
    from edgeseg.runtime.overlay import FILTER_MODES, VISUALIZE

    group = parser.add_argument_group("drawing", "how each frame's answer is drawn and kept")
    group.add_argument(
        "--filter-mode", choices=FILTER_MODES, default="linear",
        help="mask upsampling: point (nearest) or linear (smooth); see docs",
    )  # fmt: skip
    group.add_argument("--alpha", type=fraction, default=0.5, help="overlay opacity 0..1 (default 0.5)")
    group.add_argument(
        "--visualize", choices=VISUALIZE, default="overlay", help="what to draw: overlay, mask, or both side by side"
    )
    group.add_argument(
        "--save-mask", action="store_true", help="folder outputs also keep raw class maps as PNG in masks/"
    )
    group.add_argument("--no-legend", action="store_true", help="do not draw the class legend")


def overlay_options(args: argparse.Namespace) -> dict[str, Any]:
    """RunOptions' drawing fields from add_overlay's flags."""
    return dict(
        filter_mode=args.filter_mode,
        alpha=args.alpha,
        visualize=args.visualize,
        save_mask=args.save_mask,
        legend=not args.no_legend,
    )


# -- kind-specific flags -----------------------------------------------------------------------
# --score-threshold is one kind's: declared here for every verb alike, the head of another kind (edgeseg.runtime.heads,
# Head.takes and check_options) refuses it in one line. --also takes a second bundle of any kind beside any bundle.
KIND_FLAGS = ("score_threshold", "also")


def add_kind_flags(parser: argparse.ArgumentParser, flags: tuple[str, ...] = KIND_FLAGS) -> None:
    """The kind-specific flags a verb takes (a subset of KIND_FLAGS): parsed by kind_options."""
    group = parser.add_argument_group("a second bundle, and flags of one kind (refused for the others)")
    if "score_threshold" in flags:
        group.add_argument(
            "--score-threshold", type=fraction, default=None, metavar="SCORE",
            help="instance bundles (the first or --also's): draw detections scoring at least this, 0..1 (default 0.5)",
        )  # fmt: skip
    if "also" in flags:
        group.add_argument(
            "--also", metavar="BUNDLE", default=None,
            help="also run this bundle, of any kind (its best precision), on the same frames: run draws its answer "
            "under the first one's and --save-mask keeps both, bench times it too",
        )  # fmt: skip


def kind_options(args: argparse.Namespace) -> dict[str, Any]:
    """The kind-specific fields of a stage's options, None for each flag the verb does not take or was not given."""
    also = getattr(args, "also", None)
    return dict(score_threshold=getattr(args, "score_threshold", None), also=Path(also) if also else None)


# -- models ------------------------------------------------------------------------------------
def add_size(parser: Flags, default: tuple[int, int] | None, help: str) -> None:
    parser.add_argument("--size", type=parse_size, default=default, help=help)


def add_classes(parser: Flags, help: str) -> None:
    parser.add_argument("--classes", help=help)


def add_model_args(parser: Flags, help: str) -> None:
    """--arg KEY=VALUE, repeated: the model constructor's options (parse_model_args reads them)."""
    parser.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE", help=help)


def add_streams(parser: Flags, help: str, *, low: int = 1) -> None:
    """--streams N: how many streams are batched together (bench measures them; deploy batches them)."""
    parser.add_argument("--streams", type=at_least(low), default=None, metavar="N", help=help)
