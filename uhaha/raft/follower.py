"""The follower's side of Raft: accepting appends, heartbeats and snapshot
chunks from the leader (sections 5.3 and 7). Mixed into :class:`RaftCore`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .messages import (
    AppendRequest,
    AppendResponse,
    Configuration,
    EntryKind,
    Heartbeat,
    HeartbeatResponse,
    Message,
    ReadIndexRequest,
    ReadIndexResponse,
    SnapshotChunk,
    SnapshotMeta,
    SnapshotResponse,
    TimeoutNow,
)
from .ready import Role

if TYPE_CHECKING:
    from .log import RaftLog
    from .membership import ConfigTracker

__all__ = ["FollowerMixin"]


class FollowerMixin:
    if TYPE_CHECKING:
        id: str
        term: int
        role: Role
        lead: str
        log: RaftLog
        confs: ConfigTracker
        election_elapsed: int
        _incoming: SnapshotMeta | None
        _incoming_offset: int
        _chunks: list[SnapshotChunk]
        _install: SnapshotMeta | None

        def send(self, m: Message) -> None: ...
        def become_follower(self, term: int, leader: str) -> None: ...
        def promotable(self) -> bool: ...
        def campaign(self, transfer: bool = False) -> None: ...

    def _step_follower(self, m: Message) -> None:
        if self.role is not Role.FOLLOWER and isinstance(
            m, AppendRequest | Heartbeat | SnapshotChunk
        ):
            # A candidate hearing from the leader of its term yields (5.2).
            self.become_follower(m.term, m.frm)
        match m:
            case AppendRequest():
                self._heard_leader(m.frm)
                self._handle_append(m)
            case Heartbeat():
                self._heard_leader(m.frm)
                self.log.commit_to(m.commit)
                self.send(HeartbeatResponse(self.term, self.id, m.frm, m.seq))
            case SnapshotChunk():
                self._heard_leader(m.frm)
                self._handle_snapshot_chunk(m)
            case TimeoutNow():
                if self.promotable():
                    self.campaign(transfer=True)
            case ReadIndexRequest():
                self.send(ReadIndexResponse(self.term, self.id, m.frm, m.ctx, 0))
            case _:
                pass  # replies meant for a leader we no longer are

    def _heard_leader(self, leader: str) -> None:
        self.election_elapsed = 0
        self.lead = leader

    def _handle_append(self, m: AppendRequest) -> None:
        lg = self.log
        if m.prev_index < lg.committed:
            self.send(AppendResponse(self.term, self.id, m.frm, lg.committed))
            return
        last_new = lg.maybe_append(m.prev_index, m.prev_term, m.commit, m.entries)
        if last_new is None:
            hint = min(m.prev_index, lg.last_index())
            hint = lg.find_conflict_by_term(hint, m.prev_term)
            hint_term = lg.term(hint) or 0
            self.send(
                AppendResponse(self.term, self.id, m.frm, m.prev_index, True, hint, hint_term)
            )
            return
        if m.entries:
            self._track_configs(m.prev_index)
        self.send(AppendResponse(self.term, self.id, m.frm, last_new))

    def _track_configs(self, after: int) -> None:
        """Resynchronise the configuration tracker with the log after index ``after``
        (an append may have overwritten configurations there, thesis 4.1)."""
        lg = self.log
        self.confs.truncate_from(after + 1)
        if after >= lg.last_index():
            return
        for e in lg.slice(after + 1, lg.last_index() + 1, 1 << 62):
            if e.kind is EntryKind.CONFIG:
                self.confs.add(e.index, Configuration.decode(e.data))

    def _handle_snapshot_chunk(self, m: SnapshotChunk) -> None:
        meta = m.meta
        lg = self.log
        if meta.index <= lg.committed or lg.match_term(meta.index, meta.term):
            # Nothing to install: we hold the snapshot's last entry, so our log
            # up to it is the leader's, and it is committed. Keep the entries
            # after it (Figure 13, step 6): the leader may have counted them.
            lg.commit_to(meta.index)
            self._incoming = None
            self.send(AppendResponse(self.term, self.id, m.frm, lg.committed))
            return
        if self._incoming != meta:
            if m.offset != 0:
                self.send(SnapshotResponse(self.term, self.id, m.frm, meta.index, 0))
                return
            self._incoming = meta
            self._incoming_offset = 0
        if m.offset != self._incoming_offset:
            self.send(
                SnapshotResponse(self.term, self.id, m.frm, meta.index, self._incoming_offset)
            )
            return
        self._chunks.append(m)
        self._incoming_offset += len(m.data)
        if not m.done:
            self.send(
                SnapshotResponse(self.term, self.id, m.frm, meta.index, self._incoming_offset)
            )
            return
        # The whole snapshot is here: it replaces the log (section 7).
        self._incoming = None
        lg.restore(meta)
        self.confs.reset(meta.index, meta.config)
        self._install = meta
        self.send(AppendResponse(self.term, self.id, m.frm, meta.index))
