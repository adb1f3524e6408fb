"""What the core hands to its driver, and what the driver hands back.

The driver's loop (etcd's ``Ready``/``Advance`` contract):

1. ``rd = core.ready()`` when ``core.has_ready()``;
2. write ``rd.snapshot_chunks``, then install ``rd.snapshot`` (the log before it
   is discarded), then write ``rd.entries`` (an entry at index *i* replaces the
   stored entry *i* and everything after it) and ``rd.hard_state``, durably;
3. send ``rd.messages`` (they may promise what step 2 made durable);
   ``rd.early`` may go out at any time from step 1 on, before step 2 is done
   (a leader's appends, heartbeats and snapshot chunks: thesis 10.2.1; they
   promise nothing about this server's disk, because a leader counts itself
   towards a commit only for entries it was told are durable, and none of
   them is made while this Ready changes the term);
4. apply ``rd.committed`` in order, serve ``rd.read_states`` once applied up to
   their index, fail ``rd.dropped_reads``;
5. ``core.advance(rd)``.

The core may be stepped and ticked while the driver is between 1 and 5, but
``ready()`` is not called again until ``advance()``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .messages import Entry, HardState, Message, SnapshotChunk, SnapshotMeta

__all__ = ["RaftConfig", "RaftState", "ReadState", "Ready", "Role", "SoftState"]


class Role(enum.Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state worth reporting (never persisted)."""

    role: Role
    leader: str
    term: int


@dataclass(frozen=True, slots=True)
class ReadState:
    """A read identified by ``ctx`` may be served once ``index`` is applied."""

    ctx: bytes
    index: int


@dataclass(slots=True)
class Ready:
    hard_state: HardState | None = None
    soft_state: SoftState | None = None
    entries: list[Entry] = field(default_factory=list)
    snapshot_chunks: list[SnapshotChunk] = field(default_factory=list)
    snapshot: SnapshotMeta | None = None
    messages: list[Message] = field(default_factory=list)
    early: list[Message] = field(default_factory=list)
    committed: list[Entry] = field(default_factory=list)
    read_states: list[ReadState] = field(default_factory=list)
    dropped_reads: list[bytes] = field(default_factory=list)
    commit_only: bool = False
    """``hard_state`` differs from the last one only in ``commit``. Nothing
    depends on the commit index being durable (after a restart a lower one is
    learned again from the leader), so the driver may skip writing such a
    hard state on its own, as etcd does: no sync, no storage round trip."""

    @property
    def empty(self) -> bool:
        """Nothing in it at all (``has_ready()`` promised otherwise: a core bug)."""
        return not (
            self.hard_state or self.soft_state or self.entries or self.snapshot_chunks
            or self.snapshot or self.messages or self.early or self.committed
            or self.read_states or self.dropped_reads
        )  # fmt: skip

    @property
    def must_sync(self) -> bool:
        """Whether step 2 must reach stable storage before step 3."""
        return bool(
            self.entries
            or (self.hard_state and not self.commit_only)
            or self.snapshot
            or self.snapshot_chunks
        )


@dataclass(slots=True)
class RaftState:
    """What a node loads from its storage at start-up."""

    hard_state: HardState = field(default_factory=HardState)
    snapshot: SnapshotMeta | None = None
    entries: list[Entry] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RaftConfig:
    """Tuning of one core. Times are in ticks; the driver decides what a tick is."""

    id: str
    election_tick: int = 10
    """A follower campaigns after a random timeout in [election_tick, 2*election_tick)."""
    heartbeat_tick: int = 1
    max_msg_bytes: int = 1 << 20
    """Upper bound on the entry bytes of one append (at least one entry is always sent)."""
    max_inflight: int = 256
    """Appends in flight to one follower before the leader waits for replies."""
    pre_vote: bool = True
    check_quorum: bool = True
    snapshot_chunk_bytes: int = 1 << 20
    max_apply_bytes: int = 64 << 20
    """Upper bound on the committed entry bytes handed out in one Ready."""

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("node id must not be empty")
        if self.heartbeat_tick < 1 or self.election_tick <= self.heartbeat_tick:
            raise ValueError("need 1 <= heartbeat_tick < election_tick")
        if self.max_inflight < 1 or self.snapshot_chunk_bytes < 1:
            raise ValueError("max_inflight and snapshot_chunk_bytes must be positive")
