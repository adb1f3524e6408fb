"""The sending side of the HTTP transport: everything one node sends one peer.

A :class:`PeerLink` keeps one long-lived HTTP/2 request open to the peer's
``POST /raft/stream`` (the design of etcd's rafthttp): its body is an async
generator that waits for frames in the :class:`Outbox` and writes everything
pending as one chunk, so a message costs a frame rather than a request.
Before each stream it asks ``GET /raft/hello`` (on a connection of its own),
because the response to the stream itself only arrives when the stream ends:
the hello is where a wrong secret (401) or a wrong node at the address shows up.

Snapshot chunks go one at a time, in order, as ``POST /raft/snapshot``
requests on a connection of their own, so that a megabyte of snapshot never sits in
front of a heartbeat.

A broken stream is reopened with exponential backoff, on a new connection: each
failure discards its httpx client, because a pooled connection can outlive its
usefulness (a server that is shutting down keeps the connection open but
allows no new streams on it). Connection state changes are logged once each
(the first failure and the recovery, not every retry).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl as _ssl
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass

import httpx

from .base import PeerStats
from .codec import KEEPALIVE
from .outbox import Outbox

__all__ = ["LinkOptions", "PeerLink"]

log = logging.getLogger("uhaha.transport")

# The largest body chunk handed to httpx at once. httpcore cuts a chunk into
# DATA frames of the peer's maximum frame size (16 KiB by default) by slicing
# the remainder each time, which is quadratic in the chunk size; 16 KiB chunks
# avoid that, and coalescing up to that size already amortises the per-write
# cost over dozens of typical messages.
_CHUNK = 16384


@dataclass(frozen=True, slots=True)
class LinkOptions:
    """Settings shared by every peer link of a transport."""

    auth_header: bytes | None = None
    ssl: _ssl.SSLContext | None = None
    max_queue_messages: int = 4096
    max_queue_bytes: int = 16 << 20
    max_snapshot_chunks: int = 4
    backoff_min: float = 0.02
    backoff_max: float = 1.0
    connect_timeout: float = 2.0
    io_timeout: float = 10.0
    snapshot_timeout: float = 30.0
    snapshot_attempts: int = 3
    keepalive: float = 1.0
    boot: bytes = b""
    """This process's boot id, sent with every stream: a peer that sees it
    change knows we restarted, and that its own connection to us is dead."""


class _Refused(Exception):
    """The peer answered, but not as a peer should (wrong secret, wrong node, ...)."""


@functools.cache
def _unused_tls_context() -> _ssl.SSLContext:
    # httpx builds an SSL context for every client, even one that only speaks
    # h2c; handing it this one spares about 1.5 ms per (re)connection.
    return _ssl.SSLContext(_ssl.PROTOCOL_TLS_CLIENT)


def _describe(exc: BaseException) -> str:
    """``Type: message``; for an exception without a message (httpx's WriteError
    says nothing), the innermost cause that has one, which names the socket error."""
    text = str(exc)
    cause = exc.__cause__ or exc.__context__
    while not text and cause is not None:
        text = str(cause) and f"{type(cause).__name__}: {cause}"
        cause = cause.__cause__ or cause.__context__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class PeerLink:
    """One peer: the outbound stream, the snapshot sender and their counters.

    Counters are plain attributes, read by :meth:`stats`.
    """

    def __init__(self, local_id: str, peer_id: str, address: str, options: LinkOptions) -> None:
        self.peer_id = peer_id
        self.address = address
        self._local_id = local_id
        self._opts = options
        scheme = "https" if options.ssl is not None else "http"
        self._base = f"{scheme}://{address}/raft"
        self._headers = {b"authorization": options.auth_header} if options.auth_header else {}
        if options.boot:
            self._headers[b"x-uhaha-boot"] = options.boot
        self._outbox = Outbox(options.max_queue_messages, options.max_queue_bytes)
        self._snapshots: deque[bytes] = deque()
        self._stream_task: asyncio.Task[None] | None = None
        self._snapshot_task: asyncio.Task[None] | None = None
        # The client each sender is using now (replaced after each failure).
        self._clients: set[httpx.AsyncClient] = set()
        self._keepalive: asyncio.TimerHandle | None = None
        self._chunks = 0  # chunks written, to tell an idle stream from a busy one
        self._closed = False
        self._down_logged = False
        self.connected = False
        self.sent = 0
        self.dropped = 0
        self.errors = 0
        self.last_error = ""

    # --- the transport's side ------------------------------------------------

    def send_frame(self, frame: bytes) -> None:
        """Queue an encoded frame for the stream."""
        if self._closed:
            self.dropped += 1
            return
        self.dropped += self._outbox.put(frame)

    def send_snapshot(self, body: bytes) -> None:
        """Queue an encoded :class:`SnapshotChunk` for its own request."""
        if self._closed:
            self.dropped += 1
            return
        if len(self._snapshots) >= self._opts.max_snapshot_chunks:
            # Same policy as the outbox: what is queued is stale by now, and the
            # leader restarts the snapshot from the follower's acknowledged offset.
            self.dropped += len(self._snapshots)
            self._snapshots.clear()
        self._snapshots.append(body)
        if self._snapshot_task is None and self._stream_task is not None:
            self._snapshot_task = asyncio.create_task(self._send_snapshots())

    def count_unsendable(self, reason: str) -> None:
        """Count a message the transport could not even encode for this peer."""
        self.dropped += 1
        self.errors += 1
        self.last_error = reason

    def stats(self) -> PeerStats:
        return PeerStats(
            self.address,
            self.connected,
            self.sent,
            self.dropped,
            self.errors,
            self.last_error,
            queued=len(self._outbox) + len(self._snapshots),
            queued_bytes=self._outbox.nbytes + sum(map(len, self._snapshots)),
        )

    def start(self) -> None:
        """Start connecting (on the running loop)."""
        if self._stream_task is not None or self._closed:
            return
        self._stream_task = asyncio.create_task(self._run())
        self._keepalive = asyncio.get_running_loop().call_later(self._opts.keepalive, self._tick, 0)
        if self._snapshots:
            self._snapshot_task = asyncio.create_task(self._send_snapshots())

    def discard(self) -> None:
        """Close a link that was never started (nothing to wait for)."""
        assert self._stream_task is None
        self._closed = True
        self.dropped += self._outbox.clear() + len(self._snapshots)
        self._snapshots.clear()

    async def close(self) -> None:
        """Stop both senders, drop what is queued and close the connections."""
        self._closed = True
        if self._keepalive is not None:
            self._keepalive.cancel()
        tasks = [t for t in (self._stream_task, self._snapshot_task) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.dropped += self._outbox.clear() + len(self._snapshots)
        self._snapshots.clear()
        self.connected = False
        await asyncio.gather(*(client.aclose() for client in self._clients))
        self._clients.clear()

    # --- connections ---------------------------------------------------------

    def _new_client(self, timeout: float) -> httpx.AsyncClient:
        opts = self._opts
        client = httpx.AsyncClient(
            http1=False,
            http2=True,  # prior knowledge (h2c) over plain TCP, ALPN h2 over TLS
            verify=opts.ssl if opts.ssl is not None else _unused_tls_context(),
            timeout=httpx.Timeout(timeout, connect=opts.connect_timeout),
            trust_env=False,
        )
        self._clients.add(client)
        return client

    async def _drop_client(self, client: httpx.AsyncClient) -> None:
        self._clients.discard(client)
        await client.aclose()

    def _up(self) -> None:
        if not self.connected:
            self.connected = True
            self._down_logged = False
            log.info("%s: connected to peer %s at %s", self._local_id, self.peer_id, self.address)

    def _error(self, what: str) -> None:
        self.errors += 1
        self.last_error = what
        was_up, self.connected = self.connected, False
        if was_up or not self._down_logged:
            self._down_logged = True
            log.warning("%s: peer %s at %s: %s", self._local_id, self.peer_id, self.address, what)
        else:
            log.debug("%s: peer %s still unreachable: %s", self._local_id, self.peer_id, what)

    # --- the stream ----------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        opts = self._opts
        delay = opts.backoff_min
        while True:
            opened = loop.time()
            try:
                await self._hello()
                client = self._new_client(opts.io_timeout)
                try:
                    await self._stream(client)
                finally:
                    await self._drop_client(client)
            except asyncio.CancelledError:
                raise
            except _Refused as exc:
                self._error(str(exc))
            except (httpx.HTTPError, OSError) as exc:
                self._error(_describe(exc))
            except Exception as exc:  # a transport must outlive anything a peer does
                log.exception("%s: unexpected error streaming to %s", self._local_id, self.peer_id)
                self._error(_describe(exc))
            # A stream that lasted a while was healthy: start the backoff over.
            if loop.time() - opened >= opts.backoff_max:
                delay = opts.backoff_min
            await asyncio.sleep(delay)
            delay = min(delay * 2, opts.backoff_max)

    def restart(self) -> None:
        """Drop the current stream and connect again at once: the peer restarted,
        so the connection we hold to its old process is dead even if no write
        has failed yet (TCP tells only on the second write after the death)."""
        task = self._stream_task
        if task is None or self._closed:
            return
        task.cancel()
        self._stream_task = asyncio.create_task(self._run())
        log.debug("%s: peer %s restarted: reconnecting", self._local_id, self.peer_id)

    async def _hello(self) -> None:
        # On a connection of its own, so that the stream is the only request on
        # its connection however few requests per connection the server allows.
        client = self._new_client(self._opts.connect_timeout)
        try:
            resp = await client.get(f"{self._base}/hello", headers=self._headers)
        finally:
            await self._drop_client(client)
        if resp.status_code == 401:
            raise _Refused("peer refused our credentials (401): is --auth the same on both?")
        if resp.status_code != 200:
            raise _Refused(f"peer answered /raft/hello with status {resp.status_code}")
        if resp.text != self.peer_id:
            raise _Refused(f"the node at {self.address} is {resp.text!r}, not {self.peer_id!r}")

    async def _stream(self, client: httpx.AsyncClient) -> None:
        body = self._body()
        try:
            resp = await client.post(f"{self._base}/stream", content=body, headers=self._headers)
        finally:
            await body.aclose()
        raise _Refused(f"peer ended the stream with status {resp.status_code}")

    def _tick(self, chunks: int) -> None:
        """Every ``keepalive`` seconds: wake an idle writer to send a keepalive, so
        that a connection the peer closed is noticed (by the failing write) even
        when there is nothing to send."""
        if self._chunks == chunks:
            self._outbox.poke()
        self._keepalive = asyncio.get_running_loop().call_later(
            self._opts.keepalive, self._tick, self._chunks
        )

    async def _body(self) -> AsyncGenerator[bytes, None]:
        # httpx asks for the first chunk once the request headers are written.
        self._up()
        outbox = self._outbox
        while True:
            if not outbox:
                await outbox.wait()
                if not outbox:  # poked by _tick
                    # Not counted as traffic: an idle link keeps sending one
                    # every interval, so a dead connection shows up quickly.
                    yield KEEPALIVE
                    continue
            data, count = outbox.take(_CHUNK)
            try:
                if len(data) <= _CHUNK:
                    yield data
                else:  # one large frame: hand it over in pieces (see _CHUNK)
                    view = memoryview(data)
                    for start in range(0, len(data), _CHUNK):
                        yield bytes(view[start : start + _CHUNK])
            except GeneratorExit:
                # The write of this chunk failed or was abandoned.
                self.dropped += count
                raise
            self.sent += count
            self._chunks += 1

    # --- snapshots -----------------------------------------------------------

    async def _send_snapshots(self) -> None:
        client = self._new_client(self._opts.snapshot_timeout)
        try:
            while self._snapshots:
                body = self._snapshots.popleft()
                client, ok = await self._post_snapshot(client, body)
                if ok:
                    self.sent += 1
                else:
                    self.dropped += 1
        finally:
            self._snapshot_task = None
            await self._drop_client(client)

    async def _post_snapshot(
        self, client: httpx.AsyncClient, body: bytes
    ) -> tuple[httpx.AsyncClient, bool]:
        """POST one chunk, retrying on a new connection a few times if the
        connection fails (a server may close it under us, as Hypercorn does after
        its request limit). Return the client to go on with, and the outcome."""
        opts = self._opts
        delay = opts.backoff_min
        for attempt in range(opts.snapshot_attempts):
            if attempt:
                await asyncio.sleep(delay)
                delay = min(delay * 2, opts.backoff_max)
            try:
                resp = await client.post(
                    f"{self._base}/snapshot", content=body, headers=self._headers
                )
            except (httpx.HTTPError, OSError) as exc:
                self._snapshot_error(f"snapshot chunk: {_describe(exc)}", retry=True)
                await self._drop_client(client)
                client = self._new_client(opts.snapshot_timeout)
                continue
            if resp.status_code == 204:
                return client, True
            # An answer other than success will not change on a retry.
            self._snapshot_error(f"snapshot chunk refused with status {resp.status_code}")
            return client, False
        log.warning(
            "%s: gave up a snapshot chunk for %s: %s", self._local_id, self.peer_id, self.last_error
        )
        return client, False

    def _snapshot_error(self, what: str, *, retry: bool = False) -> None:
        # Counted, but the stream's connection state is not the snapshot's business.
        self.errors += 1
        self.last_error = what
        if retry:
            log.debug("%s: peer %s: %s (retrying)", self._local_id, self.peer_id, what)
        else:
            log.warning("%s: peer %s: %s", self._local_id, self.peer_id, what)
