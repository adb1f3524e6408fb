"""ReadIndex bookkeeping on the leader (Raft thesis section 6.4).

A read arriving at the leader records the commit index at that moment. It may
be served once a quorum has confirmed, *after* the read arrived, that this
node is still the leader, and once the state machine has applied up to the
recorded index. Confirmation is a heartbeat round numbered ``seq``: every read
that arrives before a round is broadcast waits for that round, so one round of
heartbeats serves all reads queued at that moment. Reads are only accepted
after the leader has committed an entry of its own term (before that its
commit index may lag behind the real one); until then they wait here too.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ["PendingRead", "ReadTracker"]


@dataclass(frozen=True, slots=True)
class PendingRead:
    seq: int
    index: int
    ctx: bytes
    requester: str


class ReadTracker:
    def __init__(self) -> None:
        self.seq = 0
        """The newest round broadcast."""
        self._pending: deque[PendingRead] = deque()
        self._round_needed = False
        self._before_commit: list[tuple[bytes, str]] = []

    def __len__(self) -> int:
        return len(self._pending) + len(self._before_commit)

    def add(self, ctx: bytes, requester: str, commit: int | None) -> None:
        """Queue a read; ``commit`` None means the leader has not committed in its term."""
        if commit is None:
            self._before_commit.append((ctx, requester))
            return
        self._pending.append(PendingRead(self.seq + 1, commit, ctx, requester))
        self._round_needed = True

    def committed_in_term(self, commit: int) -> None:
        """The leader's first commit in its term: reads waiting for it can go ahead."""
        waiting, self._before_commit = self._before_commit, []
        for ctx, requester in waiting:
            self.add(ctx, requester, commit)

    def round_needed(self) -> bool:
        return self._round_needed

    def start_round(self) -> int | None:
        """The number of a new round if reads are waiting for one, else None."""
        if not self._round_needed:
            return None
        self._round_needed = False
        self.seq += 1
        return self.seq

    def release(self, confirmed: int) -> list[PendingRead]:
        """Reads whose round ``confirmed`` (or a later one) a quorum acknowledged."""
        out = []
        pending = self._pending
        while pending and pending[0].seq <= confirmed:
            out.append(pending.popleft())
        return out

    def drain(self) -> list[tuple[bytes, str]]:
        """Every queued read (the node stopped being leader): ``(ctx, requester)``."""
        out = [(r.ctx, r.requester) for r in self._pending] + self._before_commit
        self._pending.clear()
        self._before_commit = []
        self._round_needed = False
        return out
