"""Leader election: timeouts, the election restriction, pre-vote and check-quorum."""

from __future__ import annotations

import random

from tests.raftsim.net import Net, config_of
from uhaha.raft import (
    AppendResponse,
    Entry,
    EntryKind,
    HardState,
    RaftConfig,
    RaftCore,
    RaftState,
    Role,
    VoteRequest,
    VoteResponse,
)

ET = 10  # election_tick of every scenario


def _campaign_delays(seed: int, rounds: int = 6) -> list[int]:
    """Ticks between successive campaigns of a lone candidate (no pre-vote)."""
    core = RaftCore(RaftConfig("1", election_tick=ET, pre_vote=False), rng=random.Random(seed))
    core.bootstrap(config_of(["1", "2", "3"]))
    delays = []
    for _ in range(rounds):
        term, n = core.term, 0
        while core.term == term:
            core.tick()
            n += 1
        assert core.role is Role.CANDIDATE
        delays.append(n)
    return delays


def test_5_2_election_timeouts_are_randomized_by_the_injected_rng() -> None:
    """Raft paper 5.2: election timeouts are chosen at random from a fixed
    interval ([ET, 2*ET) ticks here) so that split votes are rare. The core
    draws them from the ``random.Random`` it is given, never from global
    randomness: equal seeds time out alike, different seeds spread."""
    assert _campaign_delays(7) == _campaign_delays(7)
    firsts = {_campaign_delays(seed, 1)[0] for seed in range(20)}
    assert len(firsts) >= 5, firsts
    every = [d for seed in range(20) for d in _campaign_delays(seed)]
    assert min(every) >= ET
    assert max(every) < 2 * ET
    assert len(set(_campaign_delays(3))) > 1  # redrawn at every new term


def test_5_4_1_candidate_with_stale_log_cannot_win() -> None:
    """Raft paper 5.4.1 (election restriction): a voter denies its vote to a
    candidate whose log is less up-to-date than its own, so a server missing
    committed entries never becomes leader."""
    net = Net(["1", "2", "3"], pre_vote=False, check_quorum=False)
    net.elect("1")
    net.isolate("3")
    net.propose("1", b"a")
    net.propose("1", b"b")
    net.tell_commit("1")
    assert net.nodes["2"].values == [b"a", b"b"]  # committed on 1 and 2
    net.crash("1")
    net.heal()

    net.core("3").campaign()  # 3 lacks a and b
    net.stabilize()
    replies = net.sent(VoteResponse, frm="2", to="3")
    assert replies
    assert not replies[-1].granted
    assert net.core("3").role is Role.CANDIDATE
    assert net.core("2").term == net.core("3").term  # 2 did move to the new term

    net.elect("2")  # the up-to-date server wins, with 3's vote
    assert net.sent(VoteResponse, frm="3", to="2")[-1].granted
    net.propose("2", b"c")
    net.tell_commit("2")
    assert net.nodes["3"].values == [b"a", b"b", b"c"]


def _voter_with_log(terms: list[int]) -> RaftCore:
    entries = [Entry(1, 1, EntryKind.CONFIG, config_of(["1", "2", "3"]).encode())]
    entries += [Entry(t, i) for i, t in enumerate(terms, start=2)]
    state = RaftState(HardState(term=entries[-1].term), None, entries)
    return RaftCore(RaftConfig("2", election_tick=ET), state, rng=random.Random(0))


def _vote(core: RaftCore, last_index: int, last_term: int) -> bool:
    core.step(VoteRequest(core.term + 1, "1", "2", last_index, last_term))
    rd = core.ready()
    (resp,) = [m for m in rd.messages if isinstance(m, VoteResponse)]
    return resp.granted


def test_5_4_1_up_to_date_compares_last_term_before_length() -> None:
    """Raft paper 5.4.1: "If the logs have last entries with different terms,
    then the log with the later term is more up-to-date. If the logs end with
    the same term, then whichever log is longer is more up-to-date." """
    # The voter's log ends with (index 3, term 2).
    assert not _vote(_voter_with_log([1, 2]), last_index=9, last_term=1)  # longer, older
    assert _vote(_voter_with_log([1, 2]), last_index=2, last_term=3)  # shorter, newer
    assert not _vote(_voter_with_log([1, 2]), last_index=2, last_term=2)  # same term, shorter
    assert _vote(_voter_with_log([1, 2]), last_index=3, last_term=2)  # identical


