"""One error type for every user mistake: the CLI prints its message as one line and exits non-zero."""

from __future__ import annotations

import importlib
from types import ModuleType

# Where TensorRT comes from: it is not a PyPI dependency of edgeseg on every platform.
TENSORRT_INSTALL_HINT = (
    "JetPack ships TensorRT (python3-libnvinfer; make the venv with --system-site-packages); "
    "on a desktop install NVIDIA's tensorrt wheels; pip install 'edgeseg[tensorrt]' adds cuda-python"
)


def install_command(extra: str) -> str:
    """The one command that installs an optional part of edgeseg."""
    return f"pip install 'edgeseg[{extra}]'"


# The extra that installs each optional module, for the one line a missing one gets.
MODULE_EXTRAS = {
    "cv2": "opencv",
    "torch": "export",
    "onnx": "calibrate",
    "onnxruntime": "calibrate",
    "matplotlib": "bench",
    "rich": "bench",
    "pycocotools": "instances",
}


def import_failure(exc: ImportError) -> str:
    """One line for a module that is missing or cannot load: what failed and the command that fixes it."""
    name = (exc.name or "").split(".")[0]
    if name == "cv2" or "cv2" in str(exc):
        if isinstance(exc, ModuleNotFoundError):
            return (
                f"OpenCV (cv2) is not installed: {install_command('opencv')}; on a Jetson use JetPack's "
                "python3-opencv from a venv made with --system-site-packages"
            )
        # A cv2 built for numpy 1.x (JetPack's, Debian's) fails to load beside numpy 2.
        return f"OpenCV (cv2) cannot be loaded ({exc}); if it is the system's OpenCV, run: pip install 'numpy<2'"
    if name in MODULE_EXTRAS:
        extra = MODULE_EXTRAS[name]
        return f"this step needs the Python module '{name}' ({exc}); install it with: {install_command(extra)}"
    return f"a Python module cannot be imported ({exc}); reinstall edgeseg: {install_command('opencv')}"


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
