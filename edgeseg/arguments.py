"""The argparse types every verb's flags use, so each range is checked once, at parse time, in one wording.

Each type is a callable argparse calls with the flag's text; it returns the value or raises
ArgumentTypeError, which the parser prints as one line naming the flag. `OUT_OF_RANGE` holds, per type,
a value it must refuse (the CLI's own test feeds it to every flag that uses the type).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from edgeseg.fileio import DEFAULT_MAX_PIXELS, set_max_pixels
from edgeseg.tables import printable

# ONNX opsets the TorchScript exporter writes for these models (Resize with align_corners needs 11) up
# to the highest TensorRT 10.x parses (20); TensorRT 8.5 on JetPack 5 parses up to 17.
OPSETS = (11, 20)
OUT_OF_RANGE: dict[Callable[[str], Any], str] = {}


class Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line, like every other edgeseg error, with exit status 2."""

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        # --max-pixels sets a process-wide budget: every parse starts from the default, so one call's flag never
        # carries over to the next in the same process (the Python API, tests).
        set_max_pixels(DEFAULT_MAX_PIXELS)
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        # printable: a value echoed in the message cannot break the line.
        print(f"edgeseg: error: {self.prog}: {printable(message)} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def _number(text: str, kind: type) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not {'an integer' if kind is int else 'a number'}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"'{text}' is not a finite number")
    return value


def at_least(low: int) -> Callable[[str], int]:
    """An integer of at least `low`: counts (frames, batches, streams) and indices."""

    def parse(text: str) -> int:
        value = _number(text, int)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, not {value}")
        return value

    OUT_OF_RANGE[parse] = str(low - 1)
    return parse


def positive_number(text: str) -> float:
    """A number above 0: seconds, learning rates."""
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def fraction(text: str) -> float:
    """A number from 0 to 1: opacity, thresholds."""
    value = _number(text, float)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, not {text}")
    return value


def probability(text: str) -> float:
    """A number strictly between 0 and 1: a sigmoid threshold (0 and 1 would be an infinite logit)."""
    value = _number(text, float)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (not either), not {text}")
    return value


def share(text: str) -> float:
    """A number above 0 and at most 1: an agreement to reach."""
    value = _number(text, float)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is outside (0, 1]; e.g. 0.995 for 99.5% of pixels")
    return value


def ap_points(text: str) -> float:
    """Points (hundredths) of a 0-1 score such as mask AP or PCK, from 0 to 100: an accuracy drop to allow."""
    value = _number(text, float)
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{text} is outside 0..100 points; e.g. 1.0 for one point of mask AP or PCK")
    return value


def opset(text: str) -> int:
    value = _number(text, int)
    if not OPSETS[0] <= value <= OPSETS[1]:
        raise argparse.ArgumentTypeError(
            f"must be from {OPSETS[0]} to {OPSETS[1]} (TensorRT 8.5 on JetPack 5 parses up to 17), not {value}"
        )
    return value


def pixel_count(text: str) -> int:
    """A pixel budget: a count (67108864) or a size (8192x8192)."""
    width, times, height = text.lower().partition("x")
    value = _number(width, int) * (_number(height, int) if times else 1)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 pixel, not {text}")
    return value


class MaxPixels(argparse.Action):
    """--max-pixels: the budget images, labels and frames are checked against from their headers, before decoding."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        set_max_pixels(values)
        setattr(namespace, self.dest, values)


def add_max_pixels(parser: argparse.ArgumentParser) -> None:
    side = int(DEFAULT_MAX_PIXELS**0.5)
    parser.add_argument(
        "--max-pixels", type=pixel_count, action=MaxPixels, default=DEFAULT_MAX_PIXELS, metavar="N|WxH",
        help=f"refuse images, labels and video frames larger than this, from their header, before decoding "
        f"(default {side}x{side}: a PNG of 1 MB can declare 32000x32000 pixels, 3 GB decoded)",
    )  # fmt: skip


count = at_least(1)
non_negative = at_least(0)
retries = at_least(-1)  # -1: without end
OUT_OF_RANGE.update({pixel_count: "0x5", positive_number: "0", fraction: "1.5", share: "0", opset: "7"})
