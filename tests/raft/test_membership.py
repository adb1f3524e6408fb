"""Single-server membership changes (Raft thesis chapter 4)."""

from __future__ import annotations

import pytest

from tests.raftsim.net import Net
from uhaha.raft import (
    AppendRequest,
    ConfChange,
    ConfChangeError,
    ConfChangeOp,
    RaftError,
    Role,
    SnapshotChunk,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)

ET = 10


def _change(net: Net, leader: str, op: ConfChangeOp, nid: str) -> int:
    index, _ = net.core(leader).propose_conf_change(ConfChange(op, nid, f"addr-{nid}"))
    net.stabilize()
    net.tick(leader)  # a heartbeat spreads the commit index
    net.stabilize()
    assert net.core(leader).log.committed >= index
    return index


def _committed_after_proposal(net: Net, leader: str, data: bytes) -> bool:
    index, _ = net.core(leader).propose(data)
    net.stabilize()
    return net.core(leader).log.committed >= index


def test_thesis_4_2_1_nonvoter_receives_the_log_but_is_not_counted() -> None:
    """Thesis 4.2.1: a new server joins as a non-voting member; it receives the
    log (here from index 1: its log is empty) but is not counted for
    elections or commitment. 3 voters + 1 non-voter stay available with 2
    voters up, and not with 1 voter plus the non-voter."""
    net = Net(["1", "2", "3"])
    net.elect("1")
    net.propose("1", b"a")
    net.add_node("4")
    _change(net, "1", ConfChangeOp.ADD_NONVOTER, "4")
    assert net.nodes["4"].values == [b"a"]
    assert net.core("4").config.get("4") is not None
    assert net.core("1").config.voters() == {"1", "2", "3"}
    assert net.core("1").quorum() == 2

    net.crash("3")
    assert _committed_after_proposal(net, "1", b"b")
    net.crash("2")
    index, _ = net.core("1").propose(b"c")
    net.stabilize()
    assert net.core("4").log.term(index) is not None  # 4 stores and acknowledges it ...
    assert net.core("1").progress["4"].match >= index
    assert net.core("1").log.committed < index  # ... but does not make a quorum with 1
    net.restart("2")
    net.tick("1")
    net.stabilize()
    assert net.core("1").log.committed >= index


def test_thesis_4_2_1_nonvoter_never_campaigns() -> None:
    """Thesis 4.2.1: a non-voting member never starts an election, neither
    when its election timer fires nor when told to (TimeoutNow), and a leader
    refuses to transfer leadership to it."""
    net = Net(["1", "2", "3"], learners=["4"])
    net.elect("1")
    net.isolate("4")
    net.tick("4", 10 * ET)
    assert net.core("4").role is Role.FOLLOWER
    assert net.core("4").term == net.core("1").term
    net.heal()
    term = net.core("4").term
    net.core("4").step(TimeoutNow(term, "1", "4"))
    net.run("4")
    assert not net.queued(VoteRequest)
    with pytest.raises(RaftError):
        net.core("1").transfer_leadership("4")


def test_thesis_4_2_1_nonvoter_answers_votes_for_a_candidate_that_saw_its_promotion() -> None:
    """Thesis 4.1 (a server uses the newest configuration in its log, committed
    or not), and our deliberate choice, etcd's: a non-voter *answers* vote
    requests. Here 2 has the uncommitted entry promoting 4 and so needs 3 of
    the 4 voters {1, 2, 3, 4}; with 1 down it can only win with 4's vote,
    although 4 has not seen its own promotion yet."""
    net = Net(["1", "2", "3"], learners=["4"], pre_vote=False, check_quorum=False)
    net.elect("1")
    net.tick("1")
    net.stabilize()
    net.core("1").propose_conf_change(ConfChange(ConfChangeOp.PROMOTE, "4"))
    net.run("1")
    for m in net.take():
        if m.to == "2":
            net.deliver(m)
    net.take()
    assert net.core("2").config.voters() == {"1", "2", "3", "4"}
    assert net.core("4").config.voters() == {"1", "2", "3"}
    net.crash("1")

    net.campaign_only("2")
    assert [m.granted for m in net.sent(VoteResponse, "4", "2")] == [True]
    assert net.core("2").role is Role.LEADER


