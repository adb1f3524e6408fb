"""Linearizable reads without log writes: ReadIndex (Raft thesis section 6.4)."""

from __future__ import annotations

from tests.raftsim.net import Net
from uhaha.raft import (
    AppendRequest,
    Heartbeat,
    HeartbeatResponse,
    Message,
    ReadIndexRequest,
    ReadIndexResponse,
    Role,
)

ET = 10


def test_thesis_6_4_reads_wait_for_the_leaders_first_commit_in_its_term() -> None:
    """Thesis 6.4 step 1: a new leader does not know the real commit index
    until it commits an entry of its own term (its no-op). Here the old
    leader committed and applied y before crashing, but 2, the new leader,
    has y uncommitted; a read answered at 2's commit index at election time
    would miss y. It must wait for the no-op, and then returns y."""
    net = Net(["1", "2", "3"], pre_vote=False, check_quorum=False)
    net.elect("1")
    net.tick("1")
    net.stabilize()
    index, _ = net.core("1").propose(b"y")
    net.run("1")
    # y reaches 2, 2's acknowledgement reaches 1; the commit notice is lost.
    net.pump(
        lambda m: m.to == "1" or (isinstance(m, AppendRequest) and m.to == "2" and bool(m.entries))
    )
    assert net.nodes["1"].values == [b"y"]  # committed with 2, applied on 1
    assert net.core("2").log.committed < index
    net.crash("1")

    net.campaign_only("2", {"3"})
    assert net.core("2").role is Role.LEADER
    assert net.core("2").read_index(b"r")
    net.run("2")
    assert not net.queued(Heartbeat)  # no confirmation round yet
    assert b"r" not in net.nodes["2"].reads_done
    net.stabilize()
    noop = net.core("2").log.last_index()
    assert net.nodes["2"].reads_done[b"r"] == (noop, b"y")


def test_thesis_6_4_one_heartbeat_round_serves_every_queued_read() -> None:
    """Thesis 6.4 (and 6.4's batching remark): reads that arrive before a round
    of heartbeats is sent all wait for that one round, so a burst of reads
    costs one heartbeat per follower."""
    net = Net(["1", "2", "3"])
    net.elect("1")
    net.tick("1")
    net.stabilize()
    mark = len(net.delivered)
    ctxs = [b"r%d" % n for n in range(5)]
    for ctx in ctxs:
        assert net.core("1").read_index(ctx)
    net.run("1")
    beats = net.queued(Heartbeat)
    assert sorted(m.to for m in beats) == ["2", "3"]
    assert len({m.seq for m in beats}) == 1
    net.stabilize()
    assert all(ctx in net.nodes["1"].reads_done for ctx in ctxs)
    assert len(net.sent(Heartbeat, since=mark)) == 2


def test_thesis_6_4_read_needs_a_round_that_started_after_it_arrived() -> None:
    """Thesis 6.4 step 3: a read may only be served once a majority confirmed
    leadership *after* the read arrived. Read a waits for round s; read b
    arrives later and waits for round s+1, so acknowledgements of round s
    (even of heartbeats sent after b arrived) release a but not b."""
    net = Net(["1", "2", "3"])
    net.elect("1")
    net.tick("1")
    net.stabilize()
    core = net.core("1")
    core.read_index(b"a")
    net.run("1")
    s = core.reads.seq
    core.read_index(b"b")
    net.tick("1")  # a periodic heartbeat (still round s), then round s+1
    assert sorted(m.seq for m in net.queued(Heartbeat)) == [s, s, s, s, s + 1, s + 1]

    def round_s(m: Message) -> bool:
        return isinstance(m, Heartbeat | HeartbeatResponse) and m.seq == s

    net.pump(round_s, hold=True)
    reads = net.nodes["1"].reads_done
    assert b"a" in reads
    assert b"b" not in reads
    net.stabilize()
    assert b"b" in reads


