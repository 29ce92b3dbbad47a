"""The argparse types every verb's flags use, so each range and form is checked once, at parse time, in one wording.

Each type is a callable argparse calls with the flag's text; it returns the value or raises
ArgumentTypeError, which the parser prints as one line naming the flag. `OUT_OF_RANGE` holds, per type,
a value it must refuse (the CLI's own test feeds it to every flag that uses the type).
"""

from __future__ import annotations

import argparse
import ast
import math
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from edgeseg.errors import EdgesegError
from edgeseg.fileio import DEFAULT_MAX_PIXELS, set_max_pixels
from edgeseg.redact import redact_text
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
        # printable: a value echoed in the message cannot break the line; redact_text: a camera URI given to the
        # wrong flag (`--backend rtsp://user:password@cam`) is echoed without its password.
        print(f"edgeseg: error: {self.prog}: {printable(redact_text(message))} (see {self.prog} --help)",
              file=sys.stderr)  # fmt: skip
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


def parse_size(text: str) -> tuple[int, int]:
    """HxW (or one number for a square) -> (height, width)."""
    try:
        parts = [int(v) for v in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be HxW, e.g. 256x512, not '{text}'") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 8:
        raise argparse.ArgumentTypeError(f"size must be HxW with both at least 8, not '{text}'")
    return parts[0], parts[1]


def parse_triple(text: str) -> tuple[float, float, float]:
    """Three comma-separated numbers: an RGB mean or std."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three comma-separated numbers, not '{text}'")
    return values  # type: ignore[return-value]


def parse_seeds(text: str) -> tuple[int, int]:
    """A seed range A-B (or one seed A) -> (A, B)."""
    first, _, last = text.partition("-")
    try:
        low, high = int(first), int(last or first)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds are A-B, e.g. 0-199, not '{text}'") from None
    if low > high:
        raise argparse.ArgumentTypeError(f"seed range '{text}' is empty")
    return low, high


def parse_batch_range(text: str) -> tuple[int, int, int]:
    """A dynamic-batch profile min,opt,max -> (min, opt, max)."""
    try:
        low, optimum, high = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--batch takes min,opt,max, e.g. 1,4,8, not '{text}'") from None
    if not 1 <= low <= optimum <= high:
        raise argparse.ArgumentTypeError(f"--batch {text}: need 1 <= min <= opt <= max")
    return low, optimum, high


def parse_model_args(pairs: list[str], flag: str = "--arg") -> dict[str, Any]:
    """KEY=VALUE pairs (--arg's for the model constructor, --input-option's for FFmpeg); values are Python literals
    when they parse as one."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise EdgesegError(f"{flag} takes key=value, not '{pair}'")
        try:
            options[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            options[key] = raw
    return options


count = at_least(1)
non_negative = at_least(0)
retries = at_least(-1)  # -1: without end
OUT_OF_RANGE.update({pixel_count: "0x5", positive_number: "0", fraction: "1.5", share: "0", opset: "7"})
