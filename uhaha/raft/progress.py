"""The leader's record of each follower's replication (etcd's Progress).

A follower is in one of three modes:

- PROBE: the leader does not know where the logs agree. It sends one append
  and waits for the reply (or the next heartbeat reply) before the next one.
- REPLICATE: the logs agree up to ``match``. The leader streams appends
  optimistically, advancing ``next`` as it sends, with at most
  ``max_inflight`` appends unacknowledged (pipelining with a bounded window).
- SNAPSHOT: the entries the follower needs are compacted; the leader sends
  the snapshot in chunks, one at a time, and nothing else until it lands.
"""

from __future__ import annotations

import enum
from collections import deque

__all__ = ["Mode", "Progress"]


class Mode(enum.Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


class Progress:
    __slots__ = (
        "commit_sent",
        "inflight",
        "match",
        "max_inflight",
        "mode",
        "next",
        "probe_sent",
        "read_seq",
        "recent_active",
        "snap_elapsed",
        "snap_index",
        "snap_offset",
    )

    def __init__(self, next_index: int, max_inflight: int) -> None:
        self.match = 0
        self.next = next_index
        self.mode = Mode.PROBE
        self.probe_sent = False
        self.inflight: deque[int] = deque()
        self.max_inflight = max_inflight
        self.recent_active = True
        self.read_seq = 0
        """Highest read-confirmation round this follower acknowledged."""
        self.commit_sent = 0
        """The highest commit index a message told this follower it can apply."""
        self.snap_index = 0
        self.snap_offset = 0
        """Bytes of the snapshot the follower has durably received."""
        self.snap_elapsed = 0
        """Ticks since the last snapshot chunk was sent (resend on silence)."""

    def __repr__(self) -> str:
        return f"Progress({self.mode.value} match={self.match} next={self.next})"

    def become_probe(self) -> None:
        # After a snapshot, probe right after it; otherwise right after match.
        if self.mode is Mode.SNAPSHOT:
            self.next = max(self.match + 1, self.snap_index + 1)
        else:
            self.next = self.match + 1
        self.mode = Mode.PROBE
        self.probe_sent = False
        self.inflight.clear()
        self.snap_index = 0

    def become_replicate(self) -> None:
        self.mode = Mode.REPLICATE
        self.next = self.match + 1
        self.inflight.clear()
        self.snap_index = 0

    def become_snapshot(self, index: int) -> None:
        self.mode = Mode.SNAPSHOT
        self.snap_index = index
        self.snap_offset = 0
        self.snap_elapsed = 0
        self.inflight.clear()

    def is_paused(self) -> bool:
        if self.mode is Mode.PROBE:
            return self.probe_sent
        if self.mode is Mode.REPLICATE:
            return len(self.inflight) >= self.max_inflight
        return True

    def sent(self, last_index: int) -> None:
        """Record an append whose last entry is ``last_index`` (0: no entries)."""
        if self.mode is Mode.REPLICATE:
            if last_index:
                self.next = last_index + 1
                self.inflight.append(last_index)
        else:
            self.probe_sent = True

    def maybe_update(self, index: int) -> bool:
        """A success reply: the follower holds our log up to ``index``."""
        updated = index > self.match
        if updated:
            self.match = index
            self.probe_sent = False
        self.next = max(self.next, index + 1)
        inflight = self.inflight
        while inflight and inflight[0] <= index:
            inflight.popleft()
        return updated

    def maybe_decrease(self, rejected: int, probe_hint: int) -> bool:
        """A rejection of the append after ``rejected``. Returns False if stale."""
        if self.mode is Mode.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, probe_hint + 1), self.match + 1)
        self.probe_sent = False
        return True
