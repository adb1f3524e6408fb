"""The README's "three servers on a local network" walkthrough, on real distinct IPs.

Three network namespaces on one bridge (see :mod:`tests.netns.netlab`) play the
three servers 10.213.7.1-3; every node is started through ``python -m uhaha``
inside its namespace, and every check is Debian's ``redis-cli`` run inside
another namespace, so each request crosses the bridge.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from tests.cluster.harness import Proc, wait_for

from .netlab import PORT, NetLab, require_tools

SECRET = "my-secret"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[NetLab]:
    try:
        require_tools()
    except RuntimeError as e:
        pytest.fail(str(e))
    with NetLab(tmp_path) as lab:
        yield lab
        # pytest shows a fixture's teardown output only when the test failed.
        print(lab.logs())


def addr(lab: NetLab, i: int) -> str:
    return f"{lab.ip_of(i)}:{PORT}"


def cli(lab: NetLab, i: int, *args: str, auth: str | None = None) -> str:
    """redis-cli to node ``i`` from the *next* host's namespace (1->2->3->1)."""
    try:
        return lab.redis_cli(lab.ns_of(i % 3 + 1), lab.ip_of(i), *args, auth=auth)
    except subprocess.TimeoutExpired:
        return "(redis-cli timed out)"


def parse_members(text: str) -> dict[str, str]:
    """``RAFT SERVER LIST`` as redis-cli prints it (one field a line) -> {id: address}."""
    lines = text.splitlines()
    members: dict[str, str] = {}
    current: dict[str, str] = {}
    for key, value in zip(lines[::2], lines[1::2], strict=False):
        if key == "id":
            if "id" in current:
                members[current["id"]] = current.get("address", "")
            current = {}
        current[key] = value
    if "id" in current:
        members[current["id"]] = current.get("address", "")
    return members


def logs_its_own_pid(p: Proc) -> bool:
    return p.popen is not None and p.log().startswith(f"{p.popen.pid}:")


def lists_members(lab: NetLab, i: int, members: dict[str, str], auth: str | None) -> bool:
    return parse_members(cli(lab, i, "RAFT", "SERVER", "LIST", auth=auth)) == members


def start_walkthrough(lab: NetLab, *, bind_any: bool, auth: str | None = None) -> list[Proc]:
    """Server 1 alone, then servers 2 and 3 joining it, as the README's steps do."""
    extra = ["--auth", auth] if auth else []

    def bind(i: int) -> dict[str, str]:
        if bind_any:
            return {"bind": f"0.0.0.0:{PORT}", "advertise": addr(lab, i)}
        return {"bind": addr(lab, i)}

    first = lab.start_node(1, **bind(1), extra=extra)
    wait_for(
        lambda: cli(lab, 1, "RAFT", "LEADER", auth=auth) == addr(lab, 1),
        timeout=20,
        what="node 1 to lead its new cluster",
    )
    others = [lab.start_node(i, **bind(i), extra=[*extra, "-j", addr(lab, 1)]) for i in (2, 3)]
    return [first, *others]


def check_walkthrough(lab: NetLab, procs: list[Proc], auth: str | None = None) -> None:
    everyone = {str(i): addr(lab, i) for i in (1, 2, 3)}
    # The node's log starts each line with its PID: the Popen PID is the node
    # itself (ip netns exec execs), so the harness kills the right process.
    for p in procs:
        wait_for(partial(logs_its_own_pid, p), what=f"node {p.node_id}'s first log line")

    # Every node knows all three members by their advertised addresses ...
    for i in (1, 2, 3):
        wait_for(
            partial(lists_members, lab, i, everyone, auth),
            timeout=30,
            what=f"node {i} to list the three advertised addresses",
        )

    # ... and names the same leader, one of them.
    def same_leader() -> str | None:
        seen = {cli(lab, i, "RAFT", "LEADER", auth=auth) for i in (1, 2, 3)}
        return seen.pop() if len(seen) == 1 and seen <= set(everyone.values()) else None

    leader: str = wait_for(same_leader, timeout=20, what="all nodes to report one leader")
    lead = next(i for i in (1, 2, 3) if addr(lab, i) == leader)

    assert cli(lab, lead, "BARRIER", auth=auth) == "OK"
    for i in (1, 2, 3):
        if i == lead:
            continue
        assert cli(lab, i, "BARRIER", auth=auth) == f"MOVED 0 {leader}"
        # redis-cli -c follows MOVED to the advertised address, across the bridge.
        assert cli(lab, i, "-c", "BARRIER", auth=auth) == "OK"


def test_three_servers_on_a_local_network(lab: NetLab) -> None:
    procs = start_walkthrough(lab, bind_any=False)
    check_walkthrough(lab, procs)
    for i, p in enumerate(procs, start=1):
        assert f"server started on {addr(lab, i)}" in p.log()


def test_bound_to_all_interfaces_peers_use_the_advertised_address(lab: NetLab) -> None:
    procs = start_walkthrough(lab, bind_any=True)
    check_walkthrough(lab, procs)
    for i, p in enumerate(procs, start=1):
        log = p.log()
        assert f"server started on 0.0.0.0:{PORT} (node {i}, advertised as {addr(lab, i)})" in log
        # Peers were dialled at the advertised addresses (never 0.0.0.0 or 127.0.0.1).
        for j in (1, 2, 3):
            if j != i:
                assert f"connected to peer {j} at {addr(lab, j)}" in log


def test_auth_password_locks_out_clients_without_the_secret(lab: NetLab) -> None:
    procs = start_walkthrough(lab, bind_any=False, auth=SECRET)
    check_walkthrough(lab, procs, auth=SECRET)
    for i in (1, 2, 3):
        for cmd in (["RAFT", "LEADER"], ["BARRIER"], ["RAFT", "SERVER", "LIST"]):
            out = cli(lab, i, *cmd)
            assert out.startswith("NOAUTH"), (i, cmd, out)
        wrong = cli(lab, i, "BARRIER", auth="not-the-secret")
        assert "WRONGPASS" in wrong and "NOAUTH" in wrong, wrong
        assert cli(lab, i, "PING", auth=SECRET) == "PONG"
