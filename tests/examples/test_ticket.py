"""The seed README's walkthrough with examples/ticket.py, through real clients."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
import redis

from tests.cluster.harness import ROOT, ProcCluster, running, wait_for
from tests.cluster.test_cli_cluster import redis_cli

TICKET = [sys.executable, str(ROOT / "examples" / "ticket.py")]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    workdir = tmp_path_factory.mktemp("ticket")
    with running(workdir, program=TICKET) as c:
        yield c


def test_tickets_increase_through_redis_cli_redis_py_and_http(cluster: ProcCluster) -> None:
    leader = cluster.wait_leader()
    first = int(redis_cli(leader, "TICKET"))
    with leader.client() as r:
        second = r.execute_command("TICKET")
    third = httpx.post(f"http://{leader.address}/cmd/ticket").json()["result"]
    out = subprocess.run(
        ["curl", "-s", "-X", "POST", f"http://{leader.address}/cmd/ticket"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    fourth = json.loads(out.stdout)["result"]
    assert [first, second, third, fourth] == [first, first + 1, first + 2, first + 3]
    assert isinstance(second, int)  # a RESP integer, not a bulk string


def test_follower_redirects_and_redis_cli_c_follows(cluster: ProcCluster) -> None:
    leader = cluster.wait_leader()
    follower = next(p for p in cluster.live() if p is not leader)
    wait_for(lambda: follower.info()["leader"] == leader.address)
    assert redis_cli(follower, "TICKET") == f"MOVED 0 {leader.address}"
    assert int(redis_cli(follower, "-c", "TICKET")) > 0
    r = httpx.post(f"http://{follower.address}/cmd/ticket")
    assert r.status_code == 307 and r.headers["location"].startswith(f"http://{leader.address}/")


def test_pipelined_tickets_are_unique_and_ordered(cluster: ProcCluster) -> None:
    leader = cluster.wait_leader()
    with leader.client() as r:
        pipe = r.pipeline(transaction=False)
        for _ in range(500):
            pipe.execute_command("TICKET")
        got = pipe.execute()
    assert got == list(range(got[0], got[0] + 500))


def test_errors_do_not_break_the_node(cluster: ProcCluster) -> None:
    leader = cluster.wait_leader()
    with pytest.raises(redis.ResponseError, match="wrong number of arguments"):
        leader.call("TICKET", "extra")
    with pytest.raises(redis.ResponseError, match="unknown command 'NOPE'"):
        leader.call("NOPE")
    assert leader.call("TICKET") > 0
    for p in cluster.live():
        assert p.alive


def test_machine_shows_the_replicated_clock(cluster: ProcCluster) -> None:
    leader = cluster.wait_leader()
    wait_for(lambda: leader.call("MACHINE")["start"] > 0, what="the first tick")
    raw = leader.call("MACHINE")
    assert raw["now"] >= raw["start"] > 1_600_000_000 * 10**9
    human = leader.call("MACHINE", "HUMAN")
    assert human["now"].endswith("Z") and human["now"][:2] == "20"
    with pytest.raises(redis.ResponseError, match="syntax error"):
        leader.call("MACHINE", "LOUD")
