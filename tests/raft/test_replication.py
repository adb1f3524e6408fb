"""Log replication: the no-op, log matching and truncation, commit rules,
batching, pipelining and fast backtracking (Raft paper section 5.3)."""

from __future__ import annotations

import random

from tests.raftsim.net import Net, config_of
from uhaha.raft import (
    AppendRequest,
    AppendResponse,
    Entry,
    EntryKind,
    HardState,
    Mode,
    RaftConfig,
    RaftCore,
    RaftState,
    Role,
)


def _terms(net: Net, nid: str) -> list[int]:
    return [e.term for e in net.core(nid).log.entries]


def _mode(net: Net, leader: str, follower: str) -> Mode:
    return net.core(leader).progress[follower].mode


def test_8_new_leader_appends_a_noop_that_commits_older_entries() -> None:
    """Raft paper section 8: "each leader commit[s] a blank no-op entry into the
    log at the start of its term". A new leader cannot commit entries of
    older terms by counting (5.4.2); its no-op commits them without waiting
    for a client write. Here 2 inherits an entry of term 2 that never
    committed; its term-3 no-op commits it."""
    net = Net(["1", "2", "3"], pre_vote=False, check_quorum=False)
    net.elect("1")
    noop = net.core("1").log.entries[-1]
    assert (noop.index, noop.term, noop.kind, noop.data) == (2, 2, EntryKind.NORMAL, b"")
    net.tick("1")
    net.stabilize()
    assert all(net.core(n).log.committed == 2 for n in net.nodes)
    assert all(net.nodes[n].values == [] for n in net.nodes)  # a no-op writes nothing

    net.core("1").propose(b"y")
    net.run("1")
    for m in net.take():
        if m.to == "2":
            net.deliver(m)  # y reaches 2 only ...
    net.take()  # ... and 2's acknowledgement is lost, so y is not committed
    assert net.core("1").log.committed == 2
    net.crash("1")

    net.elect("2")
    assert [(e.index, e.term, e.data) for e in net.core("2").log.entries[1:]] == [
        (2, 2, b""),
        (3, 2, b"y"),
        (4, 3, b""),
    ]
    net.stabilize()
    net.tick("2")  # the heartbeat tells 3 the new commit index
    net.stabilize()
    for nid in ("2", "3"):
        assert net.core(nid).log.committed == 4
        assert net.nodes[nid].values == [b"y"]


def _follower(entries: list[tuple[int, bytes]], commit: int) -> RaftCore:
    """Server 2 with the bootstrap entry at index 1 and then ``entries``."""
    log = [Entry(1, 1, EntryKind.CONFIG, config_of(["1", "2", "3"]).encode())]
    log += [Entry(t, i, EntryKind.NORMAL, d) for i, (t, d) in enumerate(entries, start=2)]
    state = RaftState(HardState(log[-1].term, "", commit), None, log)
    core = RaftCore(RaftConfig("2"), state, rng=random.Random(0))
    assert not core.ready().messages
    return core


def test_5_3_conflict_truncates_only_from_the_first_conflicting_index() -> None:
    """Raft paper 5.3 (Figure 2, AppendEntries step 3): "If an existing entry
    conflicts with a new one (same index but different terms), delete the
    existing entry and all that follow it". Entries before the first conflict
    are kept, not rewritten: the Ready persists only from the conflict on."""
    core = _follower([(2, b""), (2, b"x"), (2, b"y"), (2, b"z")], commit=2)
    new = (Entry(2, 3, EntryKind.NORMAL, b"x"), Entry(3, 4, EntryKind.NORMAL, b"w"))
    core.step(AppendRequest(3, "3", "2", 2, 2, new, 2))
    rd = core.ready()
    assert [(e.index, e.term, e.data) for e in rd.entries] == [(4, 3, b"w")]
    assert [(e.index, e.term) for e in core.log.entries] == [(1, 1), (2, 2), (3, 2), (4, 3)]
    assert rd.messages == [AppendResponse(3, "2", "3", 4)]


