"""Replaying the same command log gives byte-identical data on every node.

tests/app/apps/determ.py stores, for every write, the replicated time and
random draws it saw. A 3-node cluster takes a few hundred writes; then every
node is stopped and restarted from its own data directory (replaying its
log), and the data each node dumps (``--openreads``: every node answers) must
be byte-identical across the nodes and to what it was before the restart.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.harness import ROOT, Proc, ProcCluster, wait_for

DETERM = [sys.executable, str(ROOT / "tests" / "app" / "apps" / "determ.py")]
FLAGS = ["--openreads", "--localtime"]
NTP_WARNING = "cannot reach internet time"


@pytest.fixture
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    c = ProcCluster(tmp_path_factory.mktemp("determ"), program=DETERM)
    try:
        yield c
    finally:
        print(c.logs())  # pytest shows it only when a test failed
        c.close()


def dump(p: Proc) -> str:
    value: str = p.call("DUMP")
    return value


def same_dump_everywhere(procs: list[Proc], expected: str) -> bool:
    return all(dump(p) == expected for p in procs)


@pytest.mark.parametrize("snapshots", [False, True], ids=["log", "snapshot+log"])
def test_replayed_log_gives_identical_data_on_every_node(
    cluster: ProcCluster, snapshots: bool
) -> None:
    """Restarted from the whole log, or from a snapshot and the log after it."""
    cluster.start(3, extra=[*FLAGS, "--snapshot-every", "10" if snapshots else "100000"])
    leader = cluster.wait_leader()
    replies: dict[str, dict[str, Any]] = {}
    with leader.client() as r:
        for start in range(0, 300, 30):  # pipelined: many writes per log entry
            pipe = r.pipeline(transaction=False)
            for i in range(start, start + 30):
                pipe.execute_command("PUT", f"k{i:03d}")
            for i, reply in enumerate(pipe.execute(), start):
                replies[f"k{i:03d}"] = json.loads(reply)
        for i in range(300, 320):  # and some one by one, each in an entry of its own
            replies[f"k{i:03d}"] = json.loads(r.execute_command("PUT", f"k{i:03d}"))

    before = dump(leader)
    data = json.loads(before)
    assert data == replies  # what each write answered is what every node stored
    entries = [data[k] for k in sorted(data)]
    stamps = [e["now"] for e in entries]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert all(e["again"] == e["now"] + 1 for e in entries)
    assert len({e["uuid"] for e in entries}) == len(entries)
    assert len({e["u64"] for e in entries}) == len(entries)
    assert abs(stamps[-1] - time.time_ns()) < 60 * 10**9  # today's time, not 1970

    procs = list(cluster.procs.values())
    wait_for(lambda: same_dump_everywhere(procs, before), what="followers to catch up")

    for p in procs:
        if snapshots:
            listed = functools.partial(p.call, "RAFT", "SNAPSHOT", "LIST")
            wait_for(listed, what=f"a snapshot on node {p.node_id}")
        else:
            assert p.call("RAFT", "SNAPSHOT", "LIST") == []
        assert p.stop() == 0
    for p in procs:
        p.start()
    # Each node replays its own log; until it has, it answers "log is still loading".
    wait_for(lambda: same_dump_everywhere(procs, before), timeout=30, what="replayed data")

    # The replayed machines also agree on time and random state: new writes
    # (after new ticks) still give the same data everywhere.
    leader = cluster.wait_leader()
    for i in range(5):
        leader.call("PUT", f"after{i}")
    after = dump(leader)
    assert json.loads(after).keys() == data.keys() | {f"after{i}" for i in range(5)}
    wait_for(lambda: same_dump_everywhere(procs, after), what="the same data after new writes")
    for p in procs:
        assert NTP_WARNING not in p.log()


def test_localtime_needs_no_internet_and_time_still_increases(cluster: ProcCluster) -> None:
    node = cluster.add("1", extra=["--localtime"])
    first = json.loads(wait_for(lambda: node.call("PUT", "a"), what="the first write"))
    assert abs(first["now"] - time.time_ns()) < 60 * 10**9
    # Let a tick or two go by: time moves on with the local clock.
    wait_for(lambda: node.call("MACHINE")["now"] > first["now"] + 50_000_000, what="ticks")
    second = json.loads(node.call("PUT", "b"))
    assert second["now"] > first["now"] + 50_000_000
    assert second["index"] > first["index"]
    log = node.log()
    assert "using the local clock (localtime)" in log
    assert NTP_WARNING not in log
