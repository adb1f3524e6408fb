"""A bounded queue of encoded frames for one peer, drained in coalesced chunks.

Bounded in messages and in bytes. When a new frame does not fit, *everything*
queued is dropped (and counted) before the new frame is added, rather than the
new frame or only the oldest one:

- A full queue means the peer has been unreachable or far behind for a while,
  so what is queued is stale: heartbeats superseded by later ones, appends the
  leader will resend from the follower's acknowledged index (Raft section 5.3),
  votes for an election that has moved on.
- Dropping only the newest message would starve the control messages that
  matter most when a peer comes back (heartbeats, votes), and dropping the
  oldest one at a time would keep the queue full, so every later message
  would wait behind a full queue of stale ones.
- A gap in a run of appends costs one rejected append and a probe, whichever
  messages are dropped.
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["Outbox"]


class Outbox:
    """Frames waiting for one peer's stream, with a wake-up for the writer."""

    __slots__ = ("_bytes", "_frames", "_max_bytes", "_max_messages", "_ready")

    def __init__(self, max_messages: int, max_bytes: int) -> None:
        if max_messages < 1 or max_bytes < 1:
            raise ValueError("an outbox must hold at least one message and one byte")
        self._max_messages = max_messages
        self._max_bytes = max_bytes
        self._frames: deque[bytes] = deque()
        self._bytes = 0
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def nbytes(self) -> int:
        """Bytes queued."""
        return self._bytes

    def put(self, frame: bytes) -> int:
        """Queue ``frame``; return how many frames were dropped to keep within bounds.

        A frame larger than the byte bound on its own is dropped itself.
        """
        size = len(frame)
        if size > self._max_bytes:
            return 1
        dropped = 0
        if len(self._frames) >= self._max_messages or self._bytes + size > self._max_bytes:
            dropped = self.clear()
        self._frames.append(frame)
        self._bytes += size
        if not self._ready.is_set():
            self._ready.set()
        return dropped

    def take(self, limit: int) -> tuple[bytes, int]:
        """Remove frames from the front, about ``limit`` bytes (at least one frame
        if any is queued), and return them joined with their count."""
        frames = self._frames
        if self._bytes <= limit:
            count = len(frames)
            data = b"".join(frames)
            frames.clear()
            self._bytes = 0
            return data, count
        taken: list[bytes] = []
        size = 0
        while frames and (not taken or size + len(frames[0]) <= limit):
            frame = frames.popleft()
            taken.append(frame)
            size += len(frame)
        self._bytes -= size
        return b"".join(taken), len(taken)

    def clear(self) -> int:
        """Drop everything queued; return how many frames that was."""
        count = len(self._frames)
        self._frames.clear()
        self._bytes = 0
        return count

    def poke(self) -> None:
        """Wake the writer without queuing anything (see :meth:`wait`)."""
        self._ready.set()

    async def wait(self) -> None:
        """Return once a frame is queued or :meth:`poke` is called (at once if
        frames are queued already)."""
        if not self._frames:
            self._ready.clear()
            await self._ready.wait()
