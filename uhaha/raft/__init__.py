"""A sans-I/O Raft core: no sockets, clock, disk or global randomness inside.

Drive it with :meth:`RaftCore.tick`, :meth:`RaftCore.step` and the proposal
methods; collect its output with :meth:`RaftCore.ready` and acknowledge it
with :meth:`RaftCore.advance` (see :mod:`uhaha.raft.ready` for the contract).
"""

from .core import RaftCore, SnapshotReader
from .errors import ConfChangeError, ConfChangePending, NotLeader, ProposalDropped, RaftError
from .messages import (
    AppendRequest,
    AppendResponse,
    ConfChange,
    ConfChangeOp,
    Configuration,
    Entry,
    EntryKind,
    HardState,
    Heartbeat,
    HeartbeatResponse,
    Member,
    Message,
    ReadIndexRequest,
    ReadIndexResponse,
    SnapshotChunk,
    SnapshotMeta,
    SnapshotResponse,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)
from .progress import Mode, Progress
from .ready import RaftConfig, RaftState, ReadState, Ready, Role, SoftState

__all__ = [
    "AppendRequest",
    "AppendResponse",
    "ConfChange",
    "ConfChangeError",
    "ConfChangeOp",
    "ConfChangePending",
    "Configuration",
    "Entry",
    "EntryKind",
    "HardState",
    "Heartbeat",
    "HeartbeatResponse",
    "Member",
    "Message",
    "Mode",
    "NotLeader",
    "Progress",
    "ProposalDropped",
    "RaftConfig",
    "RaftCore",
    "RaftError",
    "RaftState",
    "ReadIndexRequest",
    "ReadIndexResponse",
    "ReadState",
    "Ready",
    "Role",
    "SnapshotChunk",
    "SnapshotMeta",
    "SnapshotReader",
    "SnapshotResponse",
    "SoftState",
    "TimeoutNow",
    "VoteRequest",
    "VoteResponse",
]
