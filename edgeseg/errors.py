"""One error type for every user mistake: the CLI prints its message as one line and exits non-zero."""

from __future__ import annotations

import importlib
from types import ModuleType


class EdgesegError(Exception):
    """A problem the user can fix; the message says what is wrong and what to do."""


def require(module: str, extra: str) -> ModuleType:
    """Import a heavy optional module, or fail with one line naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise EdgesegError(
            f"this step needs the Python module '{module}' ({exc}); install it with: pip install 'edgeseg[{extra}]'"
        ) from None
