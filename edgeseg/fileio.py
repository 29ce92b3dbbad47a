"""Atomic writes and content hashes: an interrupted stage never leaves a file a later run would trust."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from edgeseg.errors import EdgesegError

if TYPE_CHECKING:
    import numpy as np


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


PRIVATE = 0o600  # a file that must hold a secret to work (a DeepStream config's camera password)


@contextlib.contextmanager
def atomic_path(target: Path, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it over `target` only if the block succeeds. `mode` is set
    before anything is written, so a PRIVATE file's content is never readable by others, not even half-written."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.chmod(mode)  # mkstemp makes 0600; artifacts are meant to be shared unless asked otherwise
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(target: Path, text: str, mode: int = 0o644) -> None:
    with atomic_path(target, mode) as tmp:
        tmp.write_text(text, encoding="utf-8")


class OutputRaced(EdgesegError):
    """Another process put the output in place while this one was building it: theirs stays, this one's is gone."""

    def __init__(self, target: Path):
        super().__init__(
            f"another process wrote '{target}' while this one ran; it was kept and nothing of this run was (check "
            "it, or run again with --force to replace it)"
        )


_RACE_ERRNOS = (errno.EEXIST, errno.ENOTEMPTY)


@contextlib.contextmanager
def atomic_directory(target: Path, replace: bool = False) -> Iterator[Path]:
    """Build a directory under a temporary name and move it into place only when complete: every stage that writes
    a folder (export, dataset, deploy) goes through here, and whatever the stage checks inside the block (deploy's
    graphs) is checked before anything is in place, so a failed check leaves no output and a rerun needs no --force.

    What is there decides at the start, before any work: a file is refused, a non-empty folder needs `replace`
    (--force), an empty folder is taken. When another process puts its output at `target` while this one works,
    this one raises OutputRaced and keeps nothing: the first complete output wins, whole. What an earlier run that
    died left beside `target` (its scratch folder, the old output it had swapped out) is removed first."""
    target = Path(target)
    remove_leftovers(target)
    refuse_non_empty(target, replace)
    target.parent.mkdir(parents=True, exist_ok=True)
    was_full = target.is_dir() and any(target.iterdir())  # with replace: the user's old output, to be swapped out
    tmp = Path(tempfile.mkdtemp(prefix=_scratch_prefix(target), suffix=".partial", dir=target.parent))
    tmp.chmod(0o755)
    try:
        yield tmp
        if replace and was_full and target.exists():
            _swap(tmp, target)
        else:
            # rename(2) takes the place of nothing or of an empty folder, atomically; a folder another process
            # filled meanwhile makes it fail, and that is the race.
            _place(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _swap(tmp: Path, target: Path) -> None:
    """`tmp` in place of the full folder `target` (--force): two renames, the old output moved aside first. Should
    the second fail (another process took the place, an interrupt), the old output goes back if the place is still
    free; the folder set aside never stays behind."""
    old = Path(tempfile.mkdtemp(prefix=_scratch_prefix(target), suffix=".old", dir=target.parent))
    moved = False
    try:
        os.replace(target, old)
        moved = True
        _place(tmp, target)
    finally:
        if moved and not target.exists():
            with contextlib.suppress(OSError):  # another process's output took the place meanwhile: it stays
                os.replace(old, target)
        shutil.rmtree(old, ignore_errors=True)


# The scratch folders beside a target: ".NAME.OWNER.XXXXXXXX.partial" (being built) and ".old" (the output --force
# swaps out). OWNER is "PID-HOST", so a later run can tell one whose process is gone from one still at work; a name
# without it is from an edgeseg before owners were written, and long gone.
_HOST = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname()) or "host"


def _scratch_prefix(target: Path) -> str:
    return f".{target.name}.{os.getpid()}-{_HOST}."


