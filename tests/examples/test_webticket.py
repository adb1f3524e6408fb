"""examples/webticket.py on a real 3-node cluster: a custom Starlette route
(/next) and a custom line protocol (NEXT) share the node's one port with RESP
and the JSON API, and all of them hand out tickets from one sequence."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
import redis

from tests.cluster.harness import ROOT, Proc, ProcCluster, running, wait_for

WEBTICKET = [sys.executable, str(ROOT / "examples" / "webticket.py")]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    with running(
        tmp_path_factory.mktemp("webticket"), program=WEBTICKET, extra=["--localtime"]
    ) as c:
        yield c


def curl(*args: str) -> str:
    out = subprocess.run(
        ["curl", "-s", "--max-time", "10", *args],
        capture_output=True,
        text=True,
        timeout=15,
        check=True,
    )
    return out.stdout


def next_lines(p: Proc, payload: bytes, count: int) -> list[bytes]:
    """Send ``payload`` on a raw connection; the first ``count`` reply lines."""
    with socket.create_connection((p.host, p.port), timeout=5) as s:
        s.sendall(payload)
        buf = b""
        while buf.count(b"\n") < count:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    return buf.splitlines()[:count]


def follower_of(cluster: ProcCluster, leader: Proc) -> Proc:
    follower = next(p for p in cluster.live() if p is not leader)
    wait_for(lambda: follower.info()["leader"] == leader.address, what="the follower")
    return follower


def test_all_front_ends_share_one_ticket_sequence(cluster: ProcCluster) -> None:
    leader = cluster.wait_leader()
    base = f"http://{leader.address}"
    got: list[int] = []
    with leader.client() as r:
        got.append(r.execute_command("TICKET"))
    got.append(httpx.get(f"{base}/next").json()["ticket"])
    got.append(httpx.post(f"{base}/next").json()["ticket"])
    got.append(json.loads(curl(f"{base}/next"))["ticket"])
    got += [int(line) for line in next_lines(leader, b"NEXT\n", 1)]
    got += [int(line) for line in next_lines(leader, b"NEXT\nNEXT\r\nNEXT\n", 3)]
    got.append(httpx.post(f"{base}/cmd/ticket").json()["result"])
    with leader.client() as r:
        got.append(r.execute_command("TICKET"))
    assert got == list(range(got[0], got[0] + 10))


def test_the_line_protocol_rejects_other_lines(cluster: ProcCluster) -> None:
    leader = cluster.wait_leader()
    first, bad = next_lines(leader, b"NEXT\nNEXT please\nNEXT\n", 3)[:2]
    assert int(first) > 0
    assert bad == b"ERR expected NEXT"
    with socket.create_connection((leader.host, leader.port), timeout=5) as s:
        s.sendall(b"NEXTX\n")
        assert s.recv(100) == b"ERR expected NEXT\n"
        assert s.recv(100) == b""  # and the connection is closed
    # Commands that merely start like NEXT still reach RESP.
    with socket.create_connection((leader.host, leader.port), timeout=5) as s:
        s.sendall(b"NEXUS\r\n")
        assert s.recv(100) == b"-ERR unknown command 'NEXUS'\r\n"


def test_on_a_follower(cluster: ProcCluster) -> None:
    leader = cluster.wait_leader()
    follower = follower_of(cluster, leader)
    moved = f"MOVED 0 {leader.address}"
    # The route's handler answers the cluster's MOVED error as JSON, with a
    # 307 to the same route on the leader ...
    r = httpx.get(f"http://{follower.address}/next")
    assert r.status_code == 307
    assert r.json() == {"error": moved}
    assert r.headers["location"] == f"http://{leader.address}/next"
    # ... which curl -L and httpx follow to a ticket.
    via_curl = json.loads(curl("-L", f"http://{follower.address}/next"))["ticket"]
    via_httpx = httpx.get(f"http://{follower.address}/next", follow_redirects=True).json()
    assert via_httpx == {"ticket": via_curl + 1}
    # The line protocol answers the error line; RESP the MOVED error.
    assert next_lines(follower, b"NEXT\n", 1) == [moved.encode()]
    with follower.client() as r, pytest.raises(redis.exceptions.MovedError) as err:
        r.execute_command("TICKET")
    assert err.value.node_addr == (leader.host, leader.port)
