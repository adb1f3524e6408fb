"""Cluster configurations over the log (Raft thesis chapter 4).

With single-server changes, a server uses the newest configuration in its
log, committed or not (thesis 4.1). If that entry is later overwritten by a
new leader, the server falls back to the one before it, so the tracker keeps
every configuration entry still in the log plus the one in the snapshot.
"""

from __future__ import annotations

from .errors import ConfChangeError
from .messages import ConfChange, ConfChangeOp, Configuration, Member

__all__ = ["ConfigTracker", "apply_change"]


class ConfigTracker:
    def __init__(self, base_index: int, base: Configuration) -> None:
        self._history: list[tuple[int, Configuration]] = [(base_index, base)]

    @property
    def current(self) -> Configuration:
        return self._history[-1][1]

    @property
    def index(self) -> int:
        """Log index of the entry that set the current configuration."""
        return self._history[-1][0]

    def at(self, index: int) -> Configuration:
        """The configuration in force after applying up to ``index``."""
        for idx, conf in reversed(self._history):
            if idx <= index:
                return conf
        return self._history[0][1]

    def add(self, index: int, conf: Configuration) -> None:
        self._history.append((index, conf))

    def truncate_from(self, index: int) -> None:
        while len(self._history) > 1 and self._history[-1][0] >= index:
            self._history.pop()

    def reset(self, index: int, conf: Configuration) -> None:
        self._history = [(index, conf)]

    def compact(self, index: int) -> None:
        """Forget configurations superseded at or before ``index``."""
        while len(self._history) > 1 and self._history[1][0] <= index:
            self._history.pop(0)


def apply_change(conf: Configuration, change: ConfChange) -> Configuration:
    """The configuration after one single-server change, or ConfChangeError."""
    member = conf.get(change.node_id)
    op = change.op
    if not change.node_id:
        raise ConfChangeError("empty node id")
    if op in (ConfChangeOp.ADD_VOTER, ConfChangeOp.ADD_NONVOTER):
        voter = op is ConfChangeOp.ADD_VOTER
        if member is not None:
            raise ConfChangeError(f"node {change.node_id} is already a member")
        if not change.address:
            raise ConfChangeError("a new member needs an address")
        return conf.with_member(Member(change.node_id, change.address, voter))
    if member is None:
        raise ConfChangeError(f"node {change.node_id} is not a member")
    if op is ConfChangeOp.PROMOTE:
        if member.voter:
            raise ConfChangeError(f"node {change.node_id} is already a voter")
        return conf.with_member(Member(member.id, member.address, True))
    if op is ConfChangeOp.DEMOTE:
        if not member.voter:
            raise ConfChangeError(f"node {change.node_id} is not a voter")
        if len(conf.voters()) == 1:
            raise ConfChangeError("cannot demote the last voter")
        return conf.with_member(Member(member.id, member.address, False))
    if member.voter and len(conf.voters()) == 1:
        raise ConfChangeError("cannot remove the last voter")
    return conf.without(change.node_id)
