"""What native libraries print straight to file descriptors 1 and 2, out of edgeseg's own output.

PyTorch's exporter prints its whole TorchScript graph from C++ on stdout when it fails (about 260 lines for
a PSPNet, before edgeseg's one-line error), and ONNX Runtime's C++ logger warns on stderr while it builds a
session. Python's redirect_stdout cannot catch either: they write to the descriptors. `--verbose` lets
them through.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from collections.abc import Iterator

_shown = False
# File descriptors belong to the process: two threads each saving and restoring fds 1 and 2 (a pipeline's inference
# threads opening their sessions at once) could each save the other's scratch file, and leave stdout in it for good.
# One block at a time; re-entrant for a block inside another on the same thread.
_one_at_a_time = threading.RLock()


def show_native_output(shown: bool) -> None:
    """--verbose: let the native libraries' text through."""
    global _shown
    _shown = shown


@contextlib.contextmanager
def quiet_native_output() -> Iterator[None]:
    """Send fds 1 and 2 to a scratch file for the block (both: the libraries pick either), then put them back."""
    if _shown:
        yield
        return
    with _one_at_a_time:
        yield from _quiet_block()


def _quiet_block() -> Iterator[None]:
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    try:
        saved = os.dup(1), os.dup(2)
    except OSError:  # a descriptor is closed (a daemon's stdout): nothing to keep clean
        yield
        return
    try:
        with tempfile.TemporaryFile() as scratch:
            os.dup2(scratch.fileno(), 1)
            os.dup2(scratch.fileno(), 2)
            try:
                yield
            finally:
                for stream in (sys.stdout, sys.stderr):
                    stream.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
    finally:
        for descriptor in saved:
            os.close(descriptor)