def test_thesis_6_4_partitioned_leader_does_not_release_reads() -> None:
    """Thesis 6.4 and 6.2: a leader that can no longer hear a majority (here
    its replies are cut: a one-way partition) confirms no round, so it
    serves no read; when check-quorum makes it step down its pending reads
    are dropped, its own and those it was serving for a follower."""
    net = Net(["1", "2", "3"])
    net.elect("1")
    net.tick("1")
    net.stabilize()
    assert net.core("2").read_index(b"via-2")
    net.run("2")
    net.pump(lambda m: isinstance(m, ReadIndexRequest))  # it reaches 1, and no more
    net.cut.update({("2", "1"), ("3", "1")})
    assert net.core("1").read_index(b"own")
    for _ in range(2 * ET):
        net.tick("1")
        net.stabilize()
        if net.core("1").role is not Role.LEADER:
            break
    assert net.core("1").role is Role.FOLLOWER
    assert net.nodes["1"].reads_done == {}
    assert b"own" in net.nodes["1"].reads_dropped
    assert net.nodes["2"].reads_done == {}
    assert b"via-2" in net.nodes["2"].reads_dropped
    assert net.sent(ReadIndexResponse, "1", "2")[-1].index == 0


def test_thesis_6_4_follower_read_waits_until_it_applied_the_read_index() -> None:
    """Thesis 6.4.1 (reads on followers): a follower asks the leader for a read
    index (ReadIndexRequest), the leader confirms its leadership and answers
    with its commit index, and the follower serves the read only once its own
    state machine has applied up to that index."""
    net = Net(["1", "2", "3"])
    net.elect("1")
    net.isolate("2")
    net.cut.discard(("1", "3"))
    net.cut.discard(("3", "1"))
    index, _ = net.core("1").propose(b"x")
    net.stabilize()
    assert net.core("1").log.committed >= index
    net.heal()

    assert net.core("2").read_index(b"f")
    net.run("2")
    net.pump(lambda m: not (isinstance(m, AppendRequest) and m.to == "2"))
    (answer,) = net.sent(ReadIndexResponse, "1", "2")
    assert answer.index == index
    assert net.nodes["2"].applied < index
    assert b"f" not in net.nodes["2"].reads_done

    net.tick("1")
    net.stabilize()
    net.tick("1")
    net.stabilize()
    assert net.nodes["2"].reads_done[b"f"] == (index, b"x")


def test_thesis_6_4_single_node_serves_reads_at_once() -> None:
    """Thesis 6.4: with a single voter the leader is its own majority: a read
    is served in the next Ready, without sending anything."""
    net = Net(["1"])
    net.elect("1")
    net.propose("1", b"v")
    mark = len(net.delivered)
    assert net.core("1").read_index(b"s")
    net.run("1")
    assert not net.queue
    assert len(net.delivered) == mark
    assert net.nodes["1"].reads_done[b"s"] == (net.core("1").log.committed, b"v")


def test_thesis_6_4_follower_without_leader_cannot_start_a_read() -> None:
    """Thesis 6.4.1: a follower that knows no leader cannot obtain a read
    index; ``read_index`` says so at once instead of queueing the read."""
    net = Net(["1", "2", "3"])
    assert net.core("2").lead == ""
    assert not net.core("2").read_index(b"nobody")
    assert not net.core("2").has_ready()


def test_thesis_6_4_forwarded_read_is_dropped_when_the_leader_changes() -> None:
    """A follower's read forwarded to the leader ends, served or dropped: when
    the follower moves to a new term before the answer, the read is dropped,
    and a late answer from the old leader is ignored (it could be stale)."""
    net = Net(["1", "2", "3"])
    net.elect("1")
    assert net.core("2").read_index(b"r1")
    net.pump(lambda m: not isinstance(m, ReadIndexResponse), hold=True)
    assert net.sent(ReadIndexRequest, frm="2", to="1")
    answers = [m for m in net.take() if isinstance(m, ReadIndexResponse) and m.to == "2"]
    assert answers, "the leader answered the read"
    net.expire("2", "3")
    net.campaign("3")
    assert net.core("2").term > answers[0].term
    assert b"r1" in net.nodes["2"].reads_dropped
    for m in answers:
        net.core("2").step(m)
    net.run("2")
    assert b"r1" not in net.nodes["2"].reads_done
