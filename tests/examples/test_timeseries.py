"""examples/timeseries.py on a real 3-node cluster through redis-py: WRITE,
QUERY (all, and by a range of timestamps), STATS, RETAIN through the tick."""

from __future__ import annotations

import functools
import itertools
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.cluster.harness import ROOT, Proc, ProcCluster, running, wait_for

TIMESERIES = [sys.executable, str(ROOT / "examples" / "timeseries.py")]
NOW_SLACK = 60 * 10**9  # the replicated time is the local clock, give or take a minute


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    with running(
        tmp_path_factory.mktemp("timeseries"),
        program=TIMESERIES,
        extra=["--openreads", "--localtime"],
    ) as c:
        yield c


def machine_now(p: Proc) -> int:
    now: int = p.call("MACHINE")["now"]
    return now


def on_every_node(cluster: ProcCluster, check: Callable[[Proc], bool], what: str) -> None:
    """Wait until ``check(node)`` holds on every live node (they read with --openreads)."""
    for p in cluster.live():
        wait_for(functools.partial(check, p), timeout=10, what=f"{what} on node {p.node_id}")


def test_write_query_stats(cluster: ProcCluster) -> None:
    leader = cluster.wait_leader()
    with leader.client() as r:
        stamps = [r.execute_command("WRITE", "cpu", v) for v in ("0.5", "1.5", "2.25", "-4")]
        r.execute_command("WRITE", "mem", "100")
        assert all(isinstance(t, int) for t in stamps)
        assert stamps == sorted(stamps) and len(set(stamps)) == 4
        assert abs(stamps[0] - time.time_ns()) < NOW_SLACK
        points = r.execute_command("QUERY", "cpu")
        assert points == [
            [t, v] for t, v in zip(stamps, ["0.5", "1.5", "2.25", "-4.0"], strict=True)
        ]
        # A range of timestamps, inclusive at both ends, exact to the nanosecond.
        assert r.execute_command("QUERY", "cpu", stamps[1], stamps[2]) == points[1:3]
        assert r.execute_command("QUERY", "cpu", stamps[1], stamps[1]) == points[1:2]
        assert r.execute_command("QUERY", "cpu", stamps[1] + 1, stamps[2] - 1) == []
        assert r.execute_command("QUERY", "cpu", 0, "1e30") == points  # any number will do
        assert r.execute_command("QUERY", "cpu", stamps[3] + 1, stamps[3] + 10**12) == []
        assert r.execute_command("QUERY", "nothing") == []
        stats = r.execute_command("STATS", "cpu")
        assert stats == {"count": 4, "min": -4.0, "max": 2.25, "mean": 0.0625}
        assert r.execute_command("STATS", "mem") == {
            "count": 1,
            "min": 100.0,
            "max": 100.0,
            "mean": 100.0,
        }
        assert r.execute_command("STATS", "nothing") == {"count": 0}
    # Every node stores exactly the same series (read with --openreads).
    on_every_node(cluster, lambda p: p.call("QUERY", "cpu") == points, "the same series")


def test_timestamps_strictly_increase(cluster: ProcCluster) -> None:
    leader = cluster.wait_leader()
    with leader.client() as r:
        pipe = r.pipeline(transaction=False)
        for i in range(300):
            pipe.execute_command("WRITE", "burst", str(i))
        stamps = pipe.execute()  # batched: many points in one log entry
        stamps += [r.execute_command("WRITE", "burst", "300")]
        assert all(b > a for a, b in itertools.pairwise(stamps))
        points = r.execute_command("QUERY", "burst")
    assert [t for t, _ in points] == stamps
    assert [v for _, v in points] == [f"{i}.0" for i in range(301)]


def test_bad_numbers_are_errors(cluster: ProcCluster) -> None:
    leader = cluster.wait_leader()
    cases = [
        (["WRITE", "cpu", "abc"], "value is not a number"),
        (["WRITE", "cpu", "nan"], "value must be finite"),
        (["WRITE", "cpu", "inf"], "value must be finite"),
        (["WRITE", "cpu"], "wrong number of arguments"),
        (["QUERY", "cpu", "x", "1"], "start is not a number"),
        (["QUERY", "cpu", "0", "-inf"], "end must be finite"),
        (["QUERY", "cpu", "0"], "wrong number of arguments"),
        (["STATS"], "wrong number of arguments"),
        (["RETAIN", "x"], "seconds is not a number"),
        (["RETAIN", "-1"], "seconds must not be negative"),
        (["RETAIN"], "wrong number of arguments"),
    ]
    with leader.client() as r:
        before = r.execute_command("STATS", "cpu")
        for args, message in cases:
            with pytest.raises(redis.ResponseError, match=message):
                r.execute_command(*args)
        assert r.execute_command("STATS", "cpu") == before  # nothing was written


def test_retention_drops_old_points_through_the_tick(cluster: ProcCluster) -> None:
    leader = cluster.wait_leader()
    with leader.client() as r:
        old = [r.execute_command("WRITE", "temp", str(v)) for v in (20, 21)]
        assert r.execute_command("RETAIN", "2") == "OK"
        # A newer point, written once the replicated clock has moved on 1.2 s.
        wait_for(lambda: machine_now(leader) > old[-1] + 1_200_000_000, what="time to pass")
        new = r.execute_command("WRITE", "temp", "22")
        # The tick drops the old points, on every node, and keeps the new one.
        on_every_node(
            cluster, lambda p: [t for t, _ in p.call("QUERY", "temp")] == [new], "retention"
        )
        assert r.execute_command("STATS", "temp") == {
            "count": 1,
            "min": 22.0,
            "max": 22.0,
            "mean": 22.0,
        }
        assert r.execute_command("RETAIN", "0") == "OK"  # keep everything again


def test_first_points_of_a_new_cluster_have_todays_time(tmp_path: Path) -> None:
    """Writes that reach a brand-new cluster before its first tick must not be
    stamped at time 0 (1970), which retention would drop at once."""
    c = ProcCluster(tmp_path, program=TIMESERIES)
    try:
        node = c.add("1", extra=["--localtime"])
        first = wait_for(lambda: node.call("WRITE", "boot", "1"), what="the first write")
        assert abs(first - time.time_ns()) < NOW_SLACK
        with node.client() as r:
            assert r.execute_command("RETAIN", "3600") == "OK"
            wait_for(lambda: machine_now(node) > first + 300_000_000, what="a few ticks")
            assert [t for t, _ in r.execute_command("QUERY", "boot")] == [first]
    finally:
        print(c.logs())
        c.close()
