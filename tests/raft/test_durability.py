"""The Ready contract: nothing leaves a server before the state it promises is
durable (Raft paper Figure 2: "Updated on stable storage before responding to
RPCs"), and durable term and vote never go backwards."""

from __future__ import annotations

from tests.raftsim.net import Net
from uhaha.raft import AppendRequest, AppendResponse, HardState, Role, VoteRequest, VoteResponse


def test_figure_2_vote_is_durable_before_it_is_granted() -> None:
    """Raft paper Figure 2 (persistent state: votedFor): the granted vote and
    the vote it promises come out in the same Ready, which the driver makes
    durable before sending. A crash before that Ready finishes loses both: the
    candidate never counts the vote, so after restarting the server may
    safely grant its vote in that term to someone else."""
    net = Net(["1", "2", "3"], pre_vote=False, check_quorum=False)
    net.core("1").campaign()
    net.run("1")
    (request,) = [m for m in net.take() if isinstance(m, VoteRequest) and m.to == "3"]

    node = net.nodes["3"]
    node.core.step(request)
    assert node.begin()
    rd = node.pending
    assert rd is not None
    assert rd.must_sync
    assert rd.hard_state == HardState(2, "1", 1)
    assert rd.messages == [VoteResponse(2, "3", "1", True)]
    net.crash("3")  # before the Ready is durable: the reply is never sent
    assert node.disk.hard_state == HardState(1, "", 1)  # as bootstrapped

    net.restart("3")
    assert (net.core("3").term, net.core("3").vote) == (1, "")
    net.core("2").campaign()  # term 2 as well
    net.stabilize()
    assert net.core("2").role is Role.LEADER
    assert net.core("2").term == 2
    assert net.sent(VoteResponse, "3", "2")[-1].granted
    assert not net.sent(VoteResponse, "3", "1")
    assert node.disk.hard_state.vote == "2"
    assert net.core("1").role is Role.FOLLOWER


def test_figure_2_entries_are_durable_before_they_are_acknowledged() -> None:
    """Raft paper Figure 2 (persistent state: log[]): a follower acknowledges
    entries only in the Ready that persists them. A crash before it finishes
    loses the entries and the acknowledgement together, so the leader never
    counts a replica that does not exist."""
    net = Net(["1", "2", "3"])
    net.elect("1")
    net.tick("1")
    net.stabilize()
    index, _ = net.core("1").propose(b"x")
    net.run("1")
    for m in net.take():
        if isinstance(m, AppendRequest) and m.to == "2":
            net.core("2").step(m)
    node = net.nodes["2"]
    assert node.begin()
    rd = node.pending
    assert rd is not None
    assert [e.data for e in rd.entries] == [b"x"]
    assert AppendResponse(2, "2", "1", index) in rd.messages
    net.crash("2")
    assert net.core("1").progress["2"].match < index
    assert net.core("1").log.committed < index

    net.restart("2")
    assert net.core("2").log.last_index() == index - 1
    net.tick("1")
    net.stabilize()
    net.tick("1")
    net.stabilize()
    assert net.nodes["2"].values == [b"x"]
    assert net.nodes["3"].values == [b"x"]


def test_figure_2_term_and_vote_survive_restarts() -> None:
    """Raft paper Figure 2 (currentTerm, votedFor are persistent) and 5.2 ("each
    server will vote for at most one candidate in a given term"): after a
    restart a server remembers its term and vote, refuses a second candidate
    of the same term, and its durable term never goes backwards."""
    net = Net(["1", "2", "3"], pre_vote=False, check_quorum=False)
    net.campaign_only("1", {"3"})  # 3 votes for 1 in term 2; 2 hears nothing
    assert net.core("1").role is Role.LEADER
    net.take()
    terms = [net.nodes["3"].disk.hard_state.term]
    net.crash("3")
    net.restart("3")
    assert (net.core("3").term, net.core("3").vote) == (2, "1")

    net.core("2").campaign()  # term 2: 3 must not vote twice in it
    net.stabilize()
    assert not net.sent(VoteResponse, "3", "2")[-1].granted
    assert net.core("2").role is not Role.LEADER

    for victim in ("3", "2", "3", "1", "3"):
        net.crash(victim)
        net.restart(victim)
        assert net.core(victim).term == net.nodes[victim].disk.hard_state.term
        net.tick("2", 2 * 10)
        net.tick("3", 2 * 10)
        net.stabilize()
        terms.append(net.nodes["3"].disk.hard_state.term)
    assert terms == sorted(terms)
    assert terms[-1] > 2


