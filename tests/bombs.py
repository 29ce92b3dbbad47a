"""Image bombs for tests: files of a few hundred KB whose headers declare billions of pixels."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(path: Path, width: int, height: int) -> Path:
    """A real, decodable 1-bit greyscale PNG of width x height black pixels: zlib of zeros (IMREAD_COLOR would
    make it width * height * 3 bytes)."""
    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then the packed bits
    rows_at_once = max(1, (1 << 22) // len(row))
    whole, rest = divmod(height, rows_at_once)
    # Raw deflate: a block compressed once with a full flush gives the same bytes every time, so it is repeated
    # rather than compressed again (a 40000x40000 bomb in a fraction of a second).
    block = row * rows_at_once
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -15)
    repeated = squeeze.compress(block) + squeeze.flush(zlib.Z_FULL_FLUSH)
    tail = squeeze.compress(row * rest) + squeeze.flush(zlib.Z_FINISH)
    checksum = 1
    for _ in range(whole):
        checksum = zlib.adler32(block, checksum)
    checksum = zlib.adler32(row * rest, checksum)
    data = b"\x78\xda" + repeated * whole + tail + struct.pack(">I", checksum)
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data)
                     + _chunk(b"IEND", b""))  # fmt: skip
    return path


def jpeg_header(path: Path, width: int, height: int) -> Path:
    """The start of a baseline JPEG declaring width x height (SOI, an APP0, SOF0): enough for any header reader."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    path.write_bytes(b"\xff\xd8" + app0 + sof0 + b"\xff\xd9")
    return path
