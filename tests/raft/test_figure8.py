"""Raft paper 5.4.2 and Figure 8, replayed message by message.

Servers S1..S5 are nodes "1".."5". Index 1 holds the bootstrap configuration
(term 1) on every server, as the term-1 entry does in the figure. The entry of
interest is index 2: term 2 (S1's) versus term 3 (S5's). In this
implementation a new leader's first entry is its no-op (section 8), so the
"client entries" of the figure are the leaders' no-ops; every append carries
a single entry (``max_msg_bytes=1``) so that we choose exactly who gets what.
"""

from __future__ import annotations

from tests.raftsim.net import Net
from uhaha.raft import AppendRequest, AppendResponse, Role, VoteResponse

SERVERS = ["1", "2", "3", "4", "5"]


def _terms(net: Net, nid: str) -> list[int]:
    """The terms of a server's log, index 1 first."""
    return [e.term for e in net.core(nid).log.entries]


def _figure_8_c() -> Net:
    net = Net(SERVERS, pre_vote=False, check_quorum=False, max_msg_bytes=1)

    # (a) S1 is leader of term 2 and replicates its entry at index 2 to S2 only.
    net.campaign_only("1", {"2", "3", "4", "5"})
    assert net.core("1").role is Role.LEADER
    assert net.core("1").term == 2
    net.pump(lambda m: m.to == "2" or m.frm == "2")
    assert _terms(net, "1") == _terms(net, "2") == [1, 2]
    assert _terms(net, "3") == _terms(net, "4") == _terms(net, "5") == [1]
    assert net.core("1").log.committed == 1
    net.crash("1")

    # (b) S5 is elected in term 3 with votes from S3, S4 and itself, and
    # accepts a different entry at index 2.
    net.campaign_only("5", {"3", "4"})
    assert net.core("5").role is Role.LEADER
    assert net.core("5").term == 3
    net.take()  # its appends are lost
    assert _terms(net, "5") == [1, 3]
    net.crash("5")

    # (c) S1 restarts and is elected in term 4 (its first try, in term 3, is
    # refused by S3 and S4 who voted for S5 there), then continues
    # replication: the term-2 entry reaches S3, and here S4 too, so that S1
    # *knows* that a majority (S1, S3, S4) stores it. Its own entry of term
    # 4 (index 3) reaches nobody yet.
    net.restart("1")
    net.campaign_only("1", {"2", "3", "4"})
    assert net.core("1").role is not Role.LEADER  # term 3 is lost
    assert net.core("1").term == 3
    net.campaign_only("1", {"2", "3", "4"})
    assert net.core("1").role is Role.LEADER
    assert net.core("1").term == 4
    for m in net.take():
        if isinstance(m, AppendRequest) and m.to in ("3", "4"):
            net.deliver(m)  # prev (2, term 2) is refused: they lack index 2
    net.pump(
        lambda m: (
            isinstance(m, AppendResponse)
            or (isinstance(m, AppendRequest) and [e.index for e in m.entries] == [2])
        )
    )
    assert _terms(net, "1") == [1, 2, 4]
    for nid in ("2", "3", "4"):
        assert _terms(net, nid) == [1, 2]
    assert _terms(net, "5") == [1, 3]
    progress = net.core("1").progress
    assert progress["3"].match == progress["4"].match == 2
    # Counting replicas would commit index 2 now; section 5.4.2 forbids it,
    # because index 2 is not of the leader's current term.
    assert net.core("1").log.committed == 1
    assert net.nodes["1"].applied == 1
    return net


def test_5_4_2_figure_8_c_to_d_old_term_entry_on_a_majority_is_not_committed() -> None:
    """Raft paper 5.4.2, Figure 8 (a)-(d): "a leader cannot immediately
    conclude that an entry from a previous term is committed once it is stored
    on a majority of servers". In (c) the term-2 entry is on a majority and S1
    knows it, yet S1 does not commit it. Rightly so: in (d) S1 crashes, S5 is
    elected in term 5 with votes from S2, S3 and S4, and overwrites index 2
    everywhere with its term-3 entry. Had S1 committed (and applied) index 2,
    the safety checker would see two different entries applied at index 2."""
    net = _figure_8_c()
    net.crash("1")
    net.restart("5")
    net.campaign_only("5", {"2", "3", "4"})
    assert net.core("5").role is not Role.LEADER  # term 4 is lost: they voted for S1
    assert net.core("5").term == 4
    net.campaign_only("5", {"2", "3", "4"})
    assert net.core("5").role is Role.LEADER
    assert net.core("5").term == 5
    granted = {m.frm for m in net.sent(VoteResponse, to="5") if m.term == 5 and m.granted}
    assert granted == {"2", "3", "4"}

    net.stabilize()  # (d): S5 replicates its log
    net.tell_commit("5")
    for nid in ("2", "3", "4", "5"):
        assert _terms(net, nid) == [1, 3, 5]
        assert net.core(nid).log.committed == 3
    net.restart("1")
    net.tick("5")
    net.stabilize()
    assert _terms(net, "1") == [1, 3, 5]  # S1's term-2 and term-4 entries are gone
    assert {net.nodes[n].applied for n in SERVERS} == {3}


def test_5_4_2_figure_8_c_to_e_current_term_entry_commits_older_ones() -> None:
    """Raft paper 5.4.2, Figure 8 (c)-(e): "if S1 replicates an entry from its
    current term on a majority of the servers before crashing, as in (e), then
    this entry is committed (S5 cannot win an election)", and with it every
    entry before it, including the term-2 entry at index 2 (committed
    indirectly, by the Log Matching Property)."""
    net = _figure_8_c()
    net.tick("1")  # heartbeat; the replies make S1 send index 3 again
    net.pump(lambda m: m.to in ("1", "2", "3"))  # ... and it reaches S2 and S3 only
    for nid in ("1", "2", "3"):
        assert _terms(net, nid) == [1, 2, 4]
    assert net.core("1").log.committed == 3
    assert net.nodes["1"].applied == 3
    net.crash("1")

    # (e): S5 cannot win: S2 and S3 hold a log that ends in term 4.
    net.restart("5")
    for _ in range(3):
        net.campaign_only("5", {"2", "3", "4"})
        assert net.core("5").role is not Role.LEADER
    refused = {m.frm for m in net.sent(VoteResponse, to="5") if not m.granted}
    assert {"2", "3"} <= refused

    net.elect("2")
    net.stabilize()
    net.tell_commit("2")
    for nid in ("2", "3", "4", "5"):
        assert _terms(net, nid)[:3] == [1, 2, 4]
        assert net.core(nid).log.committed >= 3
