"""One error type for every user mistake: the CLI prints its message as one line and exits non-zero."""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import io
import re
from types import ModuleType

from edgeseg.jetson import on_jetson

# Where TensorRT comes from: it is not a PyPI dependency of edgeseg on every platform.
TENSORRT_INSTALL_HINT = (
    "JetPack ships TensorRT (python3-libnvinfer; make the venv with --system-site-packages); "
    "on a desktop install NVIDIA's tensorrt wheels; pip install 'edgeseg[tensorrt]' adds cuda-python"
)


def install_command(extra: str | None, module: str = "") -> str:
    """The one command that installs an optional part of edgeseg (extra None: a module edgeseg itself requires)."""
    return f"pip install {module}" if extra is None else f"pip install 'edgeseg[{extra}]'"


def numpy_requirement(module: str) -> str | None:
    """The numpy versions an installed distribution asks for ('>=1.21.6'), or None."""
    try:
        requires = importlib.metadata.requires(module) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for requirement in requires:
        found = re.match(r"numpy\s*\(?([<>=!~][^;)]*)", requirement)
        if found and "extra ==" not in requirement:
            return found.group(1).replace(" ", "")
    return None


# The extra that installs each optional module, for the one line a missing one gets (None: edgeseg requires it).
MODULE_EXTRAS: dict[str, str | None] = {
    "cv2": "opencv",
    "torch": "export",
    "onnx": "calibrate",
    "onnxruntime": None,
    "matplotlib": "bench",
    "rich": "bench",
    "pycocotools": "instances",
}


def opencv_failure(exc: ImportError) -> str:
    """One line for a cv2 that is missing or cannot load. On a Jetson the fix is never pip's opencv-python: it has
    no GStreamer and would shadow JetPack's cv2."""
    if isinstance(exc, ModuleNotFoundError):
        if on_jetson():
            return (
                "OpenCV (cv2) is not importable: use JetPack's python3-opencv (sudo apt install python3-opencv) "
                "from a venv made with python3 -m venv --system-site-packages"
            )
        return (
            f"OpenCV (cv2) is not installed: {install_command('opencv')}; on a Jetson use JetPack's "
            "python3-opencv from a venv made with --system-site-packages"
        )
    spec = importlib.util.find_spec("numpy")
    numpy_version = importlib.import_module("numpy").__version__ if spec else None
    if numpy_version and int(numpy_version.split(".")[0]) >= 2:
        # JetPack's and Ubuntu's cv2 are built for numpy 1.x; numpy 2 refuses to serve them.
        cv2_spec = importlib.util.find_spec("cv2")
        where = f" ({cv2_spec.origin})" if cv2_spec and cv2_spec.origin else ""
        return (
            f"OpenCV (cv2){where} was built for numpy 1.x and cannot load beside numpy {numpy_version}: "
            "install the numpy it was built for: pip install 'numpy<2'"
        )
    return f"OpenCV (cv2) cannot be loaded ({exc})"


def import_failure(exc: ImportError) -> str:
    """One line for a module that is missing or cannot load: what failed and the command that fixes it."""
    name = (exc.name or "").split(".")[0]
    if name == "cv2":
        return opencv_failure(exc)
    if name in MODULE_EXTRAS:
        return missing_module(name, MODULE_EXTRAS[name], exc)
    reinstall = "reinstall edgeseg from its clone: pip install --force-reinstall ."
    return f"a Python module cannot be imported ({exc}); {reinstall}"


def missing_module(module: str, extra: str | None, exc: ImportError) -> str:
    """One line for an optional module that is not there: the extra that installs it. torch on a Jetson is the
    exception: export and train are desktop stages, and JetPack's torch comes from NVIDIA, not PyPI."""
    if module == "torch" and on_jetson():
        return (
            f"this step needs torch ({exc}): export and train are desktop stages; run them on the desktop and copy "
            "the bundle to the board (run, build, check, bench and deploy work here)"
        )
    wanted = None if isinstance(exc, ModuleNotFoundError) else numpy_requirement(module)
    if wanted:  # installed, but built for a newer numpy than the one found (JetPack 5's is 1.17.4)
        found = importlib.import_module("numpy").__version__
        keep_1x = ",<2" if found.startswith("1.") and "<" not in wanted else ""
        return (
            f"{module} is installed but cannot load beside numpy {found}: it needs numpy{wanted}; "
            f"install that: pip install 'numpy{wanted}{keep_1x}'"
        )
    return f"this step needs the Python module '{module}' ({exc}); install it with: {install_command(extra, module)}"


def load_opencv() -> None:
    """Import cv2 before anything else does, so that a cv2 which cannot load is said in one line."""
    try:
        quiet_import("cv2")
    except ImportError as exc:
        raise EdgesegError(opencv_failure(exc)) from None


class EdgesegError(Exception):
    """A problem the user can fix; the message says what is wrong and what to do."""


def require(module: str, extra: str | None) -> ModuleType:
    """Import a heavy optional module, or fail with one line naming the extra that installs it."""
    try:
        return quiet_import(module)
    except ImportError as exc:
        raise EdgesegError(missing_module(module, extra, exc)) from None


def quiet_import(module: str) -> ModuleType:
    """Import a module with what its import writes to stderr held back: numpy writes a dozen lines and a stack
    when a module built for another numpy asks for its C API, and the ImportError that follows is said in one."""
    with contextlib.redirect_stderr(io.StringIO()):
        return importlib.import_module(module)