def test_5_3_old_append_without_conflict_does_not_truncate() -> None:
    """Raft paper 5.3 (Figure 2, AppendEntries steps 3-4): only a *conflict*
    truncates. A shorter, older AppendEntries (delayed, duplicated or
    reordered) whose entries we already hold must not cut off the newer
    entries after them."""
    core = _follower([(2, b""), (2, b"x"), (2, b"y"), (2, b"z")], commit=2)
    core.step(AppendRequest(2, "1", "2", 2, 2, (Entry(2, 3, EntryKind.NORMAL, b"x"),), 2))
    rd = core.ready()
    assert rd.entries == []
    assert core.log.last_index() == 5
    assert rd.messages == [AppendResponse(2, "2", "1", 3)]


def test_5_3_reordered_append_from_the_leader_keeps_newer_entries() -> None:
    """Raft paper 5.3, end to end: the leader pipelines three appends; the first
    one is delivered again after the others. The follower keeps all three
    entries (nothing is rewritten on its disk) and acknowledges index 3."""
    net = Net(["1", "2", "3"])
    net.elect("1")
    to_2 = []
    for data in (b"a", b"b", b"c"):
        net.core("1").propose(data)
        net.run("1")
        to_2 += net.queued(AppendRequest, to="2")
        net.take()
    assert [len(m.entries) for m in to_2] == [1, 1, 1]
    for m in to_2:
        net.deliver(m)
    net.take()  # 2's acknowledgements are lost: nothing commits
    disk_before = list(net.nodes["2"].disk.entries)
    assert [e.data for e in disk_before[-3:]] == [b"a", b"b", b"c"]

    net.deliver(to_2[0])  # the old append arrives again, late
    assert net.nodes["2"].disk.entries == disk_before
    assert net.core("2").log.last_index() == 5
    (reply,) = net.take()
    assert isinstance(reply, AppendResponse)
    assert (reply.reject, reply.index) == (False, 3)
    net.stabilize()
    net.tick("1")  # the heartbeat's reply makes 1 resend; 2 acknowledges index 5
    net.stabilize()
    net.tell_commit("1")
    assert net.nodes["2"].values == [b"a", b"b", b"c"]


def test_5_3_commit_index_never_decreases_on_stale_append() -> None:
    """Raft paper 5.3 (Figure 2: "If leaderCommit > commitIndex, set
    commitIndex = min(leaderCommit, index of last new entry)"): a follower's
    commit index only moves forward. An old append carrying a lower leader
    commit, or starting before our commit index, changes nothing and is
    answered with what we hold."""
    core = _follower([(2, b""), (2, b"x"), (2, b"y"), (2, b"z")], commit=4)
    core.step(AppendRequest(2, "1", "2", 4, 2, (Entry(2, 5, EntryKind.NORMAL, b"z"),), 2))
    rd = core.ready()
    assert core.log.committed == 4
    assert rd.hard_state is None or rd.hard_state.commit == 4
    assert rd.messages == [AppendResponse(2, "2", "1", 5)]
    core.advance(rd)

    core.step(AppendRequest(2, "1", "2", 1, 1, (Entry(2, 2),), 1))
    rd = core.ready()
    assert core.log.committed == 4
    assert rd.messages == [AppendResponse(2, "2", "1", 4)]
    assert core.log.last_index() == 5


def test_5_4_partitioned_old_leader_cannot_commit() -> None:
    """Raft paper 5.4 and 6 (and Figure 3's State Machine Safety): a leader cut
    off from the majority keeps accepting proposals but can never commit
    them; a new leader is elected on the majority side, and after healing the
    old leader's entries are overwritten and applied nowhere."""
    net = Net(["1", "2", "3"])
    net.elect("1")
    net.propose("1", b"a")
    net.partition(["1"], ["2", "3"])
    index, _ = net.core("1").propose(b"stale1")
    net.core("1").propose(b"stale2")
    net.tick("1", 5)
    assert net.core("1").log.committed < index

    net.expire("2", "3")
    net.elect("2")
    net.propose("2", b"b")
    net.tick("1", 3)
    assert net.core("1").log.committed < index

    net.heal()
    net.tick("2")
    net.stabilize()
    net.tick("2")
    net.stabilize()
    assert net.leader() == "2"
    for nid in net.nodes:
        assert net.nodes[nid].values == [b"a", b"b"]
        assert net.core(nid).log.term(index) == net.core("2").term
    assert _terms(net, "1") == _terms(net, "2")


