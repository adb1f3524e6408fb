"""HTTP/2 connections (h2c prior knowledge, or h2 over TLS), served by Hypercorn.

The transport is wrapped in a StreamReader/StreamWriter, with the bytes
already read fed first, and run by `hypercorn.asyncio.tcp_server.TCPServer`
(an internal Hypercorn API: Hypercorn is pinned in pyproject.toml and
tests/frontdoor covers the hand-off). Without TLS, Hypercorn starts as
HTTP/1.1, sees the HTTP/2 preface and switches to HTTP/2 itself; over TLS
it reads ALPN `h2` from the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.asyncio.worker_context import AsyncioSingleTask, WorkerContext
from hypercorn.config import Config
from hypercorn.typing import TaskGroup

from uhaha.frontdoor.streams import stream_pair

__all__ = ["Http2Server"]

log = logging.getLogger("uhaha.frontdoor.http2")

ASGIApp = Callable[..., Any]


class Http2Server:
    """Hypercorn's connection server for connections handed over one at a time."""

    def __init__(self, app: ASGIApp, *, keep_alive: float, max_requests: int) -> None:
        config = Config()
        config.keep_alive_timeout = keep_alive
        # Hypercorn closes a connection after this many requests (1,000 by
        # default); peers keep one connection for a long time.
        config.keep_alive_max_requests = max_requests
        config.include_server_header = False
        config.accesslog = None
        config.errorlog = logging.getLogger("uhaha.frontdoor.http2")
        self.config = config
        self.app = ASGIWrapper(_ascii_targets(app))
        self.context = WorkerContext(None)
        self.lifespan_state: dict[str, Any] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def accept(
        self, transport: asyncio.Transport, data: bytes, on_close: Callable[[], None]
    ) -> asyncio.Task[None]:
        """Serve `transport`, whose first bytes `data` were already read."""
        loop = asyncio.get_running_loop()
        reader, writer = stream_pair(transport, data)
        server = TCPServer(
            self.app, loop, self.config, self.context, self.lifespan_state, reader, writer
        )
        server.idle_task = _IdleTask()
        task = loop.create_task(server.run())
        self.tasks.add(task)

        def done(task: asyncio.Task[None]) -> None:
            self.tasks.discard(task)
            if not task.cancelled() and (exc := task.exception()) is not None:
                # Hypercorn 0.18 can fail a connection on a frame for a stream
                # it already dropped (a KeyError, seen when peers restart): the
                # connection is gone either way; no "never retrieved" traceback.
                log.debug("HTTP/2 connection ended by an error: %r", exc)
            if not transport.is_closing():  # Hypercorn's error path may not close it
                transport.abort()
            on_close()

        task.add_done_callback(done)
        return task

    async def shutdown(self) -> None:
        """Tell connections to finish: idle ones close, busy ones after their streams."""
        await self.context.terminated.set()

    def cancel(self) -> None:
        """Cancel the connections still open (after the shutdown deadline)."""
        for task in list(self.tasks):
            task.cancel()


_NOT_ASCII = b"Invalid HTTP request received."


def _ascii_targets(app: ASGIApp) -> ASGIApp:
    """Refuse (400) a request whose path or query is not ASCII, as HTTP/1.1's parser does.

    h2 lets any byte through in `:path`, and Starlette decodes the query as
    UTF-8 in places (`request.url`, slash redirects): without this check such
    a request ends in a 500 and a traceback.
    """

    async def checked(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not (
            scope.get("raw_path", b"").isascii() and scope.get("query_string", b"").isascii()
        ):
            headers = [(b"content-type", b"text/plain; charset=utf-8")]
            await send({"type": "http.response.start", "status": 400, "headers": headers})
            await send({"type": "http.response.body", "body": _NOT_ASCII})
            return
        await app(scope, receive, send)

    return checked


class _IdleTask(AsyncioSingleTask):
    """Hypercorn's idle-timeout task holder, safe while its task group shuts down.

    When a connection is cancelled (the close deadline passed), Hypercorn may
    restart its idle timer on a task group that no longer takes tasks; its
    own version then leaks an un-awaited coroutine (a RuntimeWarning).
    """

    async def restart(self, task_group: TaskGroup, action: Callable[[], Any]) -> None:
        async with self._lock:
            if self._handle is not None:
                self._handle.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._handle
            coroutine = action()
            try:
                self._handle = task_group._task_group.create_task(coroutine)  # type: ignore[attr-defined]
            except RuntimeError:  # the group is shutting down
                coroutine.close()
                self._handle = None