def test_5_2_at_most_one_leader_per_term() -> None:
    """Raft paper 5.2 (Election Safety, Figure 3): each server grants at most
    one vote per term, so at most one candidate can win a term. Several
    candidates run at once and every message is delivered in a random order."""
    for seed in range(40):
        rng = random.Random(seed)
        net = Net(["1", "2", "3", "4", "5"], seed=seed, pre_vote=False, check_quorum=False)
        candidates = rng.sample(sorted(net.nodes), rng.randint(2, 4))
        for c in candidates:
            net.core(c).campaign()
        for c in candidates:
            net.run(c)
        leaders: dict[int, set[str]] = {}
        while net.queue:
            m = net.queue[rng.randrange(len(net.queue))]
            net.queue.remove(m)
            net.deliver(m)
            for nid, node in net.nodes.items():
                if node.core.role is Role.LEADER:
                    leaders.setdefault(node.core.term, set()).add(nid)
        assert all(len(ids) == 1 for ids in leaders.values()), (seed, leaders)
        # Simultaneous candidates all moved to term 2; at most one of them won it.
        assert {net.core(c).term for c in candidates} == {2}
        assert set(leaders) <= {2}


def test_5_2_split_vote_elects_nobody_then_retries() -> None:
    """Raft paper 5.2: when every server votes for itself nobody wins the term
    (each candidate, refused by a majority, gives up); they time out again at
    different random times and one of them wins a later term."""
    net = Net(["1", "2", "3"], pre_vote=False, check_quorum=False)
    for nid in net.nodes:
        net.core(nid).campaign()
    net.stabilize()
    assert not [n for n in net.nodes if net.core(n).role is Role.LEADER]
    assert {net.core(n).term for n in net.nodes} == {2}
    assert {net.core(n).vote for n in net.nodes} == {"1", "2", "3"}  # each for itself
    for _ in range(2 * ET):
        for nid in sorted(net.nodes):
            net.tick(nid)
        net.stabilize()
    leader = net.leader()
    assert net.core(leader).term >= 3


def _isolated_for_ten_timeouts(pre_vote: bool) -> tuple[Net, int]:
    net = Net(["1", "2", "3"], pre_vote=pre_vote, check_quorum=True)
    net.elect("1")
    term = net.core("1").term
    net.delivered.clear()
    net.isolate("3")
    net.tick("3", 10 * ET)
    net.stabilize()
    net.heal()
    return net, term


def test_thesis_9_6_prevote_rejoining_node_does_not_disrupt() -> None:
    """Thesis 9.6 (pre-vote): a server cut off for 10 election timeouts keeps
    asking "could I win?" without moving its term, so when it rejoins nobody's
    term changes and the leader keeps leading."""
    net, term = _isolated_for_ten_timeouts(pre_vote=True)
    assert net.core("3").term == term
    assert net.core("3").role is Role.PRE_CANDIDATE

    net.tick("3")  # its timer may fire again right now: its pre-votes are refused
    net.tick("1")  # the leader's heartbeat brings it back
    net.stabilize()
    assert net.leader() == "1"
    assert {net.core(n).term for n in net.nodes} == {term}
    assert net.core("3").role is Role.FOLLOWER
    assert net.core("3").lead == "1"
    assert not [m for m in net.delivered if isinstance(m, VoteRequest) and not m.pre]
    net.propose("1", b"x")
    net.tell_commit("1")
    assert net.nodes["3"].values == [b"x"]


def test_thesis_9_6_without_prevote_rejoining_node_disrupts() -> None:
    """Thesis 9.6, the problem pre-vote solves: without it the isolated server
    bumps its term at every timeout; when it rejoins its higher term reaches
    the leader (here through the reply to a heartbeat) and deposes it."""
    net, term = _isolated_for_ten_timeouts(pre_vote=False)
    high = net.core("3").term
    assert high >= term + 5
    net.tick("1")  # heartbeat to 3, answered with 3's higher term
    net.stabilize()
    assert any(m.term == high for m in net.sent(AppendResponse, frm="3", to="1"))
    assert net.core("1").role is Role.FOLLOWER
    assert net.core("1").term == high