def test_5_3_batching_proposals_between_readies_share_one_append() -> None:
    """Batching (thesis 10.2.1): proposals made between two Readies leave as a
    single AppendEntries per follower."""
    net = Net(["1", "2", "3"])
    net.elect("1")
    for n in range(50):
        net.core("1").propose(b"v%02d" % n)
    net.run("1")
    appends = net.queued(AppendRequest)
    assert sorted(m.to for m in appends) == ["2", "3"]
    assert all(len(m.entries) == 50 for m in appends)
    net.stabilize()
    net.tell_commit("1")
    assert net.nodes["3"].applied == net.core("1").log.last_index()


def test_5_3_batching_is_bounded_by_max_msg_bytes() -> None:
    """Batching stays bounded: an append carries at most ``max_msg_bytes`` of
    entries (each entry counts its data plus 24 bytes); the rest follows as
    the follower acknowledges."""
    limit = 10 * (24 + 3)  # ten 3-byte proposals
    net = Net(["1", "2", "3"], max_msg_bytes=limit)
    net.elect("1")
    mark = len(net.delivered)
    for n in range(50):
        net.core("1").propose(b"v%02d" % n)
    net.run("1")
    assert [len(m.entries) for m in net.queued(AppendRequest, to="2")] == [10]
    net.stabilize()
    sizes = [sum(e.size() for e in m.entries) for m in net.sent(AppendRequest, "1", "2", mark)]
    sizes = [s for s in sizes if s]
    assert len(sizes) == 5
    assert max(sizes) <= limit
    net.tell_commit("1")
    assert net.nodes["2"].values == [b"v%02d" % n for n in range(50)]


def test_5_3_pipelining_bounded_by_max_inflight() -> None:
    """Pipelining (thesis 10.2.2): a follower in REPLICATE mode receives
    appends without the leader waiting for each reply, but at most
    ``max_inflight`` of them are unacknowledged at any time."""
    net = Net(["1", "2", "3"], max_inflight=3)
    net.elect("1")
    pr = net.core("1").progress["2"]
    assert pr.mode is Mode.REPLICATE
    for n in range(10):
        net.core("1").propose(b"p%d" % n)
        net.run("1")
    assert [len(m.entries) for m in net.queued(AppendRequest, to="2")] == [1, 1, 1]
    assert len(pr.inflight) == 3
    assert pr.is_paused()
    net.stabilize()
    net.tell_commit("1")
    assert net.nodes["2"].values == [b"p%d" % n for n in range(10)]
    assert not pr.inflight


def test_5_3_probe_mode_sends_one_append_at_a_time() -> None:
    """In PROBE mode (a new leader does not yet know where a follower's log
    matches, 5.3) the leader sends one append and waits for its answer;
    proposals meanwhile queue up and follow in one append once the probe
    succeeds and the follower is in REPLICATE mode."""
    net = Net(["1", "2", "3"], pre_vote=False)
    net.campaign_only("1")
    assert _mode(net, "1", "2") is Mode.PROBE
    assert len(net.queued(AppendRequest, to="2")) == 1  # the no-op
    for n in range(5):
        net.core("1").propose(b"q%d" % n)
        net.run("1")
    (probe,) = net.queued(AppendRequest, to="2")
    assert len(probe.entries) == 1

    net.pump(lambda m: m.to in {"1", "2"})
    assert _mode(net, "1", "2") is Mode.REPLICATE
    sent = [len(m.entries) for m in net.sent(AppendRequest, "1", "2") if m.entries]
    assert sent == [1, 5]
    assert net.core("2").log.last_index() == 7


