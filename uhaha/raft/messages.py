"""The values the Raft core consumes and produces: entries, state, messages.

Everything here is an immutable, typed value with no behaviour beyond small
helpers, so that the core, the storage layer, the transport's codec and the
tests can share them without sharing any machinery. Node ids are strings (as
in uhaha: ``-n 1`` names node ``"1"``); index 0 and term 0 mean "none".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import cached_property

__all__ = [
    "AppendRequest",
    "AppendResponse",
    "ConfChange",
    "ConfChangeOp",
    "Configuration",
    "Entry",
    "EntryKind",
    "HardState",
    "Heartbeat",
    "HeartbeatResponse",
    "Member",
    "Message",
    "ReadIndexRequest",
    "ReadIndexResponse",
    "SnapshotChunk",
    "SnapshotMeta",
    "SnapshotResponse",
    "TimeoutNow",
    "VoteRequest",
    "VoteResponse",
]


class EntryKind(enum.IntEnum):
    """What a log entry carries."""

    NORMAL = 0
    """Application data (may be empty: the leader's no-op at the start of a term)."""
    CONFIG = 1
    """A new cluster configuration, encoded with :meth:`Configuration.encode`."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry. ``data`` is opaque to the core except for CONFIG entries."""

    term: int
    index: int
    kind: EntryKind = EntryKind.NORMAL
    data: bytes = b""

    def size(self) -> int:
        """Approximate wire size, used to bound the bytes per append message."""
        return len(self.data) + 24


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before any message that depends on it leaves the node."""

    term: int = 0
    vote: str = ""
    commit: int = 0


@dataclass(frozen=True, slots=True)
class Member:
    """A server of the cluster. ``address`` is opaque to the core (the transport uses it)."""

    id: str
    address: str
    voter: bool = True


@dataclass(frozen=True)
class Configuration:
    """The set of servers, in id order. Voters elect and form quorums; non-voters only follow."""

    members: tuple[Member, ...] = ()

    @cached_property
    def _voters(self) -> frozenset[str]:
        return frozenset(m.id for m in self.members if m.voter)

    @cached_property
    def _ids(self) -> frozenset[str]:
        return frozenset(m.id for m in self.members)

    def voters(self) -> frozenset[str]:
        return self._voters

    def ids(self) -> frozenset[str]:
        return self._ids

    def get(self, node_id: str) -> Member | None:
        for m in self.members:
            if m.id == node_id:
                return m
        return None

    def is_voter(self, node_id: str) -> bool:
        m = self.get(node_id)
        return m is not None and m.voter

    def with_member(self, member: Member) -> Configuration:
        """A copy with ``member`` added or replaced, kept in id order."""
        others = [m for m in self.members if m.id != member.id]
        return Configuration(tuple(sorted([*others, member], key=lambda m: m.id)))

    def without(self, node_id: str) -> Configuration:
        return Configuration(tuple(m for m in self.members if m.id != node_id))

    def encode(self) -> bytes:
        """A small, stable text encoding: one ``id<TAB>address<TAB>V|N`` line per member."""
        lines = [f"{m.id}\t{m.address}\t{'V' if m.voter else 'N'}" for m in self.members]
        return "\n".join(lines).encode()

    @classmethod
    def decode(cls, data: bytes) -> Configuration:
        members = []
        for line in data.decode().splitlines():
            node_id, address, kind = line.split("\t")
            if kind not in ("V", "N"):
                raise ValueError(f"bad member kind {kind!r}")
            members.append(Member(node_id, address, kind == "V"))
        return cls(tuple(sorted(members, key=lambda m: m.id)))


class ConfChangeOp(enum.Enum):
    """A single-server membership change (Raft thesis section 4.1)."""

    ADD_VOTER = "add_voter"
    ADD_NONVOTER = "add_nonvoter"
    PROMOTE = "promote"
    DEMOTE = "demote"
    REMOVE = "remove"


@dataclass(frozen=True, slots=True)
class ConfChange:
    op: ConfChangeOp
    node_id: str
    address: str = ""


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """Describes a snapshot: the state after applying every entry up to ``index``.

    ``size`` is the byte length of the snapshot's data, which the leader sends
    in chunks; the data itself lives with the driver (files, or memory in tests).
    """

    index: int
    term: int
    config: Configuration
    size: int = 0


# --- messages -------------------------------------------------------------
#
# Every message names its sender, its receiver and the sender's term. The
# core treats them uniformly for term handling (Raft paper section 5.1) and
# dispatches on the class for the rest.


@dataclass(frozen=True, slots=True)
class VoteRequest:
    """RequestVote (section 5.2). ``pre`` marks a pre-vote (thesis 9.6), whose
    ``term`` is the term the sender would campaign in, without having moved to
    it. ``transfer`` marks an election started by a leadership transfer, which
    voters must not ignore because of a recently heard leader."""

    term: int
    frm: str
    to: str
    last_index: int
    last_term: int
    pre: bool = False
    transfer: bool = False


@dataclass(frozen=True, slots=True)
class VoteResponse:
    term: int
    frm: str
    to: str
    granted: bool
    pre: bool = False


@dataclass(frozen=True, slots=True)
class AppendRequest:
    """AppendEntries (section 5.3), carrying a batch of entries."""

    term: int
    frm: str
    to: str
    prev_index: int
    prev_term: int
    entries: tuple[Entry, ...]
    commit: int


@dataclass(frozen=True, slots=True)
class AppendResponse:
    """Success carries the follower's match ``index``. A rejection carries the
    rejected ``prev_index`` in ``index`` plus a hint for fast backtracking: the
    largest index at or below it whose term is at most the probed term, and
    that entry's term."""

    term: int
    frm: str
    to: str
    index: int
    reject: bool = False
    hint_index: int = 0
    hint_term: int = 0


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Keeps followers from campaigning, advances their commit index, and
    carries ``seq``, the leader's read-confirmation round (ReadIndex)."""

    term: int
    frm: str
    to: str
    commit: int
    seq: int = 0


@dataclass(frozen=True, slots=True)
class HeartbeatResponse:
    term: int
    frm: str
    to: str
    seq: int = 0


@dataclass(frozen=True, slots=True)
class SnapshotChunk:
    """InstallSnapshot (section 7), one chunk of ``meta.size`` bytes at ``offset``."""

    term: int
    frm: str
    to: str
    meta: SnapshotMeta
    offset: int
    data: bytes
    done: bool


@dataclass(frozen=True, slots=True)
class SnapshotResponse:
    """Acknowledges durable receipt of snapshot ``index`` up to ``next_offset``."""

    term: int
    frm: str
    to: str
    index: int
    next_offset: int


@dataclass(frozen=True, slots=True)
class TimeoutNow:
    """Leadership transfer (thesis 3.10): campaign now, skipping pre-vote."""

    term: int
    frm: str
    to: str


@dataclass(frozen=True, slots=True)
class ReadIndexRequest:
    """A follower asks the leader for a read index on behalf of ``ctx``."""

    term: int
    frm: str
    to: str
    ctx: bytes


@dataclass(frozen=True, slots=True)
class ReadIndexResponse:
    """``index`` 0 means the leader refused (it may not be leader any more)."""

    term: int
    frm: str
    to: str
    ctx: bytes
    index: int


Message = (
    VoteRequest
    | VoteResponse
    | AppendRequest
    | AppendResponse
    | Heartbeat
    | HeartbeatResponse
    | SnapshotChunk
    | SnapshotResponse
    | TimeoutNow
    | ReadIndexRequest
    | ReadIndexResponse
)
