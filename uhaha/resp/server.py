"""The RESP connection handler: bytes in, commands to the dispatcher, replies out.

Per connection: bytes are parsed into commands; each command is answered by
the connection-level commands (commands.py) or submitted to the dispatcher
synchronously, in arrival order. Replies are written strictly in that order:
a reply that is ready waits behind an earlier one still being computed.
Everything ready at the end of one read is written with one
`transport.write`, so a pipelined burst costs one system call.

Backpressure: reading pauses while `max_pending` replies are still owed, or
while the transport's write buffer is above its high-water mark (a client
that sends but never reads), and resumes when they drain. So a connection
holds at most one partial request, one read's worth of bytes and
`max_pending` replies.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeGuard, cast

from uhaha.resp.commands import COMMANDS, NOAUTH, PRE_AUTH, ServerInfo, Session
from uhaha.resp.connection import Connection, RespDispatcher, format_address
from uhaha.resp.parser import ParserLimits, RespParser
from uhaha.resp.types import Error, ProtocolError, Reply
from uhaha.resp.writer import encode, encode_into

__all__ = ["DEFAULT_MAX_PENDING", "RespHandler", "RespProtocol"]

log = logging.getLogger("uhaha.resp")

#: Replies owed to one connection before it stops reading more commands.
DEFAULT_MAX_PENDING = 1024

#: Seconds a started command may take to arrive completely (from the first
#: byte the parser holds of it, however slowly the rest trickles in).
DEFAULT_REQUEST_TIMEOUT = 60.0


class RespHandler:
    """Serves RESP clients on behalf of a dispatcher.

    Use `protocol` as the protocol factory of `loop.create_server` for a
    RESP-only listener, or `accept` to take over a connection whose first
    bytes were already read (the front door does that).

    `check_auth(password) -> bool`, when given, makes authentication
    required: until a successful AUTH (or HELLO ... AUTH), a connection gets
    `-NOAUTH Authentication required.` for everything but AUTH, HELLO and
    QUIT, and tighter parser limits (see ParserLimits.unauthenticated).
    """

    def __init__(
        self,
        dispatcher: RespDispatcher,
        *,
        check_auth: Callable[[bytes], bool] | None = None,
        limits: ParserLimits | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        idle_timeout: float = 0.0,
        info: ServerInfo | None = None,
        convert: Callable[[asyncio.Future[Any]], Reply] | None = None,
        on_auth_failure: Callable[[Connection], None] | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.convert = convert
        """Turns a finished future the dispatcher returned into the reply (its
        errors and status values included), so that a dispatcher can hand back
        its own futures without a coroutine wrapping each command."""
        self.limits = limits if limits is not None else ParserLimits()
        self.max_pending = max_pending
        self.request_timeout = request_timeout
        self.idle_timeout = idle_timeout
        """Seconds a connection may go without a read or a reply (and with no
        reply owed) before it is closed: Redis's ``timeout`` (0: never; MONITOR
        connections never)."""
        self.session = Session(
            check_auth, info if info is not None else ServerInfo(), on_auth_failure
        )
        self._ids = itertools.count(1)

    def next_id(self) -> int:
        """A new connection id (unique for this handler)."""
        return next(self._ids)

    def protocol(self) -> RespProtocol:
        """A protocol for a new connection (a protocol factory)."""
        return RespProtocol(self)

    def accept(
        self,
        transport: asyncio.Transport,
        data: bytes = b"",
        on_close: Callable[[], None] | None = None,
    ) -> RespProtocol:
        """Take over an open transport; `data` is what was already read from it."""
        protocol = RespProtocol(self, on_close)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if data:
            protocol.data_received(data)
        return protocol


class _Slot:
    """A reply owed to the client: a value, or a future of one."""

    __slots__ = ("future", "proto", "value")

    def __init__(self, value: Reply, future: asyncio.Future[Reply] | None, proto: int) -> None:
        self.value = value
        self.future = future
        self.proto = proto


class RespProtocol(asyncio.Protocol):
    """One RESP connection (an asyncio protocol)."""

    def __init__(self, handler: RespHandler, on_close: Callable[[], None] | None = None) -> None:
        self._handler = handler
        self._dispatcher = handler.dispatcher
        self._session = handler.session
        self._on_close = on_close
        self._transport: asyncio.Transport | None = None
        self._parser = RespParser(handler.limits)
        self._queue: deque[_Slot] = deque()  # replies owed, oldest first
        self._out: list[bytes] = []  # encoded replies not yet written
        self._closing = False  # take no more commands; close once the queue drains
        self._lost = False
        self._write_paused = False
        self._reading = True
        self._pump_scheduled = False
        self.conn = Connection(0, "?", self.shutdown)
        self._commands = 0  # commands parsed so far (progress, for the request timer)
        self._request_timer: asyncio.TimerHandle | None = None
        self._last_active = 0.0  # loop time of the last read or reply (for the idle timer)
        self._idle_timer: asyncio.TimerHandle | None = None
        self._time: Callable[[], float] = time.monotonic

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start a connection: tell the dispatcher it opened."""
        self._transport = cast(asyncio.Transport, transport)
        peer = format_address(transport.get_extra_info("peername"))
        self.conn = Connection(self._handler.next_id(), peer, self.shutdown, self.push)
        self.conn.authenticated = self._session.check_auth is None
        self._set_limits()
        if self._handler.idle_timeout > 0:
            loop = asyncio.get_running_loop()
            self._time = loop.time
            self._last_active = loop.time()
            self._idle_timer = loop.call_later(self._handler.idle_timeout, self._idle_expired)
        try:
            self._dispatcher.opened(self.conn)
        except Exception:
            log.exception("dispatcher.opened failed for %r; closing it", self.conn)
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        """Parse what arrived and run every complete command."""
        if self._idle_timer is not None:
            self._last_active = self._time()
        self._parser.feed(data)
        self._pump()
        if self._request_timer is None and self._parser.buffered and not self._closing:
            self._request_timer = asyncio.get_running_loop().call_later(
                self._handler.request_timeout, self._request_expired, self._commands
            )

    def _request_expired(self, commands_then: int) -> None:
        """A command began ``request_timeout`` s ago: close if none finished since."""
        self._request_timer = None
        if self._lost or self._closing or not self._parser.buffered:
            return
        waiting_for_us = self._write_paused or len(self._queue) >= self._handler.max_pending
        if self._commands != commands_then or waiting_for_us:  # not the client's fault
            self._request_timer = asyncio.get_running_loop().call_later(
                self._handler.request_timeout, self._request_expired, self._commands
            )
            return
        timeout = self._handler.request_timeout
        log.info("%r: no complete command within %g s: closing it", self.conn, timeout)
        self._reply(
            Error(f"ERR Protocol error: command not completed within {timeout:g} s"),
            self.conn.protocol,
        )
        self._closing = True
        self._pump()

    def _idle_expired(self) -> None:
        """Close the connection if nothing was read from it or written to it
        for ``idle_timeout`` s. One owed a reply (a command still running) or
        a feed (MONITOR) is busy: its idle time starts again."""
        self._idle_timer = None
        if self._lost or self._closing:
            return
        loop = asyncio.get_running_loop()
        timeout, now = self._handler.idle_timeout, loop.time()
        if self._queue or self._out or self.conn.feed:
            self._last_active = now
        idle_for = now - self._last_active
        if idle_for < timeout:
            self._idle_timer = loop.call_later(timeout - idle_for, self._idle_expired)
            return
        log.debug("%r: idle for %g s: closing it", self.conn, timeout)
        self._closing = True
        self._pump()

    def eof_received(self) -> bool:
        """The client half-closed (`echo PING | nc`): answer what it sent, then close."""
        self._closing = True
        self._pump()
        # Keeping the transport open lets the replies out; over TLS asyncio
        # ignores the answer (and says so), so give it only for plain TCP.
        return self._transport is not None and not self._is_tls()

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the replies still owed and tell the dispatcher."""
        self._lost = self._closing = True
        if self._request_timer is not None:
            self._request_timer.cancel()
            self._request_timer = None
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        # Commands already submitted run on (a write may be on its way
        # through the log); only their replies are dropped.
        self._queue.clear()
        self._out.clear()
        try:
            self._dispatcher.closed(self.conn)
        except Exception:
            log.exception("dispatcher.closed failed for %r", self.conn)
        if self._on_close is not None:
            self._on_close()

    def pause_writing(self) -> None:
        """The client does not read fast enough: stop taking commands."""
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        """The write buffer drained: take commands again."""
        self._write_paused = False
        self._pump()

    # Public

    def shutdown(self) -> None:
        """Close gracefully: take no more commands, close once owed replies are written.

        Safe to call from anywhere, a command included (QUIT does): the work
        happens in a callback of its own.
        """
        self._closing = True
        self._schedule_pump()

    def push(self, value: Reply) -> None:
        """Send ``value`` unprompted (MONITOR's feed), after the replies owed.

        A client that does not read its feed is cut off rather than allowed
        to grow this server's memory without bound."""
        if self._lost or self._closing:
            return
        if len(self._queue) + len(self._out) > self._handler.max_pending * 4:
            log.info("%r does not read its feed: closing it", self.conn)
            self.abort()
            return
        self._reply(value, self.conn.protocol)
        self._schedule_pump()

    def abort(self) -> None:
        """Cut the connection now, dropping the replies owed."""
        if self._transport is not None:
            self._transport.abort()

    @property
    def pending(self) -> int:
        """Replies owed and not yet written."""
        return len(self._queue)

    # Internals

    def _is_tls(self) -> bool:
        return self._transport is not None and (
            self._transport.get_extra_info("sslcontext") is not None
        )

    def _set_limits(self) -> None:
        limits = self._handler.limits
        self._parser.limits = limits if self.conn.authenticated else limits.unauthenticated()

    def _pump(self) -> None:
        """Run commands and write replies until nothing more can move."""
        if self._lost:
            return
        while self._process():
            self._flush()
        self._flush()
        self._update_reading()

    def _process(self) -> bool:
        """Run the complete commands buffered; True if stopped by the pending limit."""
        parser, max_pending = self._parser, self._handler.max_pending
        while not self._closing and not self._write_paused:
            if len(self._queue) >= max_pending:
                return self._can_drain()
            try:
                args = parser.next_command()
            except ProtocolError as exc:
                self._reply(Error(f"ERR Protocol error: {exc}"), self.conn.protocol)
                self._closing = True
                break
            if args is None:
                break
            self._commands += 1
            self._execute(args)
        return False

    def _can_drain(self) -> bool:
        # Worth flushing and looping only if the oldest owed reply is ready.
        first = self._queue[0].future
        return first is None or first.done()

    def _execute(self, args: list[bytes]) -> None:
        conn = self.conn
        name = args[0].upper()
        if not conn.authenticated and name not in PRE_AUTH:
            self._reply(NOAUTH, conn.protocol)
            return
        command = COMMANDS.get(name)
        proto = conn.protocol
        try:
            if command is None:
                result = self._dispatcher.submit(conn, args)
            else:
                result = command(self._session, conn, args)
                self._set_limits()  # AUTH or HELLO may have authenticated the client
                proto = conn.protocol  # HELLO's reply is in the new version already
        except Exception as exc:
            self._reply(_error_reply(exc), proto)
            return
        if _is_awaitable(result):
            future = asyncio.ensure_future(result)
            future.add_done_callback(self._on_done)
            self._queue.append(_Slot(None, future, proto))
        else:
            self._reply(cast(Reply, result), proto)

    def _reply(self, value: Reply, proto: int) -> None:
        if self._queue:
            self._queue.append(_Slot(value, None, proto))
        else:
            self._encode(value, proto)

    def _encode(self, value: Reply, proto: int) -> None:
        out = self._out
        size = len(out)
        try:
            encode_into(out, value, proto)
        except (TypeError, ValueError, RecursionError) as exc:
            del out[size:]
            log.debug("cannot encode a reply for %r", self.conn, exc_info=True)
            out.append(encode(Error(f"ERR cannot encode the reply: {exc}"), proto))

    def _on_done(self, future: asyncio.Future[Reply]) -> None:
        if not future.cancelled():
            future.exception()  # retrieved here, so a dropped reply logs no warning
        # Coalesced: futures finishing in the same loop iteration get one write.
        self._schedule_pump()

    def _schedule_pump(self) -> None:
        if not self._pump_scheduled and not self._lost:
            self._pump_scheduled = True
            asyncio.get_running_loop().call_soon(self._scheduled_pump)

    def _scheduled_pump(self) -> None:
        self._pump_scheduled = False
        self._pump()

    def _flush(self) -> None:
        queue = self._queue
        while queue:
            slot = queue[0]
            if slot.future is None:
                value = slot.value
            elif slot.future.done():
                convert = self._handler.convert
                value = (
                    convert(slot.future)
                    if convert is not None and not slot.future.cancelled()
                    else _future_reply(slot.future)
                )
            else:
                break
            queue.popleft()
            self._encode(value, slot.proto)
        transport = self._transport
        if transport is None or transport.is_closing():
            self._out.clear()
            return
        if self._out:
            data = b"".join(self._out)
            self._out.clear()
            transport.write(data)
            if self._idle_timer is not None:
                self._last_active = self._time()  # a reply: idle time starts now
        if self._closing and not queue:
            transport.close()

    def _update_reading(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        want = (
            not self._closing
            and not self._write_paused
            and len(self._queue) < self._handler.max_pending
        )
        if want != self._reading:
            self._reading = want
            if want:
                transport.resume_reading()
            else:
                transport.pause_reading()


def _is_awaitable(value: object) -> TypeGuard[Awaitable[Reply]]:
    # Cheaper than inspect.isawaitable, whose ABC check costs about a
    # microsecond per command; coroutines and futures both have __await__.
    return hasattr(type(value), "__await__")


def _error_reply(exc: BaseException) -> Error:
    log.debug("command failed", exc_info=exc)
    return Error(f"ERR {str(exc) or type(exc).__name__}")


def _future_reply(future: asyncio.Future[Reply]) -> Reply:
    if future.cancelled():
        return Error("ERR command cancelled")
    exc = future.exception()
    return _error_reply(exc) if exc is not None else future.result()
