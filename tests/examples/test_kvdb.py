"""examples/kvdb.py on a real 3-node cluster: commands, expiry through the
replicated tick, MONITOR, and reads that see the writes before them."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator

import pytest
import redis

from tests.cluster.harness import ROOT, ProcCluster, running, wait_for

KVDB = [sys.executable, str(ROOT / "examples" / "kvdb.py")]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    workdir = tmp_path_factory.mktemp("kvdb")
    with running(workdir, program=KVDB) as c:
        yield c


def test_set_get_del_keys_dbsize(cluster: ProcCluster) -> None:
    leader = cluster.wait_leader()
    with leader.client() as r:
        assert r.execute_command("SET", "name", "Tom") in ("OK", True)
        assert r.execute_command("SET", "city", "Paris") in ("OK", True)
        assert r.execute_command("GET", "name") == "Tom"
        assert r.execute_command("GET", "missing") is None
        assert r.execute_command("KEYS", "*") == ["city", "name"]
        assert r.execute_command("DBSIZE") == 2
        assert r.execute_command("DEL", "name", "nope") == 1
        assert r.execute_command("DBSIZE") == 1
        with pytest.raises(redis.ResponseError, match="wrong number of arguments"):
            r.execute_command("GET")
        with pytest.raises(redis.ResponseError, match="syntax error"):
            r.execute_command("SET", "a", "b", "PX", "5")


def test_pipelined_reads_see_the_writes_before_them(cluster: ProcCluster) -> None:
    leader = cluster.wait_leader()
    with leader.client() as r:
        pipe = r.pipeline(transaction=False)
        for i in range(200):
            pipe.execute_command("SET", f"k{i}", str(i))
            pipe.execute_command("GET", f"k{i}")
        replies = pipe.execute()
    gets = replies[1::2]
    assert gets == [str(i) for i in range(200)]


def test_pipelined_reads_never_see_the_writes_after_them(cluster: ProcCluster) -> None:
    """One connection's commands take effect in its order, as in Redis: a GET
    followed by a SET of the same key in one pipeline sees the value before."""
    leader = cluster.wait_leader()
    with leader.client() as r:
        pipe = r.pipeline(transaction=False)
        pipe.execute_command("SET", "p", "0")
        for i in range(1, 301):
            pipe.execute_command("GET", "p")
            pipe.execute_command("SET", "p", str(i))
        replies = pipe.execute()
    gets = replies[1::2]
    assert gets == [str(i) for i in range(300)]
    assert leader.call("GET", "p") == "300"


def test_keys_expire_through_the_tick_on_every_node(cluster: ProcCluster) -> None:
    leader = cluster.wait_leader()
    leader.call("SET", "short", "lived", "EX", "1")
    assert leader.call("GET", "short") == "lived"
    wait_for(lambda: leader.call("GET", "short") is None, timeout=10, what="expiry")
    assert "short" not in leader.call("KEYS", "*")


def test_reads_on_a_follower_answer_moved(cluster: ProcCluster) -> None:
    leader = cluster.wait_leader()
    follower = next(p for p in cluster.live() if p is not leader)
    wait_for(lambda: follower.info()["leader"] == leader.address)
    with pytest.raises(redis.ResponseError):
        follower.call("GET", "city")


def test_monitor_streams_commands(cluster: ProcCluster) -> None:
    leader = cluster.wait_leader()
    with socket.create_connection((leader.host, leader.port), timeout=5) as mon:
        mon.sendall(b"MONITOR\r\n")
        buf = b""
        while b"\r\n" not in buf:
            buf += mon.recv(4096)
        assert buf.startswith(b"+OK\r\n")
        buf = buf[5:]
        leader.call("SET", "watched", 'say "hi"')
        while b"watched" not in buf:
            chunk = mon.recv(4096)
            assert chunk, "monitor connection closed"
            buf += chunk
    line = next(x for x in buf.split(b"\r\n") if b"watched" in x)
    assert line.startswith(b"+") and line.endswith(b'"SET" "watched" "say \\"hi\\""')