def test_thesis_4_2_1_nonvoter_vote_is_not_counted_by_who_sees_a_nonvoter() -> None:
    """The other half of the choice above: a candidate whose configuration
    lists 4 as a non-voter neither asks 4 for its vote nor counts it."""
    net = Net(["1", "2", "3"], learners=["4"], pre_vote=False, check_quorum=False)
    net.elect("1")
    net.crash("1")
    net.crash("2")
    net.core("3").campaign()
    net.run("3")
    assert sorted(m.to for m in net.queued(VoteRequest)) == ["1", "2"]
    net.take()
    term = net.core("3").term
    net.deliver(VoteResponse(term, "4", "3", True))
    assert net.core("3").role is Role.CANDIDATE


def test_thesis_4_1_promote_nonvoter_to_voter() -> None:
    """Thesis 4.1 and 4.2.1: once caught up, a non-voter is promoted; it then
    counts toward quorums and can campaign and win."""
    net = Net(["1", "2", "3"], learners=["4"])
    net.elect("1")
    net.propose("1", b"a")
    _change(net, "1", ConfChangeOp.PROMOTE, "4")
    assert net.core("4").config.voters() == {"1", "2", "3", "4"}
    assert net.core("1").quorum() == 3
    net.crash("2")
    net.crash("3")
    assert not _committed_after_proposal(net, "1", b"b")  # 2 of 4 voters

    net.restart("2")
    net.restart("3")
    net.crash("1")
    net.expire("2", "3")
    net.elect("4")  # with the votes of 2 and 3: a quorum of 3 out of 4
    assert {m.frm for m in net.sent(VoteResponse, to="4") if m.granted} == {"2", "3"}
    # 4's log holds b (it acknowledged it), so b survives and commits now.
    assert _committed_after_proposal(net, "4", b"c")
    net.tick("4")
    net.stabilize()
    assert net.nodes["4"].values == net.nodes["2"].values == [b"a", b"b", b"c"]


def test_thesis_4_1_demote_voter_to_nonvoter() -> None:
    """Thesis 4.1: a demoted voter keeps receiving the log but no longer
    counts: with voters {1, 2} and 3 demoted, losing 2 stops commitment even
    though 3 still acknowledges, and 3 never campaigns again."""
    net = Net(["1", "2", "3"])
    net.elect("1")
    _change(net, "1", ConfChangeOp.DEMOTE, "3")
    assert net.core("3").config.voters() == {"1", "2"}
    net.crash("3")
    assert _committed_after_proposal(net, "1", b"a")
    net.restart("3")
    net.crash("2")
    assert not _committed_after_proposal(net, "1", b"b")
    assert net.core("3").log.last_index() == net.core("1").log.last_index()

    net.isolate("3")
    net.tick("3", 10 * ET)
    assert net.core("3").role is Role.FOLLOWER


def test_thesis_4_1_remove_follower() -> None:
    """Thesis 4.1: after a follower is removed the leader stops replicating to
    it and the remaining voters form the quorums; the removed server, left
    behind with an old configuration, cannot disrupt the cluster (its
    pre-votes go unanswered, thesis 4.2.3)."""
    net = Net(["1", "2", "3"])
    net.elect("1")
    term = net.core("1").term
    _change(net, "1", ConfChangeOp.REMOVE, "3")
    assert "3" not in net.core("1").progress
    assert net.core("2").config.voters() == {"1", "2"}
    mark = len(net.delivered)
    net.crash("3")
    assert _committed_after_proposal(net, "1", b"a")
    net.restart("3")
    for _ in range(10 * ET):
        net.tick("3")
        net.tick("1")
        net.stabilize()
    assert not net.sent(AppendRequest, "1", "3", mark)
    assert net.leader() == "1"
    assert net.core("1").term == net.core("2").term == term
    assert net.nodes["3"].values == []


def test_thesis_4_2_2_removed_leader_steps_down_after_commit() -> None:
    """Thesis 4.2.2: a leader removing itself keeps managing the cluster until
    the change commits, without counting itself in majorities, then steps
    down; it hands over at once (TimeoutNow) to an up-to-date voter, which
    wins the next term."""
    net = Net(["1", "2", "3"])
    net.elect("1")
    term = net.core("1").term
    net.cut.update({("1", "3"), ("3", "1")})
    index, _ = net.core("1").propose_conf_change(ConfChange(ConfChangeOp.REMOVE, "1"))
    net.stabilize()
    assert net.core("2").log.term(index) == term
    assert net.core("1").role is Role.LEADER  # 1 and 2 hold it, but 1 does not count
    assert net.core("1").log.committed < index

    net.heal()
    net.tick("1")
    net.stabilize()
    assert net.core("1").role is Role.FOLLOWER
    assert len(net.sent(TimeoutNow, frm="1")) == 1
    leader = net.leader()
    assert leader in ("2", "3")
    assert net.core(leader).term == term + 1
    assert net.core(leader).config.voters() == {"2", "3"}
    net.crash("1")
    assert _committed_after_proposal(net, leader, b"after")


