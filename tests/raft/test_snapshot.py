"""Log compaction and InstallSnapshot (Raft paper section 7, thesis chapter 5)."""

from __future__ import annotations

import random

from tests.raftsim.net import Net, config_of
from uhaha.raft import (
    AppendRequest,
    AppendResponse,
    Entry,
    EntryKind,
    HardState,
    Message,
    Mode,
    RaftConfig,
    RaftCore,
    RaftState,
    Role,
    SnapshotChunk,
    SnapshotMeta,
    SnapshotResponse,
)

ET = 10


def _values(n: int, prefix: bytes = b"value-") -> list[bytes]:
    return [prefix + b"%02d" % i for i in range(n)]


def test_7_snapshot_compacts_the_log() -> None:
    """Raft paper section 7: once the state machine state up to an index is
    stored in a snapshot, the log up to that index can be discarded (here
    minus ``keep`` recent entries, kept for slightly slow followers). A
    restarted server rebuilds its state from the snapshot plus the log."""
    net = Net(["1", "2", "3"])
    net.elect("1")
    for v in _values(20):
        net.propose("1", v)
    node = net.nodes["1"]
    applied = node.applied
    assert applied == 22  # bootstrap configuration, no-op, 20 values

    node.take_snapshot(keep=5)
    assert node.disk.snapshot is not None
    assert (node.disk.snapshot.index, node.disk.snapshot.term) == (22, 2)
    assert node.disk.snapshot.config == config_of(["1", "2", "3"])
    assert net.core("1").log.first_index() == 18
    assert [e.index for e in node.disk.entries] == [18, 19, 20, 21, 22]

    net.propose("1", b"after")
    node.take_snapshot(keep=0)
    assert net.core("1").log.first_index() == 24
    assert node.disk.entries == []

    net.propose("1", b"tail")
    net.crash("1")
    net.restart("1")
    net.run("1")
    # The snapshot, then the log up to the durable commit index. A commit
    # index change alone is not written (etcd's rule), so "tail" may wait
    # until a leader commits again, which it does with its term's no-op.
    assert net.nodes["1"].values[:21] == [*_values(20), b"after"]
    net.expire("2", "3")
    net.elect("1")
    net.stabilize()
    assert net.nodes["1"].values == [*_values(20), b"after", b"tail"]
    assert net.nodes["1"].applied == 25  # and the new term's no-op


def _far_behind(chunk: int = 16) -> tuple[Net, int]:
    """3 misses 30 writes; the leader compacts them away, then takes 3 more."""
    net = Net(["1", "2", "3"], snapshot_chunk_bytes=chunk)
    net.elect("1")
    net.isolate("3")
    net.cut.discard(("1", "2"))
    net.cut.discard(("2", "1"))
    for v in _values(30):
        net.propose("1", v)
    net.nodes["1"].take_snapshot(keep=0)
    snap = net.nodes["1"].disk.snapshot
    assert snap is not None
    for v in _values(3, b"tail-"):
        net.propose("1", v)
    net.heal()
    return net, snap.index