def remove_leftovers(target: Path) -> None:
    """Remove the scratch folders beside `target` that a run which is no longer running left (killed, or between
    its two renames when the power went): nothing reads them, and an old output is as large as a new one. But where
    `target` is gone, an old output set aside is the user's only copy: it goes back in place. A folder of a live
    process (another run building the same output now), or of another host's, is left alone."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.(?:(\d+)-(\w+)\.)?\w{{8}}\.(?:partial|old)")
    if not target.parent.is_dir():
        return
    for entry in sorted(target.parent.iterdir()):
        match = pattern.fullmatch(entry.name)
        if not match or not entry.is_dir() or entry.is_symlink() or _owner_running(match[1], match[2]):
            continue
        if entry.name.endswith(".old") and not target.exists():
            with contextlib.suppress(OSError):
                os.replace(entry, target)
            continue  # back in place, or kept where it could not be moved
        shutil.rmtree(entry, ignore_errors=True)


def _owner_running(pid: str | None, host: str | None) -> bool:
    if pid is None:
        return False
    if host != _HOST:
        return True  # another machine's process (a shared file system): this one cannot tell, so it keeps it
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, OverflowError):  # OverflowError: a number no process can have
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


def _place(tmp: Path, target: Path) -> None:
    """rename(2) onto `target`; a directory that appeared there meanwhile (another process's) makes it fail."""
    try:
        os.replace(tmp, target)
    except OSError as exc:
        if exc.errno in _RACE_ERRNOS or (exc.errno == errno.ENOTDIR and target.is_file()):
            raise OutputRaced(target) from None
        raise


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


# -- the pixel budget: images and frames are sized from their header before anything decodes them -----------------

DEFAULT_MAX_PIXELS = 8192 * 8192  # a generous camera frame; OpenCV's own limit (2^30) is a 7 GB decode
_max_pixels = [DEFAULT_MAX_PIXELS]


def max_pixels() -> int:
    """The process's pixel budget (--max-pixels)."""
    return _max_pixels[0]


def set_max_pixels(pixels: int) -> None:
    _max_pixels[0] = int(pixels)


def over_budget(width: int, height: int, what: str) -> str | None:
    """The one line for a `what` (a file, a stream) of width x height beyond the budget; None within it."""
    budget = max_pixels()
    if width * height <= budget:
        return None
    return (
        f"{what} is {width}x{height} ({width * height:,} pixels), over the budget of {budget:,} pixels; not decoded "
        "(raise --max-pixels if it is real)"
    )


def _png(head: bytes) -> tuple[int, int] | None:
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    return None


def _bmp(head: bytes) -> tuple[int, int] | None:
    if head[:2] != b"BM" or len(head) < 26:
        return None
    if int.from_bytes(head[14:18], "little") == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sides
        return int.from_bytes(head[18:20], "little"), int.from_bytes(head[20:22], "little")
    width = int.from_bytes(head[18:22], "little", signed=True)
    height = int.from_bytes(head[22:26], "little", signed=True)  # negative: stored top-down
    return abs(width), abs(height)


def _webp(head: bytes) -> tuple[int, int] | None:
    if head[:4] != b"RIFF" or head[8:12] != b"WEBP" or len(head) < 30:
        return None
    chunk = head[12:16]
    if chunk == b"VP8X":  # 24-bit canvas sides, minus one
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    if chunk == b"VP8L":
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        return int.from_bytes(head[26:28], "little") & 0x3FFF, int.from_bytes(head[28:30], "little") & 0x3FFF
    return None


def _pnm(head: bytes) -> tuple[int, int] | None:
    if len(head) < 3 or head[:1] != b"P" or head[1:2] not in b"123456" or not head[2:3].isspace():
        return None
    fields = []
    for line in head[2:].split(b"\n"):
        fields += line.split(b"#", 1)[0].split()
        if len(fields) >= 2:
            break
    try:
        return int(fields[0]), int(fields[1])
    except (IndexError, ValueError):
        return None


def _jpeg(handle: BinaryIO) -> tuple[int, int] | None:
    """Walk the JPEG's segments to its frame header (SOFn); seeks past each segment, so EXIF costs nothing."""
    handle.seek(2)
    for _ in range(100_000):
        byte = handle.read(1)
        while byte == b"\xff":  # fill bytes before a marker
            byte = handle.read(1)
        marker = byte[0] if byte else None
        if marker is None:
            return None
        if marker in (0x01, *range(0xD0, 0xD9)):  # standalone markers
            continue
        length_bytes = handle.read(2)
        if len(length_bytes) < 2:
            return None
        length = int.from_bytes(length_bytes, "big")
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            frame = handle.read(5)
            if len(frame) < 5:
                return None
            return int.from_bytes(frame[3:5], "big"), int.from_bytes(frame[1:3], "big")
        if marker == 0xD9 or length < 2:
            return None
        handle.seek(length - 2, os.SEEK_CUR)
        # the next byte must start a marker; anything else is not a JPEG this reader understands
        peek = handle.read(1)
        if peek != b"\xff":
            return None
        handle.seek(-1, os.SEEK_CUR)
    return None


def _tiff(handle: BinaryIO, head: bytes) -> tuple[int, int] | None:
    """The first image file directory's ImageWidth (256) and ImageLength (257)."""
    order = {b"II*\x00": "little", b"MM\x00*": "big"}.get(head[:4])
    if order is None:
        return None
    handle.seek(int.from_bytes(head[4:8], order))  # type: ignore[arg-type]
    count_bytes = handle.read(2)
    if len(count_bytes) < 2:
        return None
    entries = handle.read(12 * min(int.from_bytes(count_bytes, order), 4096))  # type: ignore[arg-type]
    sides: dict[int, int] = {}
    for start in range(0, len(entries) - 11, 12):
        tag = int.from_bytes(entries[start : start + 2], order)  # type: ignore[arg-type]
        kind = int.from_bytes(entries[start + 2 : start + 4], order)  # type: ignore[arg-type]
        if tag in (256, 257):
            size = 2 if kind == 3 else 4  # SHORT or LONG
            sides[tag] = int.from_bytes(entries[start + 8 : start + 8 + size], order)  # type: ignore[arg-type]
    return (sides[256], sides[257]) if len(sides) == 2 else None


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from an image file's header, by its content (as OpenCV decides), reading a few bytes:
    PNG, JPEG, BMP, WebP, TIFF, PBM/PGM/PPM. None for any other content (OpenCV may still decode it)."""
    with open(path, "rb") as handle:
        head = handle.read(64)
        if head[:2] == b"\xff\xd8":
            return _jpeg(handle)
        if head[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff(handle, head)
    for reader in (_png, _bmp, _webp, _pnm):
        size = reader(head)
        if size is not None:
            return size
    return None


def image_budget_problem(path: Path) -> str | None:
    """The one line for an image file over the pixel budget, read from its header; None within it (or unsized)."""
    size = image_size(path)
    return over_budget(size[0], size[1], f"'{path}'") if size else None
