"""Real sockets on 127.0.0.1 for transport tests: Hypercorn servers and inboxes."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.applications import Starlette

from uhaha.raft.messages import Message
from uhaha.transport import HttpTransport

__all__ = ["Inbox", "Peer", "Server", "wait_until"]

TIMEOUT = 10.0
"""The most any single wait in these tests may take."""


async def wait_until(cond: Callable[[], bool], timeout: float = TIMEOUT, what: str = "") -> None:
    """Poll ``cond`` on the loop until it holds, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await asyncio.sleep(0.005)


class Inbox:
    """A ``deliver`` callback that records messages and wakes waiters."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._changed = asyncio.Event()

    def __call__(self, msg: Message) -> None:
        self.messages.append(msg)
        self._changed.set()

    async def wait_for(self, count: int, timeout: float = TIMEOUT) -> list[Message]:
        """Wait until at least ``count`` messages arrived; return them all."""

        async def _wait() -> None:
            while len(self.messages) < count:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(_wait(), timeout)
        return self.messages


class Server:
    """Hypercorn (h2c, or h2 over TLS) serving a Starlette app on one 127.0.0.1
    port that survives restarts."""

    def __init__(
        self,
        app: Starlette | None = None,
        *,
        keep_alive_max_requests: int = 1000,
        certfile: str | None = None,
        keyfile: str | None = None,
    ) -> None:
        self.app = app
        self.keep_alive_max_requests = keep_alive_max_requests
        self.certfile, self.keyfile = certfile, keyfile
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port: int = probe.getsockname()[1]
        probe.close()
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._task is not None

    async def start(self) -> None:
        # Bind here (not in Hypercorn) so that the port is known and listening
        # before the first peer connects; Hypercorn takes ownership of the fd.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(128)
        config = Config()
        config.bind = [f"fd://{sock.detach()}"]
        config.keep_alive_max_requests = self.keep_alive_max_requests
        config.graceful_timeout = 0.2
        config.accesslog = None
        config.errorlog = None
        if self.certfile:
            config.certfile, config.keyfile = self.certfile, self.keyfile
        assert self.app is not None
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(
            serve(self.app, config, shutdown_trigger=self._stop.wait)  # type: ignore[arg-type]
        )

    async def stop(self, on_terminated: Callable[[], Awaitable[None]] | None = None) -> None:
        """Stop serving. ``on_terminated`` runs once Hypercorn has stopped
        accepting (and so marked itself terminated) but before it waits for the
        open requests: the moment to end long-lived requests (see
        :meth:`HttpTransport.close`)."""
        assert self._task is not None and self._stop is not None
        self._stop.set()
        if on_terminated is not None:
            # Hypercorn sets its terminated flag just before it closes the
            # listening socket: wait for connections to be refused.
            await wait_until(self._refusing, what="Hypercorn to stop accepting")
            await on_terminated()
        await asyncio.wait_for(self._task, TIMEOUT)
        self._task = None

    def _refusing(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        return False


class Peer:
    """One node's worth of transport: an HttpTransport, its inbox and its server.

    :meth:`stop` and :meth:`restart` act like a node going down and coming back
    on the same port, with a new transport (messages received are kept).
    """

    def __init__(
        self,
        node_id: str,
        *,
        keep_alive_max_requests: int = 1000,
        cert: tuple[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        """``cert`` is a (certificate file, key file) pair to serve TLS with;
        ``kwargs`` go to :class:`HttpTransport`."""
        self.id = node_id
        self.inbox = Inbox()
        self._kwargs = kwargs
        self._peers: dict[str, str] = {}
        certfile, keyfile = cert or (None, None)
        self.server = Server(
            keep_alive_max_requests=keep_alive_max_requests, certfile=certfile, keyfile=keyfile
        )
        self.transport = self._new_transport()

    def _new_transport(self) -> HttpTransport:
        transport = HttpTransport(self.id, self.inbox, **self._kwargs)
        self.server.app = Starlette(routes=transport.routes())
        return transport

    @property
    def address(self) -> str:
        return self.server.address

    async def start(self, peers: dict[str, str]) -> None:
        """Serve, and stream to ``peers``."""
        self._peers = peers
        await self.server.start()
        self.transport.set_peers(peers)
        await self.transport.start()

    async def stop(self) -> None:
        """Stop the server, closing the transport in the middle (the order a node
        must use: see :meth:`HttpTransport.close`)."""
        if self.server.running:
            await self.server.stop(on_terminated=self.transport.close)
        else:
            await self.transport.close()

    async def restart(self) -> None:
        self.transport = self._new_transport()
        await self.start(self._peers)
