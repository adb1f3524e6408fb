"""The receiving side of the HTTP transport: Starlette routes under ``/raft/``.

- ``GET /raft/hello`` answers this node's id, so that a connecting peer can
  check its credentials and that it reached the node it meant to.
- ``POST /raft/stream`` is one peer's long-lived stream: a request body of
  frames (see :mod:`uhaha.transport.codec`) that lasts as long as the
  connection. Each message is delivered as soon as its frame is complete.
- ``POST /raft/snapshot`` carries one encoded :class:`SnapshotChunk`, so that
  large chunks travel apart from the stream and never delay a heartbeat.

Every route checks ``Authorization: Bearer <secret>`` (with
:func:`hmac.compare_digest`) before it looks at the body, and a malformed body
ends the request: the first bad frame fails the decoder, so no message after
it is delivered. An unauthenticated or malformed request can therefore never
reach the Raft core.

A refusal is answered at once, but the request is finished only after the rest
of its body has been discarded (up to 1 MiB, for up to 2 seconds). Hypercorn
0.18 forgets an HTTP/2 stream as soon as its response is complete, and the next
DATA frame for it raises ``KeyError`` inside Hypercorn, which logs the error
and drops the connection: a client still sending its body would see a broken
connection instead of the answer.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from uhaha.raft.messages import SnapshotChunk

from .base import Deliver
from .codec import CodecError, FrameDecoder, decode

__all__ = ["PeerEndpoints", "bearer"]

log = logging.getLogger("uhaha.transport")

_DRAIN_BYTES = 1 << 20
_DRAIN_SECONDS = 2.0
_REFUSAL_LOG_INTERVAL = 10.0


def bearer(auth: str) -> bytes:
    """The ``Authorization`` header value for the shared secret ``auth``."""
    return b"Bearer " + auth.encode()


def _peer(request: Request) -> str:
    client = request.client
    return f"{client.host}:{client.port}" if client else "unknown peer"


class _Body:
    """Reads a request body chunk by chunk, remembering whether it has ended."""

    def __init__(self, request: Request) -> None:
        self._receive = request.receive
        self.complete = False
        self.disconnected = False

    async def chunks(self) -> AsyncIterator[bytes]:
        receive = self._receive
        while not self.complete:
            message = await receive()
            if message["type"] != "http.request":  # http.disconnect
                self.disconnected = self.complete = True
                return
            self.complete = not message.get("more_body", False)
            body: bytes = message.get("body", b"")
            if body:
                yield body

    def reply(self, status: int, text: str = "", headers: dict[str, str] | None = None) -> Response:
        """A response that first discards what is left of this body (see the module)."""
        drain = not self.complete
        return _Reply(text, status, headers, receive=self._receive if drain else None)


class _Reply(Response):
    media_type = "text/plain"

    def __init__(
        self, text: str, status: int, headers: dict[str, str] | None, *, receive: Receive | None
    ) -> None:
        super().__init__(text, status, headers)
        self._drain = receive

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._drain is None:
            await super().__call__(scope, receive, send)
            return
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        drained = 0
        try:
            async with asyncio.timeout(_DRAIN_SECONDS):
                while drained <= _DRAIN_BYTES:
                    message = await self._drain()
                    if message["type"] != "http.request" or not message.get("more_body", False):
                        break
                    drained += len(message.get("body", b""))
        except TimeoutError:
            pass
        await send({"type": "http.response.body", "body": self.body})


class PeerEndpoints:
    """The ``/raft/`` routes of one node, delivering what peers send it."""

    def __init__(
        self,
        local_id: str,
        deliver: Deliver,
        *,
        auth: str | None,
        max_frame_size: int,
        is_open: Callable[[], bool],
        on_restart: Callable[[str], None] | None = None,
    ) -> None:
        self._local_id = local_id
        self._on_restart = on_restart
        self._boots: dict[str, bytes] = {}
        """The boot id each peer last streamed with."""
        self._deliver = deliver
        self._expected = bearer(auth) if auth is not None else None
        self._max_frame_size = max_frame_size
        self._is_open = is_open
        # The tasks running stream handlers, so that close() can end them, and
        # those it asked to end (any other cancellation is not ours to absorb).
        self._handlers: set[asyncio.Task[object]] = set()
        self._ending: set[asyncio.Task[object]] = set()
        self._refusals_logged_at = float("-inf")

    def routes(self) -> list[BaseRoute]:
        """The three routes, for the node's Starlette app."""
        return [
            Route("/raft/hello", self.hello, methods=["GET"]),
            Route("/raft/stream", self.stream, methods=["POST"]),
            Route("/raft/snapshot", self.snapshot, methods=["POST"]),
        ]

    def end_streams(self) -> list[asyncio.Task[object]]:
        """Make every inbound stream end (each answers 503); return their tasks.

        Hypercorn 0.18 cannot shut down cleanly while a request is still
        running: when its graceful timeout cancels one, it fails with
        ``RuntimeError: TaskGroup ... is shutting down``. So a node closes its
        transport (which calls this) before it stops its server.
        """
        handlers = list(self._handlers)
        for task in handlers:
            self._ending.add(task)
            task.cancel()
        return handlers

    def _refusal(self, request: Request, body: _Body) -> Response | None:
        """The response that refuses ``request``, or None if it may proceed."""
        if self._expected is not None:
            # Exactly one Authorization header, compared as raw bytes in
            # constant time (a str comparison would leak the matching prefix).
            values = [v for k, v in request.scope["headers"] if k == b"authorization"]
            if len(values) != 1 or not hmac.compare_digest(values[0], self._expected):
                self._log_refusal(request)
                return body.reply(401, headers={"WWW-Authenticate": "Bearer"})
        if not self._is_open():
            return body.reply(503, "transport closed")
        return None

    def _log_refusal(self, request: Request) -> None:
        # A misconfigured peer retries every second or so, and anyone can knock:
        # one warning per interval, the rest at debug level.
        now = asyncio.get_running_loop().time()
        if now - self._refusals_logged_at >= _REFUSAL_LOG_INTERVAL:
            self._refusals_logged_at = now
            log.warning(
                "refused a peer request from %s: bad or missing auth (more within %gs at debug)",
                _peer(request),
                _REFUSAL_LOG_INTERVAL,
            )
        else:
            log.debug("refused a peer request from %s: bad or missing auth", _peer(request))

    async def hello(self, request: Request) -> Response:
        body = _Body(request)
        return self._refusal(request, body) or Response(self._local_id, media_type="text/plain")

    async def stream(self, request: Request) -> Response:
        body = _Body(request)
        refusal = self._refusal(request, body)
        if refusal is not None:
            return refusal
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            return await self._receive_stream(request, body)
        except asyncio.CancelledError:
            if task not in self._ending:
                raise
            # close() ended this stream: finish the request normally (and at
            # once: the server is about to stop), so that Hypercorn sends the
            # response and closes the stream.
            task.uncancel()
            return Response("transport closed", 503, media_type="text/plain")
        finally:
            self._handlers.discard(task)
            self._ending.discard(task)

    async def _receive_stream(self, request: Request, body: _Body) -> Response:
        peer = _peer(request)
        decoder = FrameDecoder(self._max_frame_size)
        deliver, local_id, is_open = self._deliver, self._local_id, self._is_open
        misrouted = 0
        boot = request.headers.get("x-uhaha-boot", "").encode()
        try:
            async for chunk in body.chunks():
                for msg in decoder.feed(chunk):
                    if boot:
                        self._seen_boot(msg.frm, boot)
                        boot = b""
                    if msg.to != local_id:
                        misrouted += 1
                        if misrouted == 1:
                            log.warning("peer %s sent a message for node %r", peer, msg.to)
                        continue
                    if not is_open():  # closing: answer at once, the server is stopping
                        return Response("transport closed", 503, media_type="text/plain")
                    deliver(msg)
            if body.disconnected:
                log.debug("peer %s closed its stream", peer)
            else:
                decoder.close()
        except CodecError as exc:
            log.warning("closed malformed stream from %s: %s", peer, exc)
            return body.reply(400, f"malformed stream: {exc}")
        return Response(status_code=204)

    def _seen_boot(self, peer_id: str, boot: bytes) -> None:
        previous = self._boots.get(peer_id)
        self._boots[peer_id] = boot
        if previous is not None and previous != boot and self._on_restart is not None:
            self._on_restart(peer_id)

    async def snapshot(self, request: Request) -> Response:
        body = _Body(request)
        refusal = self._refusal(request, body)
        if refusal is not None:
            return refusal
        limit = self._max_frame_size
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return body.reply(413, f"a snapshot chunk is at most {limit} bytes")
        data = bytearray()
        async for chunk in body.chunks():
            data += chunk
            if len(data) > limit:
                return body.reply(413, f"a snapshot chunk is at most {limit} bytes")
        if body.disconnected:
            return Response(status_code=400)
        try:
            msg = decode(bytes(data))
        except CodecError as exc:
            log.warning("refused malformed snapshot chunk from %s: %s", _peer(request), exc)
            return body.reply(400, f"malformed snapshot chunk: {exc}")
        if not isinstance(msg, SnapshotChunk):
            return body.reply(400, "not a snapshot chunk")
        if msg.to != self._local_id:
            return body.reply(421, f"this is node {self._local_id!r}")
        if not self._is_open():
            return body.reply(503, "transport closed")
        self._deliver(msg)
        return Response(status_code=204)
