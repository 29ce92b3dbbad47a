"""Why an RTSP stream did not open: one DESCRIBE request, answered in one line.

OpenCV only says that a capture failed. An RTSP server says more: the connection is refused, it accepts
but never answers, it answers 404 for a wrong path or 401 without credentials, or it describes a stream
with no video, or one in a format FFmpeg does not decode. RTSP is a text protocol (RFC 2326), so one
request over a plain socket tells which.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

# RTP video payloads FFmpeg's RTSP demuxer decodes (by their SDP encoding names).
NO_VIDEO = "the server's stream has no video track"
UNDECODABLE = "the server sends"
DECODABLE_VIDEO = {"H264", "H265", "HEVC", "JPEG", "MP4V-ES", "VP8", "VP9", "AV1", "RAW", "MP2T", "THEORA"}


def describe_reason(url: str, timeout: float) -> str:
    """What the server at `url` answers to DESCRIBE, as the reason a capture could not open it."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 554
    request = (f"DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\nUser-Agent: edgeseg\r\n\r\n").encode()
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            connection.sendall(request)
            answer = _read_answer(connection)
    except ConnectionRefusedError:
        return f"nothing listens on {host}:{port} (connection refused)"
    except TimeoutError:
        return f"the server at {host}:{port} accepted the connection but did not answer within {timeout:g} s"
    except OSError as exc:
        return f"cannot reach {host}:{port} ({exc.strerror or exc})"
    return _reason_from_answer(answer, parts.path or "/")


def undecodable_reason(url: str, timeout: float) -> str | None:
    """Why no frame can ever come from this stream (no video, or a format FFmpeg cannot decode); else None."""
    reason = describe_reason(url, timeout)
    return reason if reason.startswith((NO_VIDEO, UNDECODABLE)) else None


def _read_answer(connection: socket.socket) -> str:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
    )
    while len(body) < length:
        chunk = connection.recv(4096)
        if not chunk:
            break
        body += chunk
    return (head + b"\r\n\r\n" + body).decode(errors="replace")


def _reason_from_answer(answer: str, path: str) -> str:
    status = answer.split("\r\n", 1)[0]
    if not status.startswith("RTSP/"):
        return "the server did not answer in RTSP (is it an RTSP server?)"
    code = status.split(" ", 2)[1:]
    if code and code[0] == "404":
        return f"the server has no stream at '{path}' ({' '.join(code)}); check the path"
    if code and code[0] == "401":
        return "the server wants credentials (401 Unauthorized); use rtsp://USER:PASSWORD@HOST/path"
    if not code or code[0] != "200":
        return f"the server answered '{' '.join(code)}'"
    encodings = [
        line.split(" ", 1)[1].split("/")[0].upper() for line in answer.splitlines() if line.startswith("a=rtpmap:")
    ]
    has_video = any(line.startswith("m=video") for line in answer.splitlines())
    if not set(encodings) & DECODABLE_VIDEO:
        if encodings:
            return f"{UNDECODABLE} {', '.join(encodings)}, which FFmpeg cannot decode as video"
        if not has_video:
            return NO_VIDEO
    return "the server describes a video stream, but no frame could be read from it"