def test_thesis_4_1_one_membership_change_at_a_time() -> None:
    """Thesis 4.1: single-server changes are safe only one at a time: a
    second change is refused while the first is uncommitted, and nothing is
    appended for it."""
    net = Net(["1", "2", "3"])
    net.elect("1")
    net.add_node("4")
    net.add_node("5")
    net.core("1").propose_conf_change(ConfChange(ConfChangeOp.ADD_NONVOTER, "4", "addr-4"))
    last = net.core("1").log.last_index()
    with pytest.raises(ConfChangeError, match="in progress"):
        net.core("1").propose_conf_change(ConfChange(ConfChangeOp.ADD_NONVOTER, "5", "addr-5"))
    assert net.core("1").log.last_index() == last
    net.stabilize()
    _change(net, "1", ConfChangeOp.ADD_NONVOTER, "5")
    assert net.core("5").config.ids() == {"1", "2", "3", "4", "5"}


def test_thesis_4_1_no_change_before_leader_commits_in_its_term() -> None:
    """Thesis 4.1 and the single-server change bug (raft-dev, 2015): a new
    leader may not append a configuration entry until it has committed an
    entry of its own term (its no-op)."""
    net = Net(["1", "2", "3"], pre_vote=False)
    net.campaign_only("1")
    assert net.core("1").role is Role.LEADER
    last = net.core("1").log.last_index()
    with pytest.raises(ConfChangeError, match="its term"):
        net.core("1").propose_conf_change(ConfChange(ConfChangeOp.REMOVE, "3"))
    assert net.core("1").log.last_index() == last
    net.stabilize()
    _change(net, "1", ConfChangeOp.REMOVE, "3")


def test_thesis_4_2_1_new_server_catches_up_from_a_snapshot() -> None:
    """Thesis 4.2.1 and section 7: a new server whose needed entries are
    compacted away receives the snapshot (in chunks), then the log."""
    net = Net(["1", "2", "3"], snapshot_chunk_bytes=8)
    net.elect("1")
    for n in range(10):
        net.propose("1", b"w%d" % n)
    net.nodes["1"].take_snapshot(keep=0)
    net.add_node("4")
    _change(net, "1", ConfChangeOp.ADD_NONVOTER, "4")
    assert len(net.sent(SnapshotChunk, "1", "4")) > 1
    assert net.nodes["4"].values == [b"w%d" % n for n in range(10)]
    assert net.core("4").config.get("4") is not None


def test_thesis_4_2_2_removed_server_with_the_newest_log_finishes_its_removal() -> None:
    """Thesis 4.2.2: a server removed by an uncommitted configuration may still
    have to lead, because it may hold the newest log. Two voters {1, 2}: leader
    1 appends "remove 1", which never reaches 2, then loses 2 and steps down
    (check-quorum). Now 2 cannot win (1 refuses it: 1's log is newer), and if
    1 refused to campaign because its newest configuration excludes it, the
    cluster would be stuck for good (found by the simulator). 1 campaigns under
    the new configuration, needs only 2's vote, commits the change and hands over."""
    net = Net(["1", "2"])
    net.elect("1")
    net.core("1").propose_conf_change(ConfChange(ConfChangeOp.REMOVE, "1"))
    net.isolate("1")
    net.stabilize()
    assert not net.core("1").config.is_voter("1")
    for _ in range(3 * ET):
        net.tick("1")
    assert net.core("1").role is Role.FOLLOWER
    net.heal()
    for _ in range(10 * ET):
        for nid in ("1", "2"):
            net.tick(nid)
        net.stabilize()
        if net.core("2").role is Role.LEADER:
            break
    assert net.core("2").role is Role.LEADER
    assert net.core("2").config.voters() == {"2"}
    assert net.core("2").log.committed >= net.core("2").confs.index
