"""One error type for every user mistake: the CLI prints its message as one line and exits non-zero."""

from __future__ import annotations

import importlib
from types import ModuleType

# Where TensorRT comes from: it is not a PyPI dependency of edgeseg on every platform.
TENSORRT_INSTALL_HINT = (
    "JetPack ships TensorRT (python3-libnvinfer; make the venv with --system-site-packages); "
    "on a desktop install NVIDIA's tensorrt wheels; pip install 'edgeseg[tensorrt]' adds pycuda"
)


def install_command(extra: str) -> str:
    """The one command that installs an optional part of edgeseg."""
    return f"pip install 'edgeseg[{extra}]'"


class EdgesegError(Exception):
    """A problem the user can fix; the message says what is wrong and what to do."""


def require(module: str, extra: str) -> ModuleType:
    """Import a heavy optional module, or fail with one line naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise EdgesegError(
            f"this step needs the Python module '{module}' ({exc}); install it with: {install_command(extra)}"
        ) from None
