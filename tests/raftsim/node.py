"""A simulated server: a RaftCore, a driver, "durable" storage and a tiny state machine.

The driver follows the Ready contract of :mod:`uhaha.raft.ready` exactly,
but in two halves so that the simulator can put time (and crashes) between
them: :meth:`SimNode.begin` takes a Ready and :meth:`SimNode.finish` makes it
durable, sends, applies and advances. What :class:`Disk` holds is all that
survives a crash.

The state machine is a register history: every non-empty NORMAL entry is a
write of its bytes; a read returns ``(applied index, last written value)``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from uhaha.raft import (
    Entry,
    EntryKind,
    HardState,
    Message,
    RaftConfig,
    RaftCore,
    RaftState,
    ReadState,
    Ready,
    Role,
    SnapshotMeta,
    VoteResponse,
)

from .checker import SafetyChecker


@dataclass
class Disk:
    """What a server has made durable; survives crashes."""

    hard_state: HardState = field(default_factory=HardState)
    entries: list[Entry] = field(default_factory=list)
    snapshot: SnapshotMeta | None = None
    snapshot_data: bytes = b""
    incoming: bytearray = field(default_factory=bytearray)

    def term_at(self, index: int) -> int | None:
        if self.snapshot and index == self.snapshot.index:
            return self.snapshot.term
        if index == 0:
            return 0
        for e in reversed(self.entries):
            if e.index == index:
                return e.term
            if e.index < index:
                break
        return None

    def write_entries(self, entries: list[Entry]) -> None:
        """Overwrite from ``entries[0].index`` on, as the Ready contract says."""
        if not entries:
            return
        first = entries[0].index
        base = self.entries[0].index if self.entries else first
        if self.snapshot and first <= self.snapshot.index:
            raise AssertionError(f"writing entry {first} inside the snapshot")
        del self.entries[max(first - base, 0) :]
        expected = self.entries[-1].index + 1 if self.entries else None
        if expected is None and self.snapshot and first != self.snapshot.index + 1:
            expected = self.snapshot.index + 1
        if expected is not None and first != expected:
            raise AssertionError(f"gap in the durable log: writing {first}, expected {expected}")
        self.entries.extend(entries)

    def install(self, meta: SnapshotMeta, data: bytes) -> None:
        self.snapshot = meta
        self.snapshot_data = data
        self.entries = [e for e in self.entries if e.index > meta.index]
        if self.entries and self.entries[0].index != meta.index + 1:
            self.entries = []

    def compact(self, index: int) -> None:
        self.entries = [e for e in self.entries if e.index > index]


def encode_state(values: list[bytes]) -> bytes:
    return b"\n".join(values)


def decode_state(data: bytes) -> list[bytes]:
    return data.split(b"\n") if data else []


class SimNode:
    def __init__(
        self,
        node_id: str,
        cfg: RaftConfig,
        rng: random.Random,
        checker: SafetyChecker,
        disk: Disk | None = None,
    ) -> None:
        self.id = node_id
        self.cfg = cfg
        self.rng = rng
        self.checker = checker
        self.disk = disk or Disk()
        self.pending: Ready | None = None
        self.reads_done: dict[bytes, tuple[int, bytes]] = {}
        self.reads_dropped: set[bytes] = set()
        self._waiting_reads: list[ReadState] = []
        self.on_apply: Callable[[SimNode, Entry], None] | None = None
        self.restart()

    def restart(self) -> None:
        """(Re)build the volatile part from the disk, as a process start does."""
        d = self.disk
        after = d.snapshot.index if d.snapshot else 0
        state = RaftState(d.hard_state, d.snapshot, [e for e in d.entries if e.index > after])
        self.core = RaftCore(
            self.cfg,
            state,
            rng=random.Random(self.rng.random()),
            snapshot_reader=self._read_snapshot,
            applied=d.snapshot.index if d.snapshot else 0,
        )
        self.values = decode_state(d.snapshot_data) if d.snapshot else []
        self.applied = d.snapshot.index if d.snapshot else 0
        self.pending = None
        self._waiting_reads = []
        self.checker.restarted(self.id, self.applied)

    def _read_snapshot(self, meta: SnapshotMeta, offset: int, size: int) -> bytes:
        d = self.disk
        if d.snapshot != meta:
            raise LookupError("snapshot no longer stored")
        return d.snapshot_data[offset : offset + size]

    # --- the Ready cycle, in two halves -------------------------------------

    def begin(self) -> bool:
        """Take a Ready if there is one and none is outstanding."""
        if self.pending is None and self.core.has_ready():
            self.pending = self.core.ready()
            # has_ready() must never promise an empty Ready: a driver that
            # loops "while has_ready()" would spin without yielding.
            assert not self.pending.empty, f"{self.id}: has_ready() but an empty Ready"
            return True
        return False

    def finish(self) -> list[Message]:
        """Persist, then hand back messages to send, then apply and advance
        (``pending.early`` was the caller's to send when it began the Ready)."""
        rd = self.pending
        assert rd is not None
        self.pending = None
        d = self.disk
        for chunk in rd.snapshot_chunks:
            if chunk.offset == 0:
                d.incoming = bytearray()
            assert len(d.incoming) == chunk.offset, "chunk out of order"
            d.incoming += chunk.data
        if rd.snapshot is not None:
            data = bytes(d.incoming)
            assert len(data) == rd.snapshot.size, "incomplete snapshot installed"
            d.install(rd.snapshot, data)
            d.entries = []
            self.values = decode_state(data)
            self.applied = rd.snapshot.index
            self.checker.installed(self.id, rd.snapshot.index, self.values)
        if rd.entries:
            self.checker.persisting(self.id, d.term_at(rd.entries[0].index - 1), rd.entries)
        d.write_entries(rd.entries)
        if rd.hard_state is not None and (rd.entries or not rd.commit_only):
            # As the node does: a change of the commit index alone is not
            # written (a restart learns it again), so restarts see older ones.
            self.checker.hard_state(self.id, d.hard_state, rd.hard_state)
            d.hard_state = rd.hard_state
        msgs = rd.messages
        for m in msgs:
            if isinstance(m, VoteResponse) and m.granted and not m.pre:
                self.checker.vote(m.frm, m.term, m.to)
        ss = rd.soft_state
        if ss is not None and ss.role is Role.LEADER and self.core.term == ss.term:
            self.checker.elected(self.core)
        for e in rd.committed:
            self._apply(e)
        self._waiting_reads.extend(rd.read_states)
        self.reads_dropped.update(rd.dropped_reads)
        self.core.advance(rd)
        self._serve_reads()
        return msgs

    def _apply(self, e: Entry) -> None:
        if e.index <= self.applied:
            return  # covered by an installed snapshot
        assert e.index == self.applied + 1, f"{self.id}: apply gap {self.applied} -> {e.index}"
        self.applied = e.index
        if e.kind is EntryKind.NORMAL and e.data:
            self.values.append(e.data)
        self.checker.applied(self.id, e, self.core.term)
        if self.on_apply is not None:
            self.on_apply(self, e)

    def _serve_reads(self) -> None:
        still = []
        for rs in self._waiting_reads:
            if self.applied >= rs.index:
                last = self.values[-1] if self.values else b""
                self.reads_done[rs.ctx] = (self.applied, last)
            else:
                still.append(rs)
        self._waiting_reads = still

    # --- snapshots ------------------------------------------------------------

    def take_snapshot(self, keep: int) -> None:
        """Snapshot the applied state and compact the log (between Readies only)."""
        if self.pending is not None or self.applied == 0 or self.core.installing:
            return
        if self.disk.snapshot and self.disk.snapshot.index >= self.applied:
            return
        meta = self.core.snapshot_meta(self.applied)
        data = encode_state(self.values)
        meta = SnapshotMeta(meta.index, meta.term, meta.config, len(data))
        self.disk.snapshot = meta
        self.disk.snapshot_data = data
        self.core.compact(meta, keep)
        self.disk.compact(self.core.log.offset)