def _ticks_until_step_down(net: Net, nid: str, limit: int) -> int | None:
    for n in range(1, limit + 1):
        net.tick(nid)
        if net.core(nid).role is not Role.LEADER:
            return n
    return None


def test_thesis_6_2_check_quorum_isolated_leader_steps_down() -> None:
    """Thesis 6.2 (check-quorum): a leader that has not heard from a majority
    during an election timeout steps down (within one to two timeouts of
    losing contact), so a partitioned leader stops acting as leader. Its term
    does not change. Without check-quorum it would stay leader forever."""
    net = Net(["1", "2", "3"])
    net.elect("1")
    term = net.core("1").term
    net.isolate("1")
    n = _ticks_until_step_down(net, "1", 10 * ET)
    assert n is not None
    assert ET <= n <= 2 * ET
    assert net.core("1").role is Role.FOLLOWER
    assert net.core("1").term == term

    net = Net(["1", "2", "3"], check_quorum=False)
    net.elect("1")
    net.isolate("1")
    assert _ticks_until_step_down(net, "1", 10 * ET) is None


def test_thesis_6_2_check_quorum_leader_with_majority_stays() -> None:
    """Thesis 6.2: the check counts any reply from a voter, so a leader that
    reaches a majority (here 2 of 3) stays leader however long 3 is away."""
    net = Net(["1", "2", "3"])
    net.elect("1")
    net.isolate("3")
    net.cut.discard(("1", "2"))
    net.cut.discard(("2", "1"))
    for _ in range(5 * ET):
        net.tick("1")
        net.stabilize()
    assert net.core("1").role is Role.LEADER


def _vote_request_to_2(check_quorum: bool, expire: bool = False) -> tuple[Net, int]:
    net = Net(["1", "2", "3"], pre_vote=False, check_quorum=check_quorum)
    net.elect("1")
    net.delivered.clear()
    term = net.core("2").term
    if expire:
        net.expire("2")
    net.core("3").campaign()  # as if 3 had missed the leader's heartbeats
    net.run("3")
    net.pump(lambda m: (isinstance(m, VoteRequest) and m.to == "2") or m.frm == "2")
    return net, term


def test_thesis_4_2_3_leader_stickiness_ignores_vote_requests() -> None:
    """Thesis 4.2.3 (with check-quorum, 6.2): a server that heard from a
    current leader within the minimum election timeout ignores RequestVote:
    it neither moves to the candidate's term nor grants its vote. Once that
    time has passed (or without check-quorum) it votes as usual."""
    net, term = _vote_request_to_2(check_quorum=True)
    assert net.core("2").term == term
    assert net.core("2").lead == "1"
    assert not net.sent(VoteResponse, frm="2")

    net, term = _vote_request_to_2(check_quorum=True, expire=True)
    assert net.core("2").term == term + 1
    assert [m.granted for m in net.sent(VoteResponse, frm="2")] == [True]

    net, term = _vote_request_to_2(check_quorum=False)
    assert [m.granted for m in net.sent(VoteResponse, frm="2")] == [True]


def test_5_1_stale_candidate_learns_the_term_from_a_rejection() -> None:
    """Raft paper 5.1 and Figure 2: a server rejects a request with a stale term
    and replies with its current term, so the stale candidate catches up. If it
    ignored the request instead, a candidate whose only possible voters never
    write to it (a non-voter in their stale configuration) could stay behind
    forever (found by the simulator, seed 2607 at the time)."""
    net = Net(["1", "2", "3"], pre_vote=False)
    net.elect("1")
    net.isolate("2")
    # 3 moves far ahead in term while 2 is cut off.
    for _ in range(5):
        net.core("3").campaign()
        net.stabilize()
    ahead = net.core("3").term
    behind = net.core("2").term
    assert ahead > behind
    net.heal()
    net.core("2").campaign()
    net.run("2")
    msgs = net.take()
    to3 = [m for m in msgs if m.to == "3"]
    assert to3, "2 asked 3 for a vote"
    for m in to3:
        net.deliver(m)
    replies = [m for m in net.take() if m.to == "2"]
    assert any(isinstance(m, VoteResponse) and not m.granted and m.term == ahead for m in replies)
    for m in replies:
        net.deliver(m)
    assert net.core("2").term == ahead
