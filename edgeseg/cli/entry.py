"""`edgeseg`'s entry point: parse, check what contradicts, dispatch to the verb's handler, and turn every user
mistake into one line and a non-zero exit status, never a traceback."""

from __future__ import annotations

import argparse
import errno
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from edgeseg.cli.parser import build_parser
from edgeseg.errors import EdgesegError, import_failure, load_opencv
from edgeseg.native_output import show_native_output
from edgeseg.redact import redact_text
from edgeseg.tables import printable

EXIT_ERROR, EXIT_INTERRUPTED = 1, 130


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    show_native_output(args.verbose)
    # (first dest, second dest, the one line): flags the verb's module says contradict each other.
    for first, second, message in getattr(args, "contradictions", ()):
        if getattr(args, first) not in (None, False) and getattr(args, second) is not None:
            args.verb_parser.error(message)
    return args


def os_error_line(exc: OSError, args: argparse.Namespace | None) -> str:
    """One line for a file-system refusal; for a full disk, where and how much room is left there."""
    if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        target = Path(exc.filename or getattr(args, "output", None) or getattr(args, "bundle", None) or ".")
        folder = next((p for p in (target, *target.parents) if p.exists()), Path("."))
        free = shutil.disk_usage(folder).free
        return (
            f"no room left writing to '{folder}' ({exc.strerror}; {free / 2**20:.1f} MiB free there); nothing "
            "half-written was kept: free some space or write elsewhere"
        )
    where = f"'{exc.filename}': " if exc.filename else ""
    return f"{where}{exc.strerror or exc}; check the path"


def error_line(message: str) -> str:
    """The one line an error is shown as. printable: a path or name from the user or a file cannot break the line or
    drive the terminal. redact_text: a camera's URI in it (an OSError's file name, a module's or FFmpeg's message, a
    line that missed its own redact) shows no password or token."""
    return f"edgeseg: error: {printable(redact_text(message))}"


def main(argv: list[str] | None = None) -> int:
    args = None
    try:
        # Building the parser imports the runtime (cv2): a missing or broken install is reported here too.
        load_opencv()
        args = parse_arguments(argv)
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except EdgesegError as exc:
        print(error_line(str(exc)), file=sys.stderr)
        return EXIT_ERROR
    except ImportError as exc:
        print(error_line(import_failure(exc)), file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # the reader went away (`edgeseg info B | head`): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # a path the file system refuses (too long, no permission, a full disk, ...)
        print(error_line(os_error_line(exc, args)), file=sys.stderr)
        return EXIT_ERROR
    except ValueError as exc:
        if "null byte" not in str(exc):
            raise
        print("edgeseg: error: a path or value contains a NUL byte; remove it", file=sys.stderr)
        return EXIT_ERROR
    except SystemExit as exc:  # the parser's one-line usage errors (2), --help and --version (0)
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    except KeyboardInterrupt:
        print("edgeseg: interrupted; nothing half-written was kept", file=sys.stderr)
        return EXIT_INTERRUPTED
