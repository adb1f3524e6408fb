"""The front door: one listening socket, every protocol.

Each accepted connection starts with a `_Sniffer` protocol that buffers the
first bytes until `sniff` can tell what they are, within a time and size
budget, then hands the transport (and those bytes) to the RESP handler,
uvicorn (HTTP/1.x), Hypercorn (HTTP/2) or an application `Service`. From
then on the transport talks to that protocol directly; the sniffer only
keeps the connection's slot until it ends.
"""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
from collections.abc import Callable, Sequence
from typing import Any, cast

from uhaha.frontdoor.config import Limits, Service, bind_error
from uhaha.frontdoor.http1 import Http1Server, plain_response
from uhaha.frontdoor.http2 import Http2Server
from uhaha.frontdoor.sniff import Kind, could_be_http, sniff
from uhaha.frontdoor.streams import stream_pair
from uhaha.resp.server import RespHandler, RespProtocol

__all__ = ["ASGIApp", "FrontDoor", "protocol_name"]

log = logging.getLogger("uhaha.frontdoor")

ASGIApp = Callable[..., Any]

_NAMES = {Kind.RESP: "resp", Kind.HTTP1: "http1", Kind.HTTP2: "http2"}


def protocol_name(kind: Kind | str) -> str:
    """``resp``, ``http1``, ``http2``, or an application service's name."""
    return _NAMES[kind] if isinstance(kind, Kind) else kind


_RESP_FULL = b"-ERR max number of clients reached\r\n"
_HTTP_FULL = plain_response(b"503 Service Unavailable", b"max number of clients reached")
_HTTP_LINE_TOO_LONG = plain_response(b"414 URI Too Long", b"Request line too long.")
_HTTP_SNIFF_TIMEOUT = plain_response(b"408 Request Timeout", b"Request line not received in time.")


class FrontDoor:
    """Serves RESP, HTTP/1.x, HTTP/2 and application services on one port.

    `app` (an ASGI app) is served by uvicorn for HTTP/1.x and by Hypercorn
    for HTTP/2, on the running event loop; RESP connections go to `resp`.
    With `ssl`, every protocol runs over TLS; the context is set to offer
    ALPN `h2` and `http/1.1`. The ASGI lifespan is not run: whoever owns
    the app runs its startup and shutdown around `start` and `close`.
    """

    def __init__(
        self,
        app: ASGIApp,
        resp: RespHandler,
        *,
        ssl: ssl_module.SSLContext | None = None,
        services: Sequence[Service] = (),
        limits: Limits | None = None,
    ) -> None:
        self.limits = limits = limits if limits is not None else Limits()
        self.resp = resp
        self.services = {service.name: service for service in services}
        self._sniffers = [(service.name, service.sniff) for service in services]
        self._ssl = ssl
        if ssl is not None:
            ssl.set_alpn_protocols(["h2", "http/1.1"])
        self.http1 = Http1Server(
            app,
            max_head=limits.http_max_head,
            head_timeout=limits.http_head_timeout,
            keep_alive=limits.http_keep_alive,
        )
        self.http2 = Http2Server(
            app, keep_alive=limits.http_keep_alive, max_requests=limits.http2_max_requests
        )
        self._server: asyncio.Server | None = None
        self._conns: set[_Sniffer] = set()  # connections holding a slot
        self._rejecting: set[_Sniffer] = set()  # over the limit, being refused
        self._drained = asyncio.Event()
        self._closing = False
        self.accepted: dict[str, int] = {}
        """Connections handed to each protocol so far, by `protocol_name`."""

    async def start(self, host: str | None, port: int) -> None:
        """Listen on host:port (port 0 picks a free port; see `address`).

        Raises StartupError, with a one-line message, if that fails.
        """
        loop = asyncio.get_running_loop()
        extra: dict[str, Any] = {}
        if self._ssl is not None:
            extra = {"ssl": self._ssl, "ssl_handshake_timeout": self.limits.sniff_timeout}
        try:
            self._server = await loop.create_server(
                self._new_connection, host, port, reuse_address=True, **extra
            )
        except OSError as exc:
            raise bind_error(host, port, exc) from None

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) listened on; the first one if several."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the front door is not listening")
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    @property
    def connections(self) -> int:
        """Connections currently holding a slot (counted against max_connections)."""
        return len(self._conns)

    def open_connections(self) -> dict[str, int]:
        """Connections holding a slot, by `protocol_name` ("pending" until known)."""
        counts: dict[str, int] = {}
        for conn in self._conns:
            name = "pending" if conn.kind is None else protocol_name(conn.kind)
            counts[name] = counts.get(name, 0) + 1
        return counts

    async def close(self, timeout: float | None = None) -> None:
        """Stop listening, let connections finish for `timeout` seconds, then cut them.

        RESP connections write the replies they owe and close; idle HTTP
        connections close at once, busy ones after their response; services
        are cancelled. What is left at the deadline is aborted.
        """
        if self._server is None or self._closing:
            return
        self._closing = True
        self._server.close()
        for conn in list(self._rejecting):
            conn.abort()
        for conn in list(self._conns):
            conn.shutdown()
        self.http1.shutdown()
        await self.http2.shutdown()
        deadline = self.limits.close_timeout if timeout is None else timeout
        if not await self._wait_drained(deadline):
            log.warning("cutting %d connection(s) still open at close", len(self._conns))
            for conn in list(self._conns):
                conn.abort()
            self.http1.cancel()
            self.http2.cancel()
            if not await self._wait_drained(1.0):
                log.warning("%d connection(s) did not end after abort", len(self._conns))
        await self._server.wait_closed()

    async def _wait_drained(self, timeout: float) -> bool:
        async def drained() -> None:
            while self._conns:
                self._drained.clear()
                await self._drained.wait()
            tasks = set(self.http1.state.tasks) | self.http2.tasks
            if tasks:
                await asyncio.wait(tasks)

        try:
            await asyncio.wait_for(drained(), timeout)
        except TimeoutError:
            return False
        return True

    def _new_connection(self) -> _Sniffer:
        return _Sniffer(self)

    def _admit(self, conn: _Sniffer) -> bool:
        if self._closing or len(self._conns) >= self.limits.max_connections:
            self._rejecting.add(conn)
            return False
        self._conns.add(conn)
        return True

    def _release(self, conn: _Sniffer) -> None:
        self._rejecting.discard(conn)
        self._conns.discard(conn)
        if not self._conns:
            self._drained.set()