def test_5_3_fast_backtracking_skips_divergent_terms() -> None:
    """Raft paper 5.3 ("the protocol can be optimized to reduce the number of
    rejected AppendEntries RPCs"): a rejection carries a hint (the follower's
    last index at or below the probe whose term is at most the probed term),
    so a follower with 100 divergent entries is brought in line in one or two
    round trips, not 100."""
    net = Net(["1", "2", "3"])
    net.elect("1")
    net.partition(["1"], ["2", "3"])
    net.core("1").propose_many([b"old%d" % n for n in range(100)])  # never committed
    net.run("1")
    net.expire("2", "3")
    net.elect("2")
    net.core("2").propose_many([b"new%d" % n for n in range(100)])
    net.stabilize()
    # A new leader whose progress for 1 starts at the end of its long log.
    net.core("2").transfer_leadership("3")
    net.stabilize()
    assert net.core("3").role is Role.LEADER
    assert net.core("3").progress["1"].next == net.core("3").log.last_index()  # its no-op

    net.heal()
    mark = len(net.delivered)
    net.tick("3")
    net.stabilize()
    rejects = [m for m in net.sent(AppendResponse, "1", "3", mark) if m.reject]
    assert 1 <= len(rejects) <= 2
    net.tick("3")
    net.stabilize()
    assert _terms(net, "1") == _terms(net, "3")
    assert net.nodes["1"].values == [b"new%d" % n for n in range(100)]


def test_5_3_fast_backtracking_lagging_follower_jumps_to_its_end() -> None:
    """Raft paper 5.3: a follower that is merely behind (its log is a prefix of
    the leader's) answers a probe beyond its end with its last index, so one
    rejection suffices whatever the gap."""
    net = Net(["1", "2", "3"])
    net.elect("1")
    net.crash("3")
    for n in range(30):
        net.propose("1", b"x%d" % n)
    net.core("1").transfer_leadership("2")
    net.stabilize()
    assert net.leader() == "2"
    net.restart("3")
    mark = len(net.delivered)
    net.tick("2")
    net.stabilize()
    rejects = [m for m in net.sent(AppendResponse, "3", "2", mark) if m.reject]
    assert len(rejects) == 1
    assert rejects[0].hint_index == 2
    net.tick("2")
    net.stabilize()
    assert net.nodes["3"].values == [b"x%d" % n for n in range(30)]


def test_a_leader_deposed_before_its_broadcast_leaves_nothing_pending() -> None:
    """A leader that appends and then meets a higher term before its next
    Ready drops the unsent broadcast with its role. Left set, has_ready() would
    stay true while every Ready came out empty: a driver looping on
    ``while has_ready()`` would spin forever (found by the chaos tests: a
    paused leader woke up, proposed, and froze)."""
    net = Net(["1", "2", "3"])
    net.elect("1")
    net.stabilize()
    old = net.core("1")
    old.propose(b"x")  # sets the broadcast for the next Ready
    old.step(AppendRequest(old.term + 1, "2", "1", 0, 0, (), 0))  # a newer leader
    assert old.role is Role.FOLLOWER
    for _ in range(10):
        if not old.has_ready():
            break
        rd = old.ready()
        assert not rd.empty
        old.advance(rd)
    assert not old.has_ready()


def test_a_new_commit_index_rides_on_the_next_append_or_tick() -> None:
    """A lone write costs one round of messages: an append to each follower and
    its reply. The commit index it reaches has no message of its own (as in
    hashicorp/raft); the next append carries it, or, if no write follows, the
    leader's next tick. Followers apply no later than that."""
    net = Net(["1", "2", "3"])
    net.elect("1")
    net.tell_commit("1")
    mark = len(net.delivered)
    first, _ = net.propose("1", b"a")
    kinds = sorted((type(m).__name__, m.frm, m.to) for m in net.delivered[mark:])
    assert kinds == [
        ("AppendRequest", "1", "2"),
        ("AppendRequest", "1", "3"),
        ("AppendResponse", "2", "1"),
        ("AppendResponse", "3", "1"),
    ]
    assert net.core("1").log.committed == first
    assert net.core("2").log.committed < first  # not told yet
    assert net.nodes["2"].values == []

    second, _ = net.propose("1", b"b")
    assert net.core("2").log.committed == first  # the next append carried it
    assert net.nodes["2"].values == [b"a"]

    net.tell_commit("1")
    assert net.core("2").log.committed == net.core("3").log.committed == second
    assert net.nodes["3"].values == [b"a", b"b"]
    mark = len(net.delivered)
    net.core("1").heartbeat_elapsed = 0  # the next tick is not a heartbeat's
    net.tell_commit("1")
    assert not net.sent(AppendRequest, since=mark)  # nothing is owed any more
