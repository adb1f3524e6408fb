"""The built-in commands on a real 3-node cluster, over RESP and HTTP."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from .harness import Proc, ProcCluster, wait_for
from .test_cli_cluster import redis_cli


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    c = ProcCluster(tmp_path_factory.mktemp("builtins"))
    try:
        c.start(3)
        yield c
    finally:
        print(c.logs())  # pytest shows it only when a test failed
        c.close()


def leader_and_follower(c: ProcCluster) -> tuple[Proc, Proc]:
    leader = c.wait_leader()
    follower = next(p for p in c.live() if p is not leader)
    wait_for(lambda: follower.info()["leader"] == leader.address, what="follower knows leader")
    return leader, follower


def test_ping_echo_version_help(cluster: ProcCluster) -> None:
    p = cluster.procs["1"]
    assert redis_cli(p, "PING") == "PONG"
    assert redis_cli(p, "PING", "hi") == "hi"
    assert p.call("ECHO", "hello") == "hello"
    assert p.call("VERSION")
    help_lines = p.call("RAFT", "HELP")
    assert any(line.startswith("RAFT SERVER ADD") for line in help_lines)
    assert any(line.startswith("CLUSTER SLOTS") for line in p.call("CLUSTER", "HELP"))


def test_errors_are_uhahas(cluster: ProcCluster) -> None:
    p = cluster.procs["1"]
    with pytest.raises(redis.ResponseError, match="unknown command 'NOPE'"):
        p.call("NOPE")
    with pytest.raises(redis.ResponseError, match="wrong number of arguments"):
        p.call("ECHO")
    with pytest.raises(redis.ResponseError, match="syntax error"):
        p.call("RAFT", "WHAT")
    leader = cluster.wait_leader()
    for node_id, address, why in (
        ("9", "x", "invalid address 'x'"),
        ("9", "host:0", "invalid address"),
        ("9", "host:99999", "invalid address"),
        ("9", ":11009", "invalid address"),
        ("../9", "127.0.0.1:11009", "invalid node id"),
        ("a b", "127.0.0.1:11009", "invalid node id"),
        ("a:b", "127.0.0.1:11009", "invalid node id"),  # it could not start with that id
        ("9", "host:\u00b2", "invalid address"),
    ):
        with pytest.raises(redis.ResponseError, match=why):
            leader.call("RAFT", "SERVER", "ADD", node_id, address)
    assert len(leader.call("RAFT", "SERVER", "LIST")) == 3


def test_raft_info_patterns(cluster: ProcCluster) -> None:
    p = cluster.procs["2"]
    info = p.info()
    for key in (
        "id",
        "state",
        "term",
        "leader",
        "commit_index",
        "applied_index",
        "voter",
        "logs_behind",
        "logs_loaded_percent",
        "num_peers",
    ):
        assert key in info, key
    some = p.call("RAFT", "INFO", "*index", "term")
    keys = set(some) if isinstance(some, dict) else set(some[::2])
    assert keys == {
        "term",
        "first_index",
        "last_index",
        "commit_index",
        "applied_index",
        "snapshot_index",
    }


def test_cluster_commands_point_at_the_leader(cluster: ProcCluster) -> None:
    leader, follower = leader_and_follower(cluster)
    slots = follower.call("CLUSTER", "SLOTS")
    assert slots[0][0] == 0 and slots[0][1] == 16383
    assert f"{slots[0][2][0]}:{slots[0][2][1]}" == leader.address
    nodes = follower.call("CLUSTER", "NODES")
    text = nodes if isinstance(nodes, str) else str(nodes)
    assert f"{leader.address}@" in text and "master" in text
    info = follower.call("CLUSTER", "INFO")
    assert "cluster_state:ok" in str(info)


def test_follower_redirects_over_http(cluster: ProcCluster) -> None:
    leader, follower = leader_and_follower(cluster)
    r = httpx.post(f"http://{follower.address}/cmd/barrier")
    assert r.status_code == 307
    assert r.headers["location"] == f"http://{leader.address}/cmd/barrier"
    assert r.json()["error"] == f"MOVED 0 {leader.address}"
    # curl -L follows the redirect to the leader.
    out = subprocess.run(
        ["curl", "-s", "-L", "-X", "POST", f"http://{follower.address}/cmd/barrier"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    assert json.loads(out.stdout) == {"result": "OK"}
    status = httpx.get(f"http://{follower.address}/status").json()
    assert status["leader"] == leader.address and len(status["members"]) == 3
    assert httpx.get(f"http://{follower.address}/healthz").status_code == 200
    assert httpx.get(f"http://{follower.address}/readyz").status_code == 200


def test_transfer_promote_demote(cluster: ProcCluster) -> None:
    leader, follower = leader_and_follower(cluster)
    assert leader.call("RAFT", "TRANSFER", follower.node_id) == "OK"
    wait_for(lambda: follower.info()["state"] == "leader", what="transfer")
    new = follower
    other = next(p for p in cluster.live() if p not in (leader, follower))
    assert new.call("RAFT", "SERVER", "DEMOTE", other.node_id) == "OK"
    wait_for(lambda: other.info()["voter"] in (0, False), what="demoted")
    assert new.call("RAFT", "SERVER", "PROMOTE", other.node_id) == "OK"
    wait_for(lambda: other.info()["voter"] in (1, True), what="promoted")
    assert redis_cli(other, "RAFT", "SERVER", "PROMOTE", other.node_id) == f"MOVED 0 {new.address}"


def test_try_errors_flag(tmp_path: Path) -> None:
    c = ProcCluster(tmp_path)
    try:
        first = c.start(1, extra=["--try-errors"])
        second = c.add("2", join=first.address, extra=["--try-errors"])
        c.wait_members(2)
        leader = c.wait_leader()
        follower = second if leader is first else first
        wait_for(lambda: follower.info()["leader"] == leader.address)
        with pytest.raises(redis.ResponseError, match=f"TRY {leader.address}"):
            follower.call("BARRIER")
    finally:
        c.close()