def test_thesis_10_2_1_leader_appends_leave_before_its_own_write() -> None:
    """Thesis 10.2.1: the leader may send its appends before writing them, so
    that followers write in parallel with it. That is safe because the leader
    counts itself towards a commit only for entries its driver reported
    durable: with the leader's write still pending, one follower's copy is not
    a majority of three, two followers' copies are."""
    net = Net(["1", "2", "3"])
    net.elect("1")
    net.tick("1")
    net.stabilize()
    leader = net.nodes["1"]
    index, _ = leader.core.propose(b"x")
    assert leader.begin()
    rd = leader.pending
    assert rd is not None
    assert [e.data for e in rd.entries] == [b"x"]
    early = [m for m in rd.early if isinstance(m, AppendRequest)]
    assert {m.to for m in early} == {"2", "3"}
    assert not any(isinstance(m, AppendRequest) for m in rd.messages)
    # The leader's write is still pending; follower 2 writes and answers.
    for m in early:
        if m.to == "2":
            net.deliver(m)
    for reply in net.take():
        if isinstance(reply, AppendResponse) and reply.to == "1":
            leader.core.step(reply)
    assert leader.core.log.committed < index  # leader (not durable) + 2 is not enough
    for m in early:
        if m.to == "3":
            net.deliver(m)
    for reply in net.take():
        if isinstance(reply, AppendResponse) and reply.to == "1":
            leader.core.step(reply)
    assert leader.core.log.committed == index  # two followers are a majority
    # A crash of the leader before its own write finishes loses nothing.
    net.crash("1")
    net.stabilize()
    net.expire("2", "3")
    net.core("2").campaign()
    net.stabilize()
    new = net.leader()
    assert new in ("2", "3")
    assert net.core(new).log.term(index) is not None
    assert any(e.data == b"x" for e in net.core(new).log.entries)


def test_no_early_messages_while_the_term_changes() -> None:
    """A server that wins an election in the same Ready that raises its term
    (a single voter with a non-voter) must not let its appends out before the
    term and vote are durable: a crash would let it lead the same term again."""
    net = Net(["1"], learners=["2"], pre_vote=False)
    core = net.core("1")
    core.campaign()
    assert core.role is Role.LEADER
    node = net.nodes["1"]
    assert node.begin()
    rd = node.pending
    assert rd is not None
    assert rd.hard_state is not None and rd.hard_state.term == core.term
    assert rd.early == []
    assert any(isinstance(m, AppendRequest) and m.to == "2" for m in rd.messages)


def test_a_commit_index_change_alone_needs_no_sync() -> None:
    """etcd's rule: term, vote and entries must be durable before messages
    leave; the commit index need not be (a restarted server learns it again
    from the leader). A follower told of a new commit has a Ready whose hard
    state differs only in commit: ``commit_only``, no sync needed. A term
    change is never commit-only."""
    net = Net(["1", "2", "3"])
    net.elect("1")
    net.stabilize()
    index, _ = net.core("1").propose(b"x")
    net.run("1")
    for m in net.take():
        net.deliver(m)  # the followers write and acknowledge
    for m in net.take():
        if isinstance(m, AppendResponse):
            net.core("1").step(m)
    assert net.core("1").log.committed == index
    net.run("1")
    assert not net.queue  # no message of its own for a new commit index...
    net.core("1").tick()  # ...the next tick (or append) carries it
    net.run("1")
    told = [m for m in net.take() if m.to == "2"]
    assert told
    follower = net.nodes["2"]
    for m in told:
        follower.core.step(m)
    assert follower.begin()
    rd = follower.pending
    assert rd is not None and rd.hard_state is not None
    assert rd.hard_state.commit == index and not rd.entries
    assert rd.commit_only and not rd.must_sync
    follower.finish()
    net.core("3").step(AppendRequest(9, "2", "3", 0, 0, (), 0))  # any higher term
    node3 = net.nodes["3"]
    assert node3.begin()
    assert node3.pending is not None and not node3.pending.commit_only
