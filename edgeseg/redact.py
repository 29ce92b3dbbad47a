"""Secrets out of what edgeseg shows: a URI's user-info and its token/password query values become `***`.

IP cameras are addressed as rtsp://USER:PASSWORD@HOST/path, and a stream may carry ?token=... . Lines
edgeseg prints get pasted into issues and CI logs, names become file names, reports get shared: every
place that shows or stores a source or sink URI passes it through `redact` (or a text that may hold one
through `redact_text`). The real URI is still what edgeseg connects with.

The authority is split the way FFmpeg's av_url_split does: it ends at the first '/', '?' or '#', and
the user-info is everything up to its last '@' (so a raw '@' in a password is still hidden).
"""

from __future__ import annotations

import re
from typing import Tuple

HIDDEN = "***"
# Query keys whose values are secrets (compared without case).
SECRET_KEYS = frozenset(
    {"token", "access_token", "auth", "password", "passwd", "pass", "pwd", "secret", "key", "api_key", "apikey"}
)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
# A URI inside free text: a scheme, '://', then everything up to white space (user-info may hold quotes and
# brackets); closing punctuation at its very end is the sentence's, not the URI's. A URI that went through a path
# (an OSError's file name: Path('out/rtsp://u:p@cam/x') is 'out/rtsp:/u:p@cam/x') has lost a slash: ':/' is found too.
_URI_IN_TEXT = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):(//?)(\S+)")
_TRAILING = "'\")]},.;:>`"

Parts = Tuple[str, str, str, str]  # scheme, user-info (without '@'), host[:port], the rest (path, query, fragment)


def split_uri(uri: str) -> Parts | None:
    """(scheme, user-info, host[:port], rest) of `scheme://...`; None for anything else (a path, `none`)."""
    match = _SCHEME.match(uri)
    if match is None:
        return None
    after = uri[match.end() :]
    end = len(after)
    for stop in "/?#":
        position = after.find(stop)
        if position != -1:
            end = min(end, position)
    authority, rest = after[:end], after[end:]
    userinfo, at, host = authority.rpartition("@")
    return match.group(1), userinfo if at else "", host, rest


def _redact_query(rest: str) -> str:
    path, question, query = rest.partition("?")
    if not question:
        return rest
    query, hash_mark, fragment = query.partition("#")
    fields = []
    for field in re.split(r"([&;])", query):
        key, equals, _ = field.partition("=")
        fields.append(f"{key}={HIDDEN}" if equals and key.strip().lower() in SECRET_KEYS else field)
    return f"{path}?{''.join(fields)}{hash_mark}{fragment}"


def redact(uri: str) -> str:
    """`uri` as it may be shown: user-info and secret query values replaced by ***; anything that is not a URI
    (a path, `none`) is returned as it is."""
    parts = split_uri(uri)
    if parts is None:
        return uri
    scheme, userinfo, host, rest = parts
    return f"{scheme}://{HIDDEN + '@' if userinfo else ''}{host}{_redact_query(rest)}"


def without_credentials(uri: str) -> str:
    """`uri` with its user-info and secret query fields removed, not replaced: for handing to a program whose
    protocol does not use them (FFmpeg's udp:// ignores user-info and knows no token=), so they never reach its
    command line."""
    parts = split_uri(uri)
    if parts is None:
        return uri
    scheme, _, host, rest = parts
    path, question, query = rest.partition("?")
    if question:
        query, hash_mark, fragment = query.partition("#")
        kept = [field for field in re.split(r"[&;]", query)
                if field and field.partition("=")[0].strip().lower() not in SECRET_KEYS]  # fmt: skip
        rest = f"{path}{'?' if kept else ''}{'&'.join(kept)}{hash_mark}{fragment}"
    return f"{scheme}://{host}{rest}"


def redact_text(text: str) -> str:
    """Every URI inside `text` (an error from FFmpeg or OpenCV, a line that quotes one) redacted."""

    def one(match: re.Match) -> str:
        scheme, slashes, after = match.groups()
        kept = after.rstrip(_TRAILING)
        shown = redact(f"{scheme}://{kept}")[len(scheme) + 3 :]
        return f"{scheme}:{slashes}{shown}{after[len(kept) :]}"

    return _URI_IN_TEXT.sub(one, text)


def redact_all(uris: list[str]) -> list[str]:
    return [redact(uri) for uri in uris]


def has_secret(uri: str) -> bool:
    """True when showing `uri` as given would show a secret."""
    return redact(uri) != uri
