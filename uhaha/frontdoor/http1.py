"""HTTP/1.x connections, served by uvicorn's httptools protocol.

The front door has read the request line already; it hands the transport
and those bytes to `uvicorn.protocols.http.httptools_impl.HttpToolsProtocol`
(an internal uvicorn API: uvicorn and httptools are pinned in pyproject.toml
and tests/frontdoor covers the hand-off). A small subclass adds what uvicorn
lacks against hostile clients: a bound on the size of a request head and on
the time to send it (slowloris); it answers a client that half-closed after
its request, and tells the front door when the connection ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

__all__ = ["Http1Server", "plain_response"]

ASGIApp = Callable[..., Any]


def plain_response(status: bytes, text: bytes) -> bytes:
    """A complete HTTP/1.1 text response that closes the connection."""
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n%b" % (len(text), text)
    )


_TOO_LARGE = plain_response(b"431 Request Header Fields Too Large", b"Request head too large.")
_TIMEOUT = plain_response(b"408 Request Timeout", b"Request head not received in time.")


class Http1Server:
    """uvicorn's HTTP/1.x protocol for connections handed over one at a time."""

    def __init__(
        self, app: ASGIApp, *, max_head: int, head_timeout: float, keep_alive: float
    ) -> None:
        self.config = uvicorn.Config(
            app,
            http="httptools",
            ws="none",  # an upgrade would replace the protocol behind our back
            lifespan="off",  # the application's owner runs startup and shutdown
            interface="asgi3",
            log_config=None,  # leave the process's logging alone
            access_log=False,
            proxy_headers=False,  # do not trust X-Forwarded-For from anyone
            server_header=False,
            date_header=False,
            timeout_keep_alive=max(1, round(keep_alive)),
        )
        self.config.load()
        self.state = ServerState()
        self.app_state: dict[str, Any] = {}
        self.max_head = max_head
        self.head_timeout = head_timeout

    def accept(
        self, transport: asyncio.Transport, data: bytes, on_close: Callable[[], None]
    ) -> None:
        """Serve `transport`, whose first bytes `data` were already read."""
        protocol = _Protocol(self, on_close)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        protocol.data_received(data)

    def shutdown(self) -> None:
        """Close idle connections; busy ones close after their current response."""
        for protocol in list(self.state.connections):
            protocol.shutdown()

    def cancel(self) -> None:
        """Cancel the requests still running (after the shutdown deadline)."""
        for task in list(self.state.tasks):
            task.cancel()


class _Protocol(HttpToolsProtocol):
    def __init__(self, server: Http1Server, on_close: Callable[[], None]) -> None:
        super().__init__(server.config, server.state, server.app_state)
        self._limit = server.max_head
        self._head_timeout = server.head_timeout
        self._on_close = on_close
        self._in_head = True
        self._head_bytes = 0
        self._timer: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # Count only reads that end inside a request head: a read that
        # completes the head and carries body bytes too is not counted.
        if self._in_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self._limit:
                self._reject(_TOO_LARGE)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes = True, 0
        self._cancel_timer()
        self._timer = self.loop.call_later(self._head_timeout, self._reject, _TIMEOUT)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_timer()
        super().on_headers_complete()

    def eof_received(self) -> bool:  # type: ignore[override]  # asyncio: bool | None
        """The client is done sending (a half-close, as ``nc -N`` or a
        ``shutdown(SHUT_WR)`` does): answer what it asked for, then close.
        uvicorn's own answer closed the transport at once, dropping a
        response still being produced."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and cycle.more_body:
            self.transport.close()  # a body that stopped short: it can never end
        else:
            self.shutdown()  # closes now if idle, else after the current response
        return True  # keep the transport open for writing

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        super().connection_lost(exc)
        self._on_close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _reject(self, response: bytes) -> None:
        self._cancel_timer()
        if self.transport.is_closing():
            return
        # Answer only if no earlier response is being written (pipelining).
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(response)
        self.transport.close()
