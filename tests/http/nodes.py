"""Real kvdb nodes behind ``--auth``, started through the real command line.

The harness's own waits speak RESP without a password; these clusters need
the secret, so the waits here go through the HTTP API with it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.cluster.harness import ROOT, Proc, ProcCluster, wait_for

SECRET = "s3cret-for-tests"
KVDB = [sys.executable, str(ROOT / "examples" / "kvdb.py")]


@dataclass
class Cluster:
    procs: ProcCluster
    leader: Proc
    followers: list[Proc]


def client(p: Proc, *, auth: bool = True) -> httpx.Client:
    headers = {"Authorization": f"Bearer {SECRET}"} if auth else {}
    return httpx.Client(base_url=f"http://{p.address}", headers=headers, timeout=10)


def status(p: Proc) -> dict[str, Any] | None:
    """``GET /status`` of a node, or None while it cannot answer."""
    try:
        with client(p) as http:
            r = http.get("/status")
    except httpx.HTTPError:
        return None
    if r.status_code != 200:
        return None
    answer: dict[str, Any] = r.json()
    return answer


@contextmanager
def kvdb_cluster(workdir: Path, n: int = 3) -> Iterator[Cluster]:
    """An n-node kvdb cluster with ``--auth``, every node killed afterwards (by PID)."""
    c = ProcCluster(workdir, program=KVDB)
    flags = ["--localtime", "--auth", SECRET]
    try:
        first = c.add("1", extra=flags)
        for i in range(2, n + 1):
            c.add(str(i), join=first.address, extra=flags)

        def settled() -> tuple[Proc, list[Proc]] | None:
            """The leader and the followers once every node lists n members and
            knows the leader (so that followers redirect), else None."""
            states = {}
            for p in c.procs.values():
                facts = status(p)
                if facts is None or len(facts["members"]) != n or not facts["leader"]:
                    return None
                states[p.node_id] = facts["state"]
            leaders = [p for p in c.procs.values() if states[p.node_id] == "leader"]
            if len(leaders) != 1:
                return None
            return leaders[0], [p for p in c.procs.values() if p is not leaders[0]]

        leader, followers = wait_for(settled, timeout=30, what=f"{n} nodes and one leader")
        yield Cluster(c, leader, followers)
    finally:
        print(c.logs())
        c.close()
