"""The front door's settings: its limits, application services, startup error."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from uhaha.resp.connection import format_address

__all__ = ["Limits", "Service", "StartupError", "bind_error"]

KIB = 1024


@dataclass(frozen=True)
class Limits:
    """Bounds on what connections may cost; every one is enforced, none is advisory."""

    #: Connections served at once; more are answered "max number of clients
    #: reached" (RESP) or 503 (HTTP/1.x) and closed.
    max_connections: int = 10_000
    #: Time a new connection has to send enough bytes to tell its protocol.
    #: Counted from the connection (not reset by each byte: slowloris).
    sniff_timeout: float = 10.0
    #: Bytes a new connection may send without its protocol being decided.
    sniff_max_bytes: int = 8 * KIB
    #: Time an over-limit connection gets to show its protocol, so that it
    #: can be refused in its own language.
    reject_timeout: float = 1.0
    #: Largest HTTP/1.x request head (request line and headers), bytes.
    http_max_head: int = 64 * KIB
    #: Time to receive an HTTP/1.x request head, from its first byte.
    http_head_timeout: float = 10.0
    #: Idle HTTP keep-alive connections are closed after this many seconds.
    http_keep_alive: float = 75.0
    #: Requests on one HTTP/2 connection before Hypercorn recycles it.
    http2_max_requests: int = 1 << 30
    #: Graceful close: time connections get to finish before they are cut.
    close_timeout: float = 5.0


@dataclass(frozen=True)
class Service:
    """An application protocol sharing the front door's port (uhaha's AddService).

    `sniff(first_bytes)` says whether a new connection is this service's:
    True (claim it), False (not mine) or None (need more bytes). Services
    are asked in order, before the built-in protocols. A claimed connection
    is served by `handler(reader, writer)`, the bytes sniffed read first;
    the connection is closed when the handler returns, and the handler is
    cancelled when the front door closes.
    """

    name: str
    sniff: Callable[[bytes], bool | None]
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class StartupError(Exception):
    """The front door cannot start; the message is one line for the operator."""


def bind_error(host: str | None, port: int, exc: OSError) -> StartupError:
    """The StartupError telling why listening on host:port failed."""
    if isinstance(exc, socket.gaierror):
        return StartupError(f"cannot resolve {host!r}: {exc.strerror}")
    where = format_address((host or "*", port))
    if exc.errno == errno.EADDRINUSE:
        return StartupError(f"address {where} is already in use")
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    return StartupError(f"cannot bind to {where}: {reason}")
