"""The leader's side of Raft: replication, commitment, heartbeats, ReadIndex,
snapshot sending and leadership transfer. Mixed into :class:`RaftCore`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import RaftError
from .messages import (
    AppendRequest,
    AppendResponse,
    Configuration,
    Entry,
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
from .progress import Mode, Progress
from .ready import ReadState, Role

if TYPE_CHECKING:
    from collections.abc import Callable

    from .log import RaftLog
    from .membership import ConfigTracker
    from .readindex import ReadTracker
    from .ready import RaftConfig

__all__ = ["LeaderMixin"]


class LeaderMixin:
    if TYPE_CHECKING:
        cfg: RaftConfig
        id: str
        term: int
        role: Role
        log: RaftLog
        confs: ConfigTracker
        progress: dict[str, Progress]
        reads: ReadTracker
        election_elapsed: int
        heartbeat_elapsed: int
        transferee: str
        pending_conf_index: int
        _broadcast: bool
        _read_states: list[ReadState]

        @property
        def config(self) -> Configuration: ...
        def quorum(self) -> int: ...
        def send(self, m: Message) -> None: ...
        def become_follower(self, term: int, leader: str) -> None: ...

        read_snapshot: Callable[[SnapshotMeta, int, int], bytes]

    # --- appending and commitment ----------------------------------------------

    def append_local(self, entries: list[Entry]) -> None:
        """Append the leader's own entries; they are sent at the next Ready."""
        self.log.append(entries)
        for e in entries:
            if e.kind is EntryKind.CONFIG:
                self.confs.add(e.index, Configuration.decode(e.data))
                self.pending_conf_index = e.index
                self._sync_progress()
        self._broadcast = True

    def _sync_progress(self) -> None:
        ids = self.config.ids()
        for gone in [p for p in self.progress if p not in ids]:
            del self.progress[gone]
        for m in self.config.members:  # in id order, so runs are reproducible
            if m.id not in self.progress:
                self.progress[m.id] = Progress(self.log.last_index() + 1, self.cfg.max_inflight)

    def _match(self, node_id: str) -> int:
        if node_id == self.id:
            return self.log.stable  # our own entries count once they are durable
        pr = self.progress.get(node_id)
        return pr.match if pr else 0

    def maybe_commit(self) -> bool:
        """Advance the commit index to what a quorum of voters stores, but only
        by counting entries of the current term (section 5.4.2, Figure 8)."""
        lg = self.log
        matches = sorted((self._match(v) for v in self.config.voters()), reverse=True)
        if not matches:
            return False
        q = matches[self.quorum() - 1]
        if q <= lg.committed or lg.term(q) != self.term:
            return False
        lg.commit_to(q)
        # Followers are not told at once: the next append or tick carries the
        # new commit index (see tick_leader), so a lone write costs one round
        # of messages, not two.
        self.reads.committed_in_term(lg.committed)
        if not self.config.is_voter(self.id) and self.confs.index <= lg.committed:
            self._step_down_removed()
        return True

    def _step_down_removed(self) -> None:
        """A leader outside the committed configuration steps down (thesis 4.2.2),
        first telling everyone the commit index and the most caught-up voter to
        campaign at once, so the cluster does not wait for an election timeout."""
        for peer in self.progress:
            if peer != self.id:
                self.send_append(peer, send_if_empty=True)
        voters = [v for v in sorted(self.config.voters()) if v in self.progress]
        if voters:
            best = max(voters, key=lambda v: self.progress[v].match)
            if self.progress[best].match == self.log.last_index():
                self.send(TimeoutNow(self.term, self.id, best))
        self.become_follower(self.term, "")

    def leader_advanced(self) -> None:
        me = self.progress.get(self.id)
        if me is not None:
            me.match = self.log.stable
        self.maybe_commit()

    # --- sending ---------------------------------------------------------------

    def flush_leader(self) -> None:
        """Coalesce what happened since the last Ready into as few messages as
        possible: one append per follower for all new proposals, and one
        heartbeat round for all reads that arrived."""
        if self._broadcast:
            self._broadcast = False
            for peer in self.progress:
                if peer != self.id:
                    self.send_append(peer, send_if_empty=False)
        seq = self.reads.start_round()
        if seq is not None:
            self.broadcast_heartbeat(seq)
            self._release_reads()

    def read_round_pending(self) -> bool:
        return self.reads.round_needed()

    def send_append(self, to: str, send_if_empty: bool = True) -> bool:
        """Send the next batch of entries to ``to``; True if entries were sent."""
        pr = self.progress[to]
        if pr.is_paused():
            return False
        lg = self.log
        prev = pr.next - 1
        prev_term = lg.term(prev)
        if prev_term is None:
            self._start_snapshot(to, pr)
            return False
        last = lg.last_index()
        entries = lg.slice(pr.next, last + 1, self.cfg.max_msg_bytes) if pr.next <= last else []
        if not entries and not send_if_empty:
            return False
        committed = lg.committed
        self.send(AppendRequest(self.term, self.id, to, prev, prev_term, tuple(entries), committed))
        last_sent = entries[-1].index if entries else 0
        # The follower may apply up to min(commit, last index of the message).
        told = min(committed, last_sent or prev)
        pr.commit_sent = max(pr.commit_sent, told)
        pr.sent(last_sent)
        return bool(entries)

    def broadcast_heartbeat(self, seq: int) -> None:
        committed = self.log.committed
        for peer, pr in self.progress.items():
            if peer != self.id:
                # Never claim a commit index beyond what the follower is known
                # to share with us: its log may diverge after ``match``.
                told = min(pr.match, committed)
                self.send(Heartbeat(self.term, self.id, peer, told, seq))
                pr.commit_sent = max(pr.commit_sent, told)

    def _send_owed_commits(self) -> None:
        """Tell followers a commit index that no message has carried yet (the
        writes stopped after it advanced), so their state machines catch up
        within a tick."""
        committed = self.log.committed
        for peer, pr in self.progress.items():
            owed = pr.commit_sent < min(pr.match, committed)
            if owed and peer != self.id and pr.mode is not Mode.SNAPSHOT:
                self.send_append(peer, send_if_empty=True)

    # --- snapshots ----------------------------------------------------------------

    def _start_snapshot(self, to: str, pr: Progress) -> None:
        snap = self.log.snapshot
        if snap is None:
            raise AssertionError("log compacted without a snapshot")
        pr.become_snapshot(snap.index)
        self._send_chunk(to, pr, snap)

    def _send_chunk(self, to: str, pr: Progress, snap: SnapshotMeta) -> None:
        try:
            data = self.read_snapshot(snap, pr.snap_offset, self.cfg.snapshot_chunk_bytes)
        except LookupError:
            # The driver no longer has it (replaced meanwhile): start over
            # from probing; the next attempt sends the newest snapshot.
            pr.become_probe()
            return
        done = pr.snap_offset + len(data) >= snap.size
        self.send(SnapshotChunk(self.term, self.id, to, snap, pr.snap_offset, data, done))
        pr.snap_elapsed = 0

    def _resume_snapshot(self, to: str, pr: Progress) -> None:
        snap = self.log.snapshot
        assert snap is not None
        if snap.index != pr.snap_index:
            pr.become_snapshot(snap.index)  # a newer snapshot replaced it: start over
        self._send_chunk(to, pr, snap)

    # --- ticking ----------------------------------------------------------------

    def tick_leader(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.cfg.election_tick:
            self.election_elapsed = 0
            if self.cfg.check_quorum and not self._quorum_active():
                # Check-quorum (thesis 6.2): a leader that has not heard from a
                # majority for an election timeout steps down, so that a
                # partitioned leader stops serving.
                self.become_follower(self.term, "")
                return
            self.transferee = ""  # a transfer that did not finish in time is abandoned
        for peer, pr in self.progress.items():
            if pr.mode is Mode.SNAPSHOT:
                pr.snap_elapsed += 1
                if pr.snap_elapsed >= self.cfg.election_tick:
                    self._resume_snapshot(peer, pr)
        if self.heartbeat_elapsed >= self.cfg.heartbeat_tick:
            self.heartbeat_elapsed = 0
            self.broadcast_heartbeat(self.reads.seq)
        else:
            self._send_owed_commits()

    def _quorum_active(self) -> bool:
        active = 0
        for v in self.config.voters():
            if v == self.id:
                active += 1
                continue
            pr = self.progress.get(v)
            if pr is not None:
                active += pr.recent_active
                pr.recent_active = False
        return active >= self.quorum()

    # --- replies ------------------------------------------------------------------

    def step_leader(self, m: Message) -> None:
        match m:
            case AppendResponse():
                self._handle_append_response(m)
            case HeartbeatResponse():
                self._handle_heartbeat_response(m)
            case SnapshotResponse():
                pr = self.progress.get(m.frm)
                if pr is not None and pr.mode is Mode.SNAPSHOT and m.index == pr.snap_index:
                    pr.recent_active = True
                    pr.snap_offset = m.next_offset
                    self._resume_snapshot(m.frm, pr)
            case ReadIndexRequest():
                if m.frm in self.progress:
                    self.leader_read(m.ctx, m.frm)
            case _:
                pass

    def _handle_append_response(self, m: AppendResponse) -> None:
        pr = self.progress.get(m.frm)
        if pr is None:
            return
        pr.recent_active = True
        lg = self.log
        if m.reject:
            hint = lg.find_conflict_by_term(m.hint_index, m.hint_term)
            if pr.maybe_decrease(m.index, hint):
                if pr.mode is Mode.REPLICATE:
                    pr.become_probe()
                self.send_append(m.frm)
            return
        if not pr.maybe_update(m.index):
            return
        if pr.mode is Mode.PROBE or (pr.mode is Mode.SNAPSHOT and pr.match >= pr.snap_index):
            pr.become_replicate()
        self.maybe_commit()
        if self.role is not Role.LEADER:
            return
        while self.send_append(m.frm, send_if_empty=False):
            pass
        if m.frm == self.transferee and pr.match == lg.last_index():
            self.send(TimeoutNow(self.term, self.id, m.frm))

    def _handle_heartbeat_response(self, m: HeartbeatResponse) -> None:
        pr = self.progress.get(m.frm)
        if pr is None:
            return
        pr.recent_active = True
        pr.probe_sent = False
        if pr.mode is Mode.REPLICATE and pr.is_paused():
            pr.inflight.popleft()  # a lost reply must not stall the window forever
        if pr.match < self.log.last_index():
            self.send_append(m.frm)
        if m.seq > pr.read_seq:
            pr.read_seq = m.seq
            self._release_reads()

    # --- ReadIndex ------------------------------------------------------------------

    def leader_read(self, ctx: bytes, requester: str) -> None:
        lg = self.log
        committed = lg.committed if lg.term(lg.committed) == self.term else None
        self.reads.add(ctx, requester, committed)

    def _release_reads(self) -> None:
        seqs = sorted(
            (
                self.reads.seq
                if v == self.id
                else (self.progress[v].read_seq if v in self.progress else 0)
            )
            for v in self.config.voters()
        )
        seqs.reverse()
        if not seqs:
            return
        for r in self.reads.release(seqs[self.quorum() - 1]):
            if r.requester == self.id:
                self._read_states.append(ReadState(r.ctx, r.index))
            else:
                self.send(ReadIndexResponse(self.term, self.id, r.requester, r.ctx, r.index))

    # --- leadership transfer -----------------------------------------------------------

    def start_transfer(self, target: str) -> None:
        if target == self.id:
            self.transferee = ""
            return
        if not self.config.is_voter(target) or target not in self.progress:
            raise RaftError(f"cannot transfer leadership to {target}: not a voter")
        self.transferee = target
        self.election_elapsed = 0
        pr = self.progress[target]
        if pr.match == self.log.last_index():
            self.send(TimeoutNow(self.term, self.id, target))
        else:
            self.send_append(target)
