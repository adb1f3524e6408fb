"""A real 3-node cluster on loopback: committed BARRIERs per second, and failover time.

The cluster is started through the real command line (``python -m uhaha``,
fsync on, the default sqlite log) by :class:`tests.cluster.harness.ProcCluster`;
every process is owned by this script and killed by PID.

1. Throughput: Debian's ``redis-benchmark`` (redis-tools) against the leader,
   ``BARRIER`` being a no-op entry that goes through the Raft log and is
   answered once committed and applied. Scenarios: 50 clients, 50 clients
   pipelining 16 each, 1 client; ``--runs`` runs each, in rotation. Reported:
   requests/s and the latency columns ``redis-benchmark --csv`` prints, plus
   how many log entries the leader's commit index advanced by.
2. Failover: SIGKILL the leader, then time until the first ``BARRIER`` that a
   surviving node answers ``OK`` (every survivor is polled every few ms from
   its own thread, with a short client timeout). The killed node is restarted
   and caught up before the next round. (``bench/compare.py`` uses the same
   method with the examples' own writes, ``TICKET`` and ``SET``.)

    .venv/bin/python bench/cluster_bench.py [--runs 3] [--requests 20000] [--failovers 5]

Loads are bounded: a fixed request count per run, a timeout on every
``redis-benchmark`` and on every wait.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.cluster.harness import Proc, ProcCluster, wait_for  # noqa: E402

BENCH_TIMEOUT = 300.0
FAILOVER_DEADLINE = 30.0


@dataclass
class Scenario:
    name: str
    options: list[str]
    requests: int


@dataclass
class Run:
    rps: float
    avg_ms: float
    min_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    entries: int
    stderr: str


@dataclass
class Failover:
    seconds: float
    old_leader: str
    new_leader: str
    term_before: int
    term_after: int


@dataclass
class Results:
    runs: dict[str, list[Run]] = field(default_factory=dict)
    failovers: list[Failover] = field(default_factory=list)
    rss_mb: dict[str, float] = field(default_factory=dict)


def commit_index(p: Proc) -> int:
    return int(p.info()["commit_index"])  # the Go uhaha's RAFT INFO has this key too


def run_redis_benchmark_csv(cmd: list[str]) -> tuple[dict[str, float], str]:
    """Run a ``redis-benchmark ... --csv`` command of one test: its one result
    row (``rps``, ``avg_latency_ms``, ``p50_latency_ms``, ...) and its stderr."""
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=BENCH_TIMEOUT, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {out.returncode}: {out.stderr.strip()}")
    rows = list(csv.DictReader(line for line in out.stdout.splitlines() if line.strip()))
    if len(rows) != 1:
        raise RuntimeError(f"unexpected redis-benchmark output: {out.stdout!r}")
    return {k: float(v) for k, v in rows[0].items() if k != "test"}, out.stderr.strip()


def redis_benchmark(leader: Proc, scenario: Scenario) -> Run:
    cmd = ["redis-benchmark", "-h", leader.host, "-p", str(leader.port)]
    cmd += [*scenario.options, "-n", str(scenario.requests), "--csv", "BARRIER"]
    before = commit_index(leader)
    row, stderr = run_redis_benchmark_csv(cmd)
    after = commit_index(leader)
    return Run(
        rps=row["rps"],
        avg_ms=row["avg_latency_ms"],
        min_ms=row["min_latency_ms"],
        p50_ms=row["p50_latency_ms"],
        p95_ms=row["p95_latency_ms"],
        p99_ms=row["p99_latency_ms"],
        max_ms=row["max_latency_ms"],
        entries=after - before,
        stderr=stderr,
    )


def first_ok_write(
    survivors: list[Proc],
    stop: threading.Event,
    client_timeout: float,
    interval: float,
    command: tuple[str, ...] = ("BARRIER",),
) -> tuple[float, Proc] | None:
    """Poll every survivor (one thread each) until one answers ``command`` without an
    error (``BARRIER`` answers OK; a follower answers an error naming the leader)."""
    found: list[tuple[float, Proc]] = []
    lock = threading.Lock()

    def poll(p: Proc) -> None:
        with redis.Redis(
            host=p.host,
            port=p.port,
            socket_timeout=client_timeout,
            socket_connect_timeout=client_timeout,
            decode_responses=True,
        ) as client:
            while not stop.is_set():
                try:
                    if client.execute_command(*command) is not None:
                        with lock:
                            found.append((time.monotonic(), p))
                        stop.set()
                        return
                except (redis.RedisError, OSError):
                    pass
                stop.wait(interval)

    threads = [threading.Thread(target=poll, args=(p,), daemon=True) for p in survivors]
    for t in threads:
        t.start()
    stop.wait(FAILOVER_DEADLINE)
    stop.set()
    for t in threads:
        t.join(5)
    return min(found, key=lambda f: f[0]) if found else None


def failover_once(
    cluster: ProcCluster,
    client_timeout: float,
    interval: float,
    settle: float,
    command: tuple[str, ...] = ("BARRIER",),
) -> Failover:
    """SIGKILL the leader; time until a survivor first accepts ``command`` (a write)."""
    old = cluster.wait_leader(timeout=20)
    term_before = int(old.info()["term"])
    survivors = [p for p in cluster.live() if p is not old]
    stop = threading.Event()
    started = time.monotonic()
    old.kill()  # SIGKILL by PID, then reap
    hit = first_ok_write(survivors, stop, client_timeout, interval, command)
    if hit is None:
        what = " ".join(command)
        raise RuntimeError(f"no {what} succeeded within {FAILOVER_DEADLINE} s of the kill")
    at, new = hit
    failover = Failover(
        seconds=at - started,
        old_leader=old.node_id,
        new_leader=new.node_id,
        term_before=term_before,
        term_after=int(new.info()["term"]),
    )
    # Bring the killed node back and let it catch up before the next round.
    old.start()
    target = commit_index(new)

    def caught_up() -> bool:
        if not old.alive:
            tail = "\n".join(old.log().splitlines()[-15:])
            raise RuntimeError(f"restarted node {old.node_id} exited:\n{tail}")
        return commit_index(old) >= target

    wait_for(caught_up, timeout=30, what="restarted node caught up")
    cluster.wait_leader(timeout=20)
    time.sleep(settle)  # a fixed pause by request (--settle), not a wait for a condition
    return failover


def peak_rss_mb(p: Proc) -> float:
    assert p.popen is not None
    for line in Path(f"/proc/{p.popen.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def machine() -> str:
    u = os.uname()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"nproc {os.cpu_count()}; {u.sysname} {u.nodename} {u.release} {u.version} {u.machine};"
        f" Python {platform.python_version()}; load average {load}"
    )


def summarize(scenarios: list[Scenario], results: Results) -> str:
    lines: list[str] = []
    if results.runs:
        lines += [
            "| scenario | requests/run | req/s median (all runs) | avg | p50 | p95 | p99 | max"
            " (ms, median run) | log entries / request |",
            "|---|---:|---|---:|---:|---:|---:|---:|---:|",
        ]
    for s in scenarios:
        runs = results.runs.get(s.name, [])
        if not runs:
            continue
        ordered = sorted(runs, key=lambda r: r.rps)
        mid = ordered[len(ordered) // 2]
        all_rps = " / ".join(f"{r.rps:,.0f}" for r in runs)
        per_req = statistics.mean(r.entries / s.requests for r in runs)
        lines.append(
            f"| `BARRIER {' '.join(s.options)}` | {s.requests:,} | **{mid.rps:,.0f}** ({all_rps})"
            f" | {mid.avg_ms:.2f} | {mid.p50_ms:.2f} | {mid.p95_ms:.2f} | {mid.p99_ms:.2f}"
            f" | {mid.max_ms:.2f} | {per_req:.3f} |"
        )
    if results.failovers:
        secs = [f.seconds for f in results.failovers]
        lines.append("")
        lines.append(
            f"Failover (SIGKILL leader -> first OK BARRIER):"
            f" median {statistics.median(secs):.3f} s;"
            f" all: {', '.join(f'{s:.3f}' for s in secs)} s"
        )
        for f in results.failovers:
            lines.append(
                f"  killed node {f.old_leader} (term {f.term_before}) -> node {f.new_leader}"
                f" leads, term {f.term_after}: {f.seconds:.3f} s"
            )
    if results.rss_mb:
        rss = ", ".join(f"node {k}: {v:.1f} MB" for k, v in sorted(results.rss_mb.items()))
        lines.append("")
        lines.append(f"Peak RSS (VmHWM) after the throughput runs: {rss}")
    stderr = {r.stderr for runs in results.runs.values() for r in runs if r.stderr}
    if stderr:
        lines.append("")
        lines.append("redis-benchmark stderr: " + " | ".join(sorted(stderr)))
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--runs", type=int, default=3, help="runs of each throughput scenario")
    ap.add_argument("--requests", type=int, default=20000, help="requests per -c 50 run")
    ap.add_argument("--failovers", type=int, default=5, help="leader kills (0: skip)")
    ap.add_argument("--poll-ms", type=float, default=5.0, help="failover poll interval")
    ap.add_argument("--client-timeout", type=float, default=0.25, help="failover client timeout")
    ap.add_argument(
        "--settle",
        type=float,
        default=0.0,
        help="seconds to leave the cluster alone after a restarted node caught up",
    )
    ap.add_argument("--workdir", type=Path, default=None, help="data dirs and node logs")
    ap.add_argument(
        "--node-arg",
        action="append",
        default=[],
        help="extra argument for every node, e.g. --node-arg=--nosync (repeatable)",
    )
    args = ap.parse_args()

    scenarios = [
        Scenario("c50", ["-c", "50"], args.requests),
        Scenario("c50P16", ["-c", "50", "-P", "16"], args.requests * 5),
        Scenario("c1", ["-c", "1"], max(args.requests // 10, 100)),
    ]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="uhaha-cluster-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}")
    print(f"workdir (node logs): {workdir}")
    print(f"node command: {' '.join([*ProcCluster(workdir).program, *args.node_arg])}")
    cluster = ProcCluster(workdir)
    results = Results()
    ok = False
    try:
        cluster.start(3, extra=args.node_arg)
        leader = cluster.wait_leader()
        print(f"3 nodes up; leader node {leader.node_id} at {leader.address}")
        for run in range(args.runs):
            for s in scenarios:
                leader = cluster.wait_leader()
                r = redis_benchmark(leader, s)
                results.runs.setdefault(s.name, []).append(r)
                print(
                    f"run {run + 1} BARRIER {' '.join(s.options)} -n {s.requests}: "
                    f"{r.rps:,.0f} req/s avg {r.avg_ms} p50 {r.p50_ms} p95 {r.p95_ms} "
                    f"p99 {r.p99_ms} max {r.max_ms} ms; {r.entries} entries",
                    flush=True,
                )
                if cluster.wait_leader() is not leader:
                    print("  (the leader changed during this run)")
        for p in cluster.live():
            results.rss_mb[p.node_id] = peak_rss_mb(p)
        for i in range(args.failovers):
            f = failover_once(cluster, args.client_timeout, args.poll_ms / 1000, args.settle)
            results.failovers.append(f)
            print(
                f"failover {i + 1}: {f.seconds:.3f} s (node {f.old_leader} killed,"
                f" node {f.new_leader} leads, term {f.term_before} -> {f.term_after})",
                flush=True,
            )
        ok = True
    finally:
        cluster.close()
        if not ok:
            print(cluster.logs(), file=sys.stderr)
    print()
    print(summarize(scenarios, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
