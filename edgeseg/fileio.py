"""Atomic writes and content hashes: an interrupted stage never leaves a file a later run would trust."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from edgeseg.errors import EdgesegError

if TYPE_CHECKING:
    import numpy as np


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it over `target` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.chmod(0o644)  # mkstemp makes 0600; artifacts are meant to be shared
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def atomic_directory(target: Path, replace: bool = False) -> Iterator[Path]:
    """Build a directory under a temporary name and move it into place only when complete."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    tmp.chmod(0o755)
    try:
        yield tmp
        if target.exists():
            if not replace:
                raise FileExistsError(target)
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_writable(path: Path) -> None:
    """Fail before the run starts, not at the first frame, when an output cannot be written."""
    folder = path if path.is_dir() else path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".edgeseg-write-check"):
            pass
    except OSError as exc:
        raise EdgesegError(f"cannot write output '{path}': {exc.strerror or exc}; choose a writable path") from None


def write_image_atomic(path: Path, image: np.ndarray) -> None:
    """Encode by the path's suffix and write under a temporary name, renamed when complete."""
    import cv2  # here, not at the top: bundle and export read this module without needing OpenCV

    ok, encoded = cv2.imencode(path.suffix, image)
    if not ok:
        raise EdgesegError(f"cannot encode {path.name}")
    temp = path.with_name(f".{path.name}.partial")
    temp.write_bytes(encoded.tobytes())
    os.replace(temp, path)


def refuse_non_empty(output: Path, force: bool) -> None:
    """An output directory that holds something is replaced only with --force; a file there is never replaced."""
    if output.is_file():
        raise EdgesegError(f"output '{output}' is a file; this step writes a directory: choose another path")
    if output.is_dir() and any(output.iterdir()) and not force:
        raise EdgesegError(
            f"output '{output}' already exists and is not empty; choose another path or pass --force to replace it"
        )
