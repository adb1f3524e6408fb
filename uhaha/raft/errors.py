"""Errors the Raft core raises at its input seam (propose, membership, transfer)."""

from __future__ import annotations

__all__ = [
    "ConfChangeError",
    "ConfChangePending",
    "NotLeader",
    "ProposalDropped",
    "RaftError",
]


class RaftError(Exception):
    """Base class of the core's refusals. Nothing was appended when one is raised."""


class NotLeader(RaftError):
    """This node is not the leader; ``leader`` is the one it knows of, or ``""``."""

    def __init__(self, leader: str) -> None:
        super().__init__(f"not the leader (leader: {leader or 'unknown'})")
        self.leader = leader


class ProposalDropped(RaftError):
    """The leader refuses proposals for now (a leadership transfer is under way)."""


class ConfChangeError(RaftError):
    """A membership change was refused: invalid, or another one is still in flight."""


class ConfChangePending(ConfChangeError):
    """Refused for now: the previous change, or the new leader's first commit,
    is still in flight. Trying again shortly will do."""
