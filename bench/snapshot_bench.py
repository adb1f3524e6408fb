"""Snapshots of a large kvdb: size and time, the node's pauses while writing one,
and restart time with and without a snapshot.

    python bench/snapshot_bench.py [--keys 1000000]

A 3-node kvdb cluster on loopback (fsync on) is loaded with --keys distinct
keys through pipelined SETs. Then, while a client PINGs the leader every 5 ms,
RAFT SNAPSHOT NOW runs on the leader: the benchmark reports the snapshot's
size and time, the longest PING round trip and the leader's longest event
loop lag during it, and whether the leader or term changed. Finally a
follower is killed and restarted, from its snapshot plus the log tail, and
(in a second cluster that never snapshots) from the whole log.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.cluster.harness import ROOT, Proc, ProcCluster, wait_for

KVDB = [sys.executable, str(ROOT / "examples" / "kvdb.py")]


def load(leader: Proc, keys: int) -> float:
    started = time.monotonic()
    with leader.client() as r:
        for base in range(0, keys, 2000):
            pipe = r.pipeline(transaction=False)
            for i in range(base, min(base + 2000, keys)):
                pipe.execute_command("SET", f"key:{i:07d}", f"value-{i}")
            pipe.execute()
    return time.monotonic() - started


def restart_time(p: Proc) -> float:
    p.kill()
    started = time.monotonic()
    p.start()
    wait_for(lambda: p.info()["logs_loaded_percent"] == 100 and p.info()["leader"], 300)
    return time.monotonic() - started


def snapshot_under_pings(leader: Proc) -> dict[str, float | str | bool]:
    before = leader.info()
    stop = threading.Event()
    worst = [0.0]

    def pinger() -> None:
        with redis.Redis(host=leader.host, port=leader.port, socket_timeout=10) as r:
            while not stop.is_set():
                t = time.monotonic()
                r.ping()
                worst[0] = max(worst[0], time.monotonic() - t)
                time.sleep(0.005)

    thread = threading.Thread(target=pinger)
    thread.start()
    started = time.monotonic()
    snap_id = leader.call("RAFT", "SNAPSHOT", "NOW")
    took = time.monotonic() - started
    stop.set()
    thread.join()
    after = leader.info()
    size = next(s["size"] for s in leader.call("RAFT", "SNAPSHOT", "LIST") if s["id"] == snap_id)
    return {
        "snapshot_s": round(took, 2),
        "size_mb": round(size / 1e6, 1),
        "worst_ping_ms": round(worst[0] * 1000, 1),
        "loop_lag_max_ms_before": before["loop_lag_max_ms"],
        "loop_lag_max_ms_after": after["loop_lag_max_ms"],
        "leader_kept": after["state"] == "leader" and after["term"] == before["term"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=1_000_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="uhaha-snap-bench-") as tmp:
        c = ProcCluster(Path(tmp) / "snap", program=KVDB)
        try:
            c.start(3, extra=["--snapshot-every", "0"])
            leader = c.wait_leader()
            print(f"loading {args.keys} keys ...", flush=True)
            print(f"  loaded in {load(leader, args.keys):.1f} s")
            print("snapshot on the leader:", snapshot_under_pings(leader))
            follower = next(p for p in c.live() if p is not leader)
            follower.call("RAFT", "SNAPSHOT", "NOW")
            print(f"restart from snapshot + tail: {restart_time(follower):.2f} s")
            follower2 = next(p for p in c.live() if p not in (leader, follower))
            print(f"restart from the whole log:   {restart_time(follower2):.2f} s")
        finally:
            c.close()


if __name__ == "__main__":
    main()