def test_7_far_behind_follower_gets_the_snapshot_in_chunks_then_the_tail() -> None:
    """Raft paper section 7 (InstallSnapshot, Figure 13): a follower that needs
    compacted entries receives the snapshot, here in 16-byte chunks sent one
    at a time (each acknowledged once durable), then the entries after it,
    and ends with the same state as the leader."""
    net, snap_index = _far_behind()
    mark = len(net.delivered)
    net.tick("1")
    net.stabilize()
    chunks = net.sent(SnapshotChunk, "1", "3", mark)
    size = len(net.nodes["1"].disk.snapshot_data)
    assert len(chunks) == -(-size // 16) >= 10
    assert [c.offset for c in chunks] == list(range(0, size, 16))
    assert [c.done for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert {c.meta.index for c in chunks} == {snap_index}
    # The tail follows the snapshot, as ordinary appends.
    last_chunk = net.delivered.index(chunks[-1])
    tail = [e for m in net.sent(AppendRequest, "1", "3", last_chunk) for e in m.entries]
    assert [e.data for e in tail] == _values(3, b"tail-")

    three = net.nodes["3"]
    assert three.disk.snapshot is not None
    assert three.disk.snapshot.index == snap_index
    assert three.values == net.nodes["1"].values == [*_values(30), *_values(3, b"tail-")]
    assert net.core("1").progress["3"].mode is Mode.REPLICATE


def test_7_lost_snapshot_chunk_is_resent() -> None:
    """Raft paper section 7 (thesis 5.3): chunks are sent one at a time and a
    chunk that is lost (or whose acknowledgement is) is sent again when the
    follower stays silent for an election timeout, from the last offset the
    follower acknowledged."""
    net, _ = _far_behind()
    mark = len(net.delivered)
    net.tick("1")
    lost: list[Message] = []

    def lose_third_chunk(m: Message) -> bool:
        if isinstance(m, SnapshotChunk) and m.offset == 32 and not lost:
            lost.append(m)
            return False
        return True

    net.pump(lose_third_chunk)
    assert lost
    assert net.core("1").progress["3"].mode is Mode.SNAPSHOT
    assert net.core("1").progress["3"].snap_offset == 32
    for _ in range(ET):
        net.tick("1")
        net.stabilize()
    offsets = [c.offset for c in net.sent(SnapshotChunk, "1", "3", mark)]
    assert offsets[:2] == [0, 16]
    assert offsets[2:4] == [32, 48]  # the resent chunk, then on
    assert net.nodes["3"].values == net.nodes["1"].values


def _follower(terms: list[int], commit: int) -> RaftCore:
    log = [Entry(1, 1, EntryKind.CONFIG, config_of(["1", "2", "3"]).encode())]
    log += [Entry(t, i, EntryKind.NORMAL, b"%d" % i) for i, t in enumerate(terms, start=2)]
    state = RaftState(HardState(2, "1", commit), None, log)
    core = RaftCore(RaftConfig("2"), state, rng=random.Random(0))
    core.advance(core.ready())
    return core


def _whole_snapshot(index: int) -> SnapshotChunk:
    meta = SnapshotMeta(index, 2, config_of(["1", "2", "3"]), 3)
    return SnapshotChunk(2, "1", "2", meta, 0, b"abc", True)


def test_7_snapshot_of_already_committed_entries_changes_nothing() -> None:
    """Raft paper section 7 (snapshots racing appends): a snapshot that arrives
    after appends already brought the follower past it (here the follower
    committed index 6; the snapshot covers up to 4) is answered with the
    follower's commit index, and nothing is installed, truncated or regressed."""
    core = _follower([2, 2, 2, 2, 2], commit=6)
    core.step(_whole_snapshot(4))
    rd = core.ready()
    assert rd.snapshot is None
    assert rd.snapshot_chunks == []
    assert rd.entries == []
    assert rd.messages == [AppendResponse(2, "2", "1", 6)]
    assert (core.log.last_index(), core.log.committed, core.log.applied) == (6, 6, 6)


def test_7_snapshot_of_held_entries_keeps_the_entries_after_it() -> None:
    """Raft paper section 7 (Figure 13, InstallSnapshot step 6): "If existing
    log entry has same index and term as snapshot's last included entry,
    retain log entries following it and reply". The follower holds entries up
    to 8 but has only learned commit 3; a snapshot up to 5 must not discard 6
    to 8, which the leader may already have counted toward commitment."""
    core = _follower([2, 2, 2, 2, 2, 2, 2], commit=3)
    core.step(_whole_snapshot(5))
    rd = core.ready()
    assert core.log.last_index() == 8
    assert core.log.term(8) == 2
    assert core.log.committed >= 5
    assert rd.snapshot is None
    (reply,) = rd.messages
    assert isinstance(reply, AppendResponse)
    assert not reply.reject
    assert reply.index >= 5


def test_7_delayed_snapshot_must_not_erase_counted_entries() -> None:
    """Raft paper section 7 and Figure 3 (Leader Completeness), the race end to
    end: the leader, in snapshot mode for 3, sends it a snapshot up to 4 that
    is delayed; meanwhile 3 receives older delayed appends up to 6, so the
    leader counts 3 and commits 5 and 6 with it (2 has crashed). When the
    snapshot finally arrives, 3 must keep 5 and 6: otherwise, once the leader
    crashes, 2 and 3 elect a leader without two committed entries."""
    net = Net(["1", "2", "3"])
    net.elect("1")
    net.tick("1")
    net.stabilize()
    to_2: list[Message] = []
    to_3: list[Message] = []
    for v in (b"a", b"b", b"c", b"d"):  # indexes 3 to 6
        net.core("1").propose(v)
        net.run("1")
        to_2 += net.queued(AppendRequest, to="2")
        to_3 += net.queued(AppendRequest, to="3")
        net.take()
    for m in to_2[:2]:  # 2 gets 3 and 4: they commit
        net.deliver(m)
    net.pump(lambda m: m.to == "1")
    assert net.core("1").log.committed == 4
    net.crash("2")

    net.nodes["1"].take_snapshot(keep=0)  # up to 4
    net.deliver(to_3[1])  # a reordered append (prev 3): 3 refuses it ...
    held = net.pump(lambda m: m.to == "1")  # ... so the leader falls back to a snapshot
    (chunk,) = held
    assert isinstance(chunk, SnapshotChunk)
    assert chunk.meta.index == 4
    assert net.core("1").progress["3"].mode is Mode.SNAPSHOT

    for m in to_3:  # the delayed appends arrive, in order
        net.deliver(m)
    net.pump(lambda m: m.to == "1")  # (the leader's commit notices are lost)
    assert net.core("1").progress["3"].match == 6
    assert net.core("1").log.committed == 6
    assert net.nodes["1"].values == [b"a", b"b", b"c", b"d"]
    assert net.core("3").log.committed < 4

    net.deliver(chunk)  # the delayed snapshot
    net.take()
    assert net.core("3").log.last_index() == 6

    net.crash("1")
    net.restart("2")
    net.expire("2", "3")
    net.elect("3")  # the safety checker verifies it holds every committed entry
    net.tick("3")
    net.stabilize()
    assert net.nodes["2"].values == [b"a", b"b", b"c", b"d"]


def test_7_snapshot_install_survives_a_restart_of_the_follower() -> None:
    """Thesis 5.3: a follower that crashes in the middle of receiving a
    snapshot asks for it again from the start (its partial state is not
    trusted) and still ends up with the leader's state."""
    net, _ = _far_behind(chunk=32)
    net.tick("1")
    n = 0

    def crash_after_three(m: Message) -> bool:
        nonlocal n
        if isinstance(m, SnapshotResponse) and m.frm == "3":
            n += 1
            if n == 3:
                net.crash("3")
                return False
        return True

    net.pump(crash_after_three)
    net.restart("3")
    for _ in range(2 * ET):
        net.tick("1")
        net.stabilize()
    assert net.core("3").role is Role.FOLLOWER
    assert net.nodes["3"].values == net.nodes["1"].values
