"""Raft messages between nodes over HTTP/2: :class:`HttpTransport`.

Sending: one :class:`~uhaha.transport.peer.PeerLink` per peer keeps a
long-lived streaming ``POST /raft/stream`` open (h2c with prior knowledge, or
h2 over TLS when an :class:`ssl.SSLContext` is given) and writes the frames
queued for that peer in coalesced chunks; snapshot chunks go as separate
``POST /raft/snapshot`` requests. Receiving: :meth:`HttpTransport.routes` are
the Starlette routes the node mounts in its ASGI app, served over HTTP/2 by
Hypercorn. Replies are ordinary messages, so they travel on the replier's own
stream to the other node.

Usage::

    transport = HttpTransport("1", node.deliver, auth=secret)
    app = Starlette(routes=[*transport.routes(), ...])
    transport.set_peers({"2": "10.0.0.2:11001", "3": "10.0.0.3:11001"})
    await transport.start()
    transport.send(ready.messages)
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl as _ssl
from collections.abc import Iterable, Mapping

# httpx reaches anyio, which asks sniffio for the running async library on every
# request; without sniffio installed that is a failing import each time (found
# with cProfile). Importing it here makes its absence an error at start-up.
import sniffio  # noqa: F401
from starlette.routing import BaseRoute

from uhaha.raft.messages import Message, SnapshotChunk

from .base import Deliver, PeerStats
from .codec import DEFAULT_MAX_FRAME_SIZE, CodecError, encode, encode_frame
from .peer import LinkOptions, PeerLink
from .server import PeerEndpoints, bearer

__all__ = ["HttpTransport"]

log = logging.getLogger("uhaha.transport")


class HttpTransport:
    """A :class:`~uhaha.transport.base.Transport` over HTTP/2 streams.

    ``deliver`` is called on the event loop with every message received for
    ``local_id``; it must neither block nor raise. ``auth`` is the cluster's
    shared secret: peers must present it, and it is presented to them. ``ssl``
    switches the peer connections to TLS (h2 by ALPN): it is a *client*
    context, trusting the peers' certificates (for a self-signed
    ``--tls-cert``, ``ssl.create_default_context(cafile=cert)``). Queues are bounded per
    peer (``max_queue_messages``, ``max_queue_bytes``; see
    :mod:`uhaha.transport.outbox` for what is dropped when they fill), frames
    over ``max_frame_size`` are refused in both directions, and broken streams
    are reopened after ``backoff_min`` seconds, doubling up to ``backoff_max``.
    A stream idle for ``keepalive`` seconds carries an empty frame, so that a
    connection the peer dropped is noticed while there is nothing to send.
    ``connect_timeout``, ``io_timeout`` (a write or a wait for the peer's flow
    control) and ``snapshot_timeout`` (per chunk request) are in seconds.
    """

    def __init__(
        self,
        local_id: str,
        deliver: Deliver,
        *,
        auth: str | None = None,
        ssl: _ssl.SSLContext | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        max_queue_messages: int = 4096,
        max_queue_bytes: int = 16 << 20,
        backoff_min: float = 0.02,
        backoff_max: float = 1.0,
        connect_timeout: float = 2.0,
        io_timeout: float = 10.0,
        snapshot_timeout: float = 30.0,
        keepalive: float = 1.0,
    ) -> None:
        self.local_id = local_id
        self._max_frame_size = max_frame_size
        self._options = LinkOptions(
            auth_header=bearer(auth) if auth is not None else None,
            ssl=ssl,
            max_queue_messages=max_queue_messages,
            max_queue_bytes=max_queue_bytes,
            backoff_min=backoff_min,
            backoff_max=backoff_max,
            connect_timeout=connect_timeout,
            io_timeout=io_timeout,
            snapshot_timeout=snapshot_timeout,
            keepalive=keepalive,
            boot=secrets.token_hex(8).encode(),
        )
        self._endpoints = PeerEndpoints(
            local_id,
            deliver,
            auth=auth,
            max_frame_size=max_frame_size,
            is_open=self._is_open,
            on_restart=self._peer_restarted,
        )
        self._links: dict[str, PeerLink] = {}
        self._started = False
        self._closed = False
        # Links being closed in the background (set_peers is synchronous).
        self._closing: set[asyncio.Task[None]] = set()
        self.unroutable = 0
        """Messages dropped because their receiver is not a current peer."""

    def _peer_restarted(self, peer_id: str) -> None:
        link = self._links.get(peer_id)
        if link is not None:
            link.restart()

    def _is_open(self) -> bool:
        return not self._closed

    def routes(self) -> list[BaseRoute]:
        """The Starlette routes that receive from peers (``/raft/hello``,
        ``/raft/stream``, ``/raft/snapshot``), for the node's ASGI app."""
        return self._endpoints.routes()

    def set_peers(self, peers: Mapping[str, str]) -> None:
        """Talk to exactly ``peers`` (node id -> ``host:port``) from now on."""
        if self._closed:
            return
        for peer_id, link in list(self._links.items()):
            if peers.get(peer_id) != link.address:
                del self._links[peer_id]
                self._close_later(link)
        for peer_id, address in peers.items():
            if peer_id == self.local_id or peer_id in self._links:
                continue
            link = PeerLink(self.local_id, peer_id, address, self._options)
            self._links[peer_id] = link
            if self._started:
                link.start()

    def _close_later(self, link: PeerLink) -> None:
        if not self._started:
            link.discard()  # nothing was opened yet
            return
        task = asyncio.get_running_loop().create_task(link.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def send(self, msgs: Iterable[Message]) -> None:
        """Queue each message for its receiver's link; never blocks or raises."""
        links = self._links
        for msg in msgs:
            link = links.get(msg.to)
            if link is None:
                self.unroutable += 1
                continue
            try:
                if isinstance(msg, SnapshotChunk):
                    body = encode(msg)
                    if len(body) > self._max_frame_size:
                        raise CodecError(f"snapshot chunk of {len(body)} bytes is over the limit")
                    link.send_snapshot(body)
                else:
                    frame = encode_frame(msg)
                    if len(frame) - 4 > self._max_frame_size:
                        raise CodecError(f"message of {len(frame) - 4} bytes is over the limit")
                    link.send_frame(frame)
            except CodecError as exc:
                # A bug in the caller, not network trouble: say so loudly, but a
                # transport that raised here would break the node's Ready loop.
                log.error(
                    "%s: dropped a %s for %s: %s", self.local_id, type(msg).__name__, msg.to, exc
                )
                link.count_unsendable(str(exc))

    async def start(self) -> None:
        """Start the links (messages sent before are sent now)."""
        if self._started or self._closed:
            return
        self._started = True
        for link in self._links.values():
            link.start()

    async def close(self) -> None:
        """Close every link, end the inbound streams and deliver nothing more
        (the routes answer 503 from now on).

        Stopping a node, call it after the server has stopped accepting
        connections and before it waits for the open requests to finish. With
        Hypercorn 0.18 the order matters: a peer's stream that is still open
        when the graceful timeout expires makes ``serve()`` fail (RuntimeError
        from its task group), and a stream ended *before* the server is
        terminating makes the peer's next frame raise ``KeyError`` inside
        Hypercorn (logged, connection dropped; during the graceful wait it
        makes ``serve()`` fail too). Ended in between, Hypercorn closes each
        connection with GOAWAY and stops cleanly.
        """
        self._closed = True
        # At once, before anything awaits: a handler that ran first would answer
        # a peer's next chunk itself and outlive this call.
        handlers = self._endpoints.end_streams()
        links = list(self._links.values())
        self._links.clear()
        await asyncio.gather(*(link.close() for link in links), *self._closing)
        if handlers:
            await asyncio.wait(handlers, timeout=1.0)

    def stats(self) -> dict[str, PeerStats]:
        """Counters per current peer."""
        return {peer_id: link.stats() for peer_id, link in self._links.items()}