class _Sniffer(asyncio.Protocol):
    """A new connection until its protocol is known; then its slot."""

    def __init__(self, door: FrontDoor) -> None:
        self.door = door
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.kind: Kind | str | None = None
        self.admitted = False
        self.resp: RespProtocol | None = None
        self.task: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None

    # Before the hand-off

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)
        door = self.door
        self.admitted = door._admit(self)
        limits = door.limits
        wait = limits.sniff_timeout if self.admitted else limits.reject_timeout
        reply = _HTTP_SNIFF_TIMEOUT if self.admitted else _HTTP_FULL
        self.timer = asyncio.get_running_loop().call_later(wait, self._give_up, "timed out", reply)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
            self._decided(Kind.HTTP2)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        kind = sniff(bytes(self.buffer), self.door._sniffers)
        if kind is not None:
            self._decided(kind)
        elif len(self.buffer) > self.door.limits.sniff_max_bytes:
            self._give_up("sent too much without a recognizable protocol", _HTTP_LINE_TOO_LONG)

    def eof_received(self) -> bool:
        return False  # undecided and done sending: let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        # Only reached before a hand-off (after it, the transport calls the
        # new protocol, which reports the end through _ended).
        self._ended()

    def _give_up(self, why: str, http_reply: bytes) -> None:
        """Close a connection whose protocol never became clear; one that
        looks like an HTTP request line is told why, in HTTP."""
        log.debug("closing a connection that %s (%d bytes)", why, len(self.buffer))
        if self.transport is not None:
            if could_be_http(bytes(self.buffer)):
                self.transport.write(http_reply)
            self.transport.close()

    def _decided(self, kind: Kind | str) -> None:
        assert self.transport is not None
        if self.timer is not None:
            self.timer.cancel()
        self.kind, data, self.buffer = kind, bytes(self.buffer), bytearray()
        if not self.admitted:
            self._refuse(kind)
            return
        door, transport = self.door, self.transport
        name = protocol_name(kind)
        door.accepted[name] = door.accepted.get(name, 0) + 1
        if kind is Kind.RESP:
            self.resp = door.resp.accept(transport, data, self._ended)
        elif kind is Kind.HTTP1:
            door.http1.accept(transport, data, self._ended)
        elif kind is Kind.HTTP2:
            self.task = door.http2.accept(transport, data, self._ended)
        else:
            self.task = self._serve(door.services[str(kind)], transport, data)

    def _refuse(self, kind: Kind | str) -> None:
        assert self.transport is not None
        if kind is Kind.RESP:
            self.transport.write(_RESP_FULL)
        elif kind is Kind.HTTP1:
            self.transport.write(_HTTP_FULL)
        self.transport.close()

    def _serve(
        self, service: Service, transport: asyncio.Transport, data: bytes
    ) -> asyncio.Task[None]:
        reader, writer = stream_pair(transport, data)

        async def run() -> None:
            await service.handler(reader, writer)

        task = asyncio.get_running_loop().create_task(run())

        def done(task: asyncio.Task[None]) -> None:
            if not task.cancelled() and task.exception() is not None:
                log.error("service %s failed", service.name, exc_info=task.exception())
            writer.close()  # the connection ends with its handler
            self._ended()

        task.add_done_callback(done)
        return task

    # After the hand-off

    def _ended(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.door._release(self)

    def shutdown(self) -> None:
        """Start a graceful close of this connection."""
        if self.kind is None:
            self.abort()
        elif self.resp is not None:
            self.resp.shutdown()
        elif self.task is not None and self.kind not in (Kind.HTTP1, Kind.HTTP2):
            self.task.cancel()  # a service: cancelling is its signal to stop
        # HTTP connections are shut down by their servers, all at once.

    def abort(self) -> None:
        """Cut the connection now."""
        if self.transport is not None:
            self.transport.abort()
        if self.task is not None:
            self.task.cancel()
