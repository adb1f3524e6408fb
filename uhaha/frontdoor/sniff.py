"""Choosing a connection's protocol from its first bytes (pure, no I/O).

The rules, in order:

1. an application `Service` whose `sniff` claims the bytes (checked first);
2. `*`: a RESP array, the Redis protocol;
3. `PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n`: HTTP/2 with prior knowledge (h2c);
4. a first line `METHOD target HTTP/1.x`: HTTP/1.x;
5. anything else: an inline RESP command (`PING\\r\\n` from telnet or netcat).

`sniff` returns None while the bytes could still go more than one way (a
service said "need more", a prefix of the HTTP/2 preface, an upper-case word
that may start an HTTP request line that has not ended yet).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Sequence

__all__ = ["H2_PREFACE", "Kind", "could_be_http", "sniff"]

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# `METHOD SP request-target SP HTTP/1.x`, the line ending excluded.
_REQUEST_LINE = re.compile(rb"[A-Z]{1,20} [^ \r\n]+ HTTP/1\.[01]\r?")
# What an unfinished request line may look like so far: a method, maybe a
# target, maybe part of the version. Anything else is not HTTP.
_REQUEST_START = re.compile(rb"[A-Z]{1,20}( [^ \r\n]*( [HTP/1.0]{0,8}\r?)?)?")


class Kind(enum.Enum):
    """The protocols the front door knows by itself."""

    RESP = "resp"
    HTTP1 = "http/1.1"
    HTTP2 = "h2"


def sniff(
    data: bytes, services: Sequence[tuple[str, Callable[[bytes], bool | None]]] = ()
) -> Kind | str | None:
    """Decide the protocol of a connection that began with `data`.

    Returns a Kind, the name of the claiming service, or None for "need more
    bytes". A service's sniff that raises counts as "not mine".
    """
    undecided = False
    for name, claims in services:
        try:
            verdict = claims(data)
        except Exception:
            verdict = False
        if verdict:
            return name
        undecided = undecided or verdict is None
    if undecided or not data:
        return None
    return _builtin(data)


def could_be_http(data: bytes) -> bool:
    """Whether undecided bytes are the start of an HTTP/1.x request line (so a
    connection given up on may be told why in HTTP)."""
    return bool(data) and _REQUEST_START.fullmatch(data) is not None


def _builtin(data: bytes) -> Kind | None:
    if data[0] == 0x2A:  # `*`
        return Kind.RESP
    if data.startswith(H2_PREFACE):
        return Kind.HTTP2
    if H2_PREFACE.startswith(data):
        return None
    newline = data.find(b"\n")
    if newline < 0:
        return None if _REQUEST_START.fullmatch(data) else Kind.RESP
    return Kind.HTTP1 if _REQUEST_LINE.fullmatch(data, 0, newline) else Kind.RESP
