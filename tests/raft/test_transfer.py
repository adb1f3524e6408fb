"""Leadership transfer (Raft thesis section 3.10)."""

from __future__ import annotations

import pytest

from tests.raftsim.net import Net
from uhaha.raft import (
    AppendResponse,
    ConfChange,
    ConfChangeOp,
    ProposalDropped,
    Role,
    TimeoutNow,
    VoteRequest,
)

ET = 10


def test_thesis_3_10_target_catches_up_then_wins_at_once() -> None:
    """Thesis 3.10: the leader first brings the target's log up to date, only
    then sends it TimeoutNow; the target starts an election at once (no
    pre-vote, no waiting for a timeout) and the voters, although they heard
    from the leader recently, grant their votes (the request is marked as a
    transfer). Proposals are refused while the transfer is under way."""
    net = Net(["1", "2", "3"])
    net.elect("1")
    term = net.core("1").term
    net.isolate("3")
    for n in range(5):
        net.propose("1", b"t%d" % n)
    net.heal()
    last = net.core("1").log.last_index()
    assert net.core("3").log.last_index() < last

    mark = len(net.delivered)
    net.core("1").transfer_leadership("3")
    with pytest.raises(ProposalDropped):
        net.core("1").propose(b"refused")
    with pytest.raises(ProposalDropped):
        net.core("1").propose_conf_change(ConfChange(ConfChangeOp.REMOVE, "2"))
    net.run("1")
    assert not net.queued(TimeoutNow)  # 3 is behind: no TimeoutNow yet
    net.stabilize()

    log = net.delivered[mark:]
    (timeout_now,) = net.sent(TimeoutNow, "1", "3", mark)
    caught_up = [
        i
        for i, m in enumerate(log)
        if isinstance(m, AppendResponse) and m.frm == "3" and not m.reject and m.index == last
    ]
    assert caught_up
    assert caught_up[0] < log.index(timeout_now)
    assert net.leader() == "3"
    assert net.core("3").term == term + 1
    requests = net.sent(VoteRequest, "3", since=mark)
    assert requests
    assert all(m.transfer and not m.pre for m in requests)
    net.propose("3", b"after")
    net.tell_commit("3")
    assert net.nodes["1"].values == [*(b"t%d" % n for n in range(5)), b"after"]


def test_thesis_3_10_transfer_to_up_to_date_target_is_immediate() -> None:
    """Thesis 3.10: if the target's log already matches, TimeoutNow goes out
    in the very next Ready."""
    net = Net(["1", "2", "3"])
    net.elect("1")
    net.tick("1")
    net.stabilize()
    net.core("1").transfer_leadership("2")
    net.run("1")
    assert [m.to for m in net.queued(TimeoutNow)] == ["2"]
    net.stabilize()
    assert net.leader() == "2"


def test_thesis_3_10_transfer_to_unresponsive_target_is_abandoned() -> None:
    """Thesis 3.10: "If the transfer does not complete within an election
    timeout, the leader aborts the transfer and resumes accepting client
    requests." The leader stays leader, in the same term."""
    net = Net(["1", "2", "3"])
    net.elect("1")
    term = net.core("1").term
    net.crash("3")
    net.core("1").transfer_leadership("3")
    for _ in range(ET - 1):
        net.tick("1")
        net.stabilize()
    with pytest.raises(ProposalDropped):
        net.core("1").propose(b"too early")
    net.tick("1")
    net.stabilize()
    net.propose("1", b"resumed")
    net.tell_commit("1")
    assert net.core("1").role is Role.LEADER
    assert net.core("1").term == term
    assert net.nodes["2"].values == [b"resumed"]
