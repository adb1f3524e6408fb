"""The Raft state machine: roles, elections, term rules and the Ready cycle.

Pure: no clock (time is ``tick()``), no I/O (messages are appended to an
outbox and handed out in a :class:`Ready`), no global randomness (an injected
``random.Random`` draws election timeouts). Leader-side replication lives in
:mod:`.replication`; this module holds everything a server does in any role.
References are to the Raft paper (Ongaro & Ousterhout 2014) and Ongaro's
thesis (2014).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from .errors import ConfChangePending, NotLeader, ProposalDropped
from .follower import FollowerMixin
from .log import RaftLog
from .membership import ConfigTracker, apply_change
from .messages import (
    AppendRequest,
    AppendResponse,
    ConfChange,
    Configuration,
    Entry,
    EntryKind,
    HardState,
    Heartbeat,
    Message,
    ReadIndexRequest,
    ReadIndexResponse,
    SnapshotChunk,
    SnapshotMeta,
    VoteRequest,
    VoteResponse,
)
from .progress import Progress
from .readindex import ReadTracker
from .ready import RaftConfig, RaftState, ReadState, Ready, Role, SoftState
from .replication import LeaderMixin

__all__ = ["RaftCore", "SnapshotReader"]

SnapshotReader = Callable[[SnapshotMeta, int, int], bytes]
"""``read(meta, offset, size)``: bytes of a local snapshot, for sending it in chunks."""


#: What a leader may send before its Ready is durable (see Ready.early).
_EARLY = frozenset({AppendRequest, Heartbeat, SnapshotChunk})


def _no_snapshots(meta: SnapshotMeta, offset: int, size: int) -> bytes:
    raise LookupError("this node has no snapshot reader")


class RaftCore(FollowerMixin, LeaderMixin):
    """One Raft server. See :mod:`.ready` for the driver's contract."""

    def __init__(
        self,
        config: RaftConfig,
        state: RaftState | None = None,
        *,
        rng: random.Random,
        snapshot_reader: SnapshotReader = _no_snapshots,
        applied: int = 0,
    ) -> None:
        state = state or RaftState()
        self.cfg = config
        self.id = config.id
        self.rng = rng
        self.read_snapshot = snapshot_reader
        hs = state.hard_state
        self.term = hs.term
        self.vote = hs.vote
        self.lead = ""
        self.role = Role.FOLLOWER
        self.log = RaftLog(state.snapshot, state.entries, hs.commit)
        self.log.applied = max(self.log.offset, min(applied, self.log.committed))
        snap = state.snapshot
        self.confs = ConfigTracker(
            snap.index if snap else 0, snap.config if snap else Configuration()
        )
        for e in state.entries:
            if e.kind is EntryKind.CONFIG:
                self.confs.add(e.index, Configuration.decode(e.data))
        self.progress: dict[str, Progress] = {}
        self.votes: dict[str, bool] = {}
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.timeout = self._random_timeout()
        self.transferee = ""
        self.pending_conf_index = 0
        self.reads = ReadTracker()
        self.outbox: list[Message] = []
        self._read_states: list[ReadState] = []
        self._dropped_reads: list[bytes] = []
        self._forwarded: set[bytes] = set()
        """Reads this follower asked the leader about, not yet answered."""
        self._incoming: SnapshotMeta | None = None
        self._incoming_offset = 0
        self._chunks: list[SnapshotChunk] = []
        self._install: SnapshotMeta | None = None
        self._broadcast = False
        self._prev_hard = HardState(self.term, self.vote, self.log.committed)
        self._prev_soft = self.soft_state()

    # --- small queries -----------------------------------------------------

    def __repr__(self) -> str:
        return f"RaftCore({self.id} {self.role.value} term={self.term} lead={self.lead!r})"

    @property
    def config(self) -> Configuration:
        return self.confs.current

    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    def soft_state(self) -> SoftState:
        return SoftState(self.role, self.lead, self.term)

    def _hard_changed(self) -> bool:
        prev = self._prev_hard
        return prev.term != self.term or prev.vote != self.vote or prev.commit != self.log.committed

    def _soft_changed(self) -> bool:
        prev = self._prev_soft
        return prev.role is not self.role or prev.leader != self.lead or prev.term != self.term

    def promotable(self) -> bool:
        """May this server campaign? Voters of their newest configuration may.

        So may a server that this configuration demotes or removes while it is
        not yet committed: it may hold the newest log, which the remaining
        voters need to finish the change (thesis 4.2.2). It then counts votes
        under the new configuration only, so election safety still rests on
        the overlap of the two configurations' majorities."""
        if self._install is not None:
            return False
        if self.config.is_voter(self.id):
            return True
        return self.confs.index > self.log.committed and self.confs.at(
            self.confs.index - 1
        ).is_voter(self.id)

    def quorum(self) -> int:
        return len(self.config.voters()) // 2 + 1

    def _random_timeout(self) -> int:
        n = self.cfg.election_tick
        return n + self.rng.randrange(n)

    def send(self, m: Message) -> None:
        self.outbox.append(m)

    # --- inputs ------------------------------------------------------------

    def bootstrap(self, config: Configuration) -> None:
        """Start a brand-new cluster: the first configuration at index 1, term 1.

        Every server of the initial configuration must bootstrap with the same
        one (or only one server bootstraps and the others join later)."""
        if self.log.last_index() or self.term or self.log.snapshot:
            raise ValueError("cannot bootstrap: this server already has state")
        entry = Entry(1, 1, EntryKind.CONFIG, config.encode())
        self.term = 1
        self.log.append([entry])
        self.log.commit_to(1)
        self.confs.add(1, config)

    def tick(self) -> None:
        if self.role is Role.LEADER:
            self.tick_leader()
            return
        self.election_elapsed += 1
        if self.election_elapsed >= self.timeout and self.promotable():
            self.election_elapsed = 0
            self.campaign()

    def propose(self, data: bytes) -> tuple[int, int]:
        """Append ``data`` as a new entry. Returns ``(index, term)``: the proposal
        succeeded if and only if an entry with that index and term is committed."""
        self._check_can_propose()
        e = Entry(self.term, self.log.last_index() + 1, EntryKind.NORMAL, data)
        self.append_local([e])
        return e.index, e.term

    def propose_many(self, items: list[bytes]) -> tuple[int, int]:
        """Append several entries at once; returns the first index and the term."""
        self._check_can_propose()
        first = self.log.last_index() + 1
        term = self.term
        self.append_local(
            [Entry(term, first + n, EntryKind.NORMAL, d) for n, d in enumerate(items)]
        )
        return first, term

    def _check_can_propose(self) -> None:
        if self.role is not Role.LEADER:
            raise NotLeader(self.lead)
        if self.transferee:
            raise ProposalDropped(f"leadership is being transferred to {self.transferee}")

    def propose_conf_change(self, change: ConfChange) -> tuple[int, int]:
        """Append a single-server membership change (thesis 4.1).

        Refused while another change is uncommitted, and until the leader has
        committed an entry in its own term (the fix to the single-server
        change bug Ongaro described on raft-dev in 2015)."""
        self._check_can_propose()
        if self.pending_conf_index > self.log.committed:
            raise ConfChangePending("another membership change is in progress")
        if self.log.term(self.log.committed) != self.term:
            raise ConfChangePending("the leader has not committed an entry in its term yet")
        conf = apply_change(self.config, change)
        e = Entry(self.term, self.log.last_index() + 1, EntryKind.CONFIG, conf.encode())
        self.append_local([e])
        return e.index, e.term

    def read_index(self, ctx: bytes) -> bool:
        """Ask for a linearizable read index for ``ctx``. The answer comes as a
        ReadState in a later Ready, or as a dropped read. False means no
        leader is known, so the read cannot start."""
        if self.role is Role.LEADER:
            self.leader_read(ctx, self.id)
            return True
        if not self.lead:
            return False
        self.send(ReadIndexRequest(self.term, self.id, self.lead, ctx))
        self._forwarded.add(ctx)
        return True

    def transfer_leadership(self, target: str) -> None:
        """Hand leadership to ``target`` once its log is caught up (thesis 3.10)."""
        if self.role is not Role.LEADER:
            raise NotLeader(self.lead)
        self.start_transfer(target)

    # --- the Ready cycle -----------------------------------------------------

    def has_ready(self) -> bool:
        lg = self.log
        return bool(
            self.outbox
            or self._broadcast
            or lg.stable < lg.last_index()
            or lg.applied < lg.committed
            or self._read_states
            or self._dropped_reads
            or self._chunks
            or self._install
            or self._hard_changed()
            or self._soft_changed()
            or (self.role is Role.LEADER and self.read_round_pending())
        )

    def ready(self) -> Ready:
        if self.role is Role.LEADER:
            self.flush_leader()
        rd = Ready()
        if self._hard_changed():
            hs = rd.hard_state = self.hard_state()
            prev = self._prev_hard
            rd.commit_only = hs.term == prev.term and hs.vote == prev.vote
        if self._soft_changed():
            rd.soft_state = self.soft_state()
        rd.entries = self.log.unstable()
        rd.snapshot_chunks, self._chunks = self._chunks, []
        rd.snapshot = self._install
        msgs, self.outbox = self.outbox, []
        if self.role is Role.LEADER and (
            rd.hard_state is None or rd.hard_state.term == self._prev_hard.term
        ):
            rd.early = [m for m in msgs if type(m) in _EARLY]
            rd.messages = [m for m in msgs if type(m) not in _EARLY] if rd.early else msgs
        else:
            rd.messages = msgs
        rd.committed = self.log.next_committed(self.cfg.max_apply_bytes)
        rd.read_states, self._read_states = self._read_states, []
        rd.dropped_reads, self._dropped_reads = self._dropped_reads, []
        return rd

    def advance(self, rd: Ready) -> None:
        if rd.hard_state is not None:
            self._prev_hard = rd.hard_state
        if rd.soft_state is not None:
            self._prev_soft = rd.soft_state
        if rd.snapshot is not None and self._install is rd.snapshot:
            self._install = None
        if rd.entries:
            last = rd.entries[-1]
            self.log.stable_to(last.index, last.term)
        if rd.committed:
            self.log.applied_to(rd.committed[-1].index)
        if self.role is Role.LEADER:
            self.leader_advanced()

    # --- snapshots taken by the driver ---------------------------------------

    @property
    def installing(self) -> bool:
        """A snapshot from the leader replaced the log and waits in the next Ready;
        the driver must not take a snapshot of its own state until it is installed."""
        return self._install is not None

    def snapshot_meta(self, index: int) -> SnapshotMeta:
        """Metadata for a snapshot of the state after applying up to ``index``."""
        # The driver may apply a Ready's committed entries before advance()
        # reports them, so its state can be ahead of log.applied, never of commit.
        if index > self.log.committed:
            raise ValueError(f"index {index} is not committed (commit {self.log.committed})")
        term = self.log.term(index)
        if term is None:
            raise ValueError(f"index {index} is compacted or unknown")
        return SnapshotMeta(index, term, self.confs.at(index))

    def compact(self, snapshot: SnapshotMeta, keep: int = 0) -> None:
        """The driver durably stored ``snapshot``: drop the log before it, except
        the last ``keep`` entries (kept for followers that are slightly behind)."""
        self.log.compact(snapshot, snapshot.index - keep + 1)
        self.confs.compact(self.log.offset)

    # --- message handling ------------------------------------------------------

    def step(self, m: Message) -> None:
        if m.term > self.term:
            # Leader stickiness (thesis 4.2.3): a server that heard from a live
            # leader within the minimum election timeout ignores elections,
            # unless a leadership transfer asked for one.
            if (
                isinstance(m, VoteRequest)
                and self.cfg.check_quorum
                and self.lead
                and self.election_elapsed < self.cfg.election_tick
                and not m.transfer
            ):
                return
            if (isinstance(m, VoteRequest) and m.pre) or (
                isinstance(m, VoteResponse) and m.pre and m.granted
            ):
                pass  # pre-votes never move the receiver's term (thesis 9.6)
            elif isinstance(m, AppendRequest | Heartbeat | SnapshotChunk):
                self.become_follower(m.term, m.frm)
            else:
                self.become_follower(m.term, "")
        elif m.term < self.term:
            self._step_stale(m)
            return
        match m:
            case VoteRequest():
                self._handle_vote_request(m)
            case VoteResponse():
                self._handle_vote_response(m)
            case ReadIndexResponse():
                if m.ctx not in self._forwarded:
                    return  # already dropped when the leader changed
                self._forwarded.discard(m.ctx)
                if m.index:
                    self._read_states.append(ReadState(m.ctx, m.index))
                else:
                    self._dropped_reads.append(m.ctx)
            case _:
                if self.role is Role.LEADER:
                    self.step_leader(m)
                else:
                    self._step_follower(m)

    def _step_stale(self, m: Message) -> None:
        if isinstance(m, AppendRequest | Heartbeat | SnapshotChunk):
            # A deposed leader that has not heard of the new term: tell it, so
            # it steps down (with pre-vote, our higher term would otherwise
            # never reach it through elections).
            self.send(AppendResponse(self.term, self.id, m.frm, 0))
        elif isinstance(m, VoteRequest):
            # Reject with our term (Figure 2) so a candidate that fell behind
            # learns the term. Ignoring it can stall elections for good when
            # the servers that could elect it never otherwise write to it
            # (e.g. it is a non-voter in their stale configuration).
            self.send(VoteResponse(self.term, self.id, m.frm, False, pre=m.pre))
        elif isinstance(m, ReadIndexRequest):
            self.send(ReadIndexResponse(self.term, self.id, m.frm, m.ctx, 0))

    # --- elections (section 5.2, thesis 9.6) ----------------------------------

    def campaign(self, transfer: bool = False) -> None:
        """Start an election: a pre-vote round first unless disabled or transferring."""
        if not self.promotable():
            return
        if not self.cfg.pre_vote or transfer:
            self._campaign_real(transfer)
            return
        # Pre-vote (thesis 9.6): ask whether we could win before moving the term,
        # so a server that was cut off cannot disrupt the cluster when it returns.
        self.role = Role.PRE_CANDIDATE
        self.lead = ""
        self.election_elapsed = 0
        self.timeout = self._random_timeout()
        self.votes = {self.id: True}
        if self._tally(True):
            return
        self._request_votes(self.term + 1, pre=True, transfer=False)

    def _campaign_real(self, transfer: bool) -> None:
        self._reset(self.term + 1)
        self.role = Role.CANDIDATE
        self.vote = self.id
        self.votes = {self.id: True}
        if self._tally(False):
            return
        self._request_votes(self.term, pre=False, transfer=transfer)

    def _request_votes(self, term: int, pre: bool, transfer: bool) -> None:
        last_index, last_term = self.log.last_index(), self.log.last_term()
        for peer in sorted(self.config.voters() - {self.id}):
            self.send(VoteRequest(term, self.id, peer, last_index, last_term, pre, transfer))

    def _handle_vote_request(self, m: VoteRequest) -> None:
        can_vote = (
            self.vote == m.frm
            or (not self.vote and not self.lead)
            or (m.pre and m.term > self.term)
        )
        if can_vote and self.log.is_up_to_date(m.last_index, m.last_term):
            self.send(VoteResponse(m.term, self.id, m.frm, True, m.pre))
            if not m.pre:
                self.election_elapsed = 0
                self.vote = m.frm
        else:
            self.send(VoteResponse(self.term, self.id, m.frm, False, m.pre))

    def _handle_vote_response(self, m: VoteResponse) -> None:
        expected = Role.PRE_CANDIDATE if m.pre else Role.CANDIDATE
        if self.role is not expected:
            return
        if m.frm in self.config.voters():
            self.votes.setdefault(m.frm, m.granted)
        self._tally(m.pre)

    def _tally(self, pre: bool) -> bool:
        """Count votes; move on if decided. Returns True if the election ended."""
        voters = self.config.voters()
        granted = sum(1 for v, ok in self.votes.items() if ok and v in voters)
        rejected = sum(1 for v, ok in self.votes.items() if not ok and v in voters)
        if granted >= self.quorum():
            if pre:
                self._campaign_real(False)
            else:
                self.become_leader()
            return True
        if rejected >= self.quorum() or rejected > len(voters) - self.quorum():
            self.become_follower(self.term, "")
            return True
        return False

    # --- role changes -----------------------------------------------------------

    def _reset(self, term: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = ""
        self.lead = ""
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.timeout = self._random_timeout()
        self.votes = {}
        self.transferee = ""
        # A leader's unsent broadcast dies with its role: left set, has_ready()
        # would stay true with nothing to hand out (a driver's busy loop).
        self._broadcast = False
        # Reads forwarded to a leader die with its term or our change of role:
        # a late answer could come from a leader that was already deposed.
        self._dropped_reads.extend(sorted(self._forwarded))
        self._forwarded.clear()
        if self.role is Role.LEADER:
            for ctx, requester in self.reads.drain():
                if requester == self.id:
                    self._dropped_reads.append(ctx)
                else:
                    self.send(ReadIndexResponse(term, self.id, requester, ctx, 0))
        self.progress = {}

    def become_follower(self, term: int, leader: str) -> None:
        self._reset(term)
        self.role = Role.FOLLOWER
        self.lead = leader

    def become_leader(self) -> None:
        self._reset(self.term)
        self.role = Role.LEADER
        self.lead = self.id
        last = self.log.last_index()
        self.progress = {
            m.id: Progress(last + 1, self.cfg.max_inflight) for m in self.config.members
        }
        me = self.progress.get(self.id)
        if me is not None:
            me.match = self.log.stable
        # Conservatively treat any configuration in the uncommitted tail as pending.
        self.pending_conf_index = last
        # The no-op of the new term (section 8): commits the previous terms'
        # entries indirectly and lets reads and membership changes proceed.
        self.append_local([Entry(self.term, last + 1)])
