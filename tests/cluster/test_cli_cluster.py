"""Real clusters started through ``python -m uhaha``, driven by real clients
(Debian's redis-cli, redis-py), with nodes killed by SIGKILL."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import Proc, ProcCluster, holds_for, wait_for


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ProcCluster]:
    c = ProcCluster(tmp_path)
    try:
        yield c
    finally:
        print(c.logs())  # pytest shows it only when a test failed
        c.close()


def redis_cli(proc: Proc, *args: str) -> str:
    out = subprocess.run(
        ["redis-cli", "-h", proc.host, "-p", str(proc.port), *args],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return out.stdout.strip()


def applied(p: Proc) -> int:
    return int(p.info()["applied_index"])


def barriers(leader: Proc, n: int) -> int:
    for _ in range(n):
        assert leader.call("BARRIER") == "OK"
    return int(leader.info()["commit_index"])


def test_three_nodes_form_a_cluster_that_redis_cli_sees(cluster: ProcCluster) -> None:
    cluster.start(3)
    leader = cluster.wait_leader()
    for p in cluster.procs.values():
        wait_for(
            lambda p=p: redis_cli(p, "RAFT", "LEADER") == leader.address,  # type: ignore[misc]
            what="leader",
        )
        assert redis_cli(p, "PING") == "PONG"
    members = leader.call("RAFT", "SERVER", "LIST")
    assert len(members) == 3
    follower = next(p for p in cluster.procs.values() if p is not leader)
    assert redis_cli(follower, "BARRIER") == f"MOVED 0 {leader.address}"
    # redis-cli -c follows MOVED to the leader, as with Redis Cluster.
    assert redis_cli(follower, "-c", "BARRIER") == "OK"


def test_leader_killed_a_new_one_takes_over_and_keeps_committed_entries(
    cluster: ProcCluster,
) -> None:
    cluster.start(3)
    leader = cluster.wait_leader()
    committed = barriers(leader, 20)
    leader.kill()
    survivors = cluster.live()
    new = cluster.wait_leader(survivors, timeout=10)
    assert new is not leader
    assert int(new.info()["commit_index"]) >= committed
    assert new.call("BARRIER") == "OK"


def test_killed_follower_restarts_and_catches_up(cluster: ProcCluster) -> None:
    cluster.start(3)
    leader = cluster.wait_leader()
    follower = next(p for p in cluster.procs.values() if p is not leader)
    follower.kill()
    committed = barriers(leader, 30)
    follower.start()
    wait_for(lambda: int(follower.info()["applied_index"]) >= committed, what="follower caught up")
    assert "logs loaded: ready for commands" in follower.log()


def test_nodes_are_added_and_removed_at_runtime(cluster: ProcCluster) -> None:
    first = cluster.start(3)
    fourth = cluster.add("4", join=first.address)
    cluster.wait_members(4)
    leader = cluster.wait_leader()
    committed = barriers(leader, 5)
    wait_for(lambda: int(fourth.info()["applied_index"]) >= committed, what="node 4 applied")
    assert leader.call("RAFT", "SERVER", "REMOVE", "4") == "OK"
    cluster.wait_members(3)
    ids = {m["id"] for m in leader.call("RAFT", "SERVER", "LIST")}
    assert ids == {"1", "2", "3"}


def test_a_nonvoter_receives_the_log_and_never_votes(cluster: ProcCluster) -> None:
    first = cluster.start(3)
    learner = cluster.add("4", join=first.address, extra=["--nonvoter"])
    cluster.wait_members(4)
    leader = cluster.wait_leader()
    committed = barriers(leader, 5)
    wait_for(lambda: int(learner.info()["applied_index"]) >= committed, what="learner applied")
    assert learner.info()["voter"] == 0
    # Two voters gone: the remaining voter and the non-voter are not a quorum.
    voters = [p for p in cluster.procs.values() if p is not learner]
    others = [p for p in voters if p is not leader]
    leader.kill()
    others[0].kill()
    alive = [others[1], learner]
    # Watch for a few election timeouts (0.5-1 s each): nobody may win.
    holds_for(lambda: cluster.leader(alive) is None, seconds=3)
    assert learner.info()["state"] == "follower"


def test_five_nodes_tolerate_two_failures(cluster: ProcCluster) -> None:
    cluster.start(5)
    leader = cluster.wait_leader()
    committed = barriers(leader, 5)
    leader.kill()
    next(p for p in cluster.live()).kill()
    new = cluster.wait_leader(cluster.live(), timeout=15)
    assert new.call("BARRIER") == "OK"
    assert int(new.info()["commit_index"]) > committed


def test_full_restart_recovers_the_same_state(cluster: ProcCluster) -> None:
    cluster.start(3)
    leader = cluster.wait_leader()
    committed = barriers(leader, 25)
    for p in cluster.procs.values():
        assert p.stop() == 0  # SIGTERM: clean shutdown
    for p in cluster.procs.values():
        p.start()
    new = cluster.wait_leader(timeout=20)
    assert int(new.info()["commit_index"]) >= committed
    for p in cluster.procs.values():
        wait_for(lambda p=p: applied(p) >= committed, what="replayed")  # type: ignore[misc]
        assert len(p.call("RAFT", "SERVER", "LIST")) == 3
