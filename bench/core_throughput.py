"""How many entries a 3-node in-process cluster of Raft cores commits and applies.

No I/O: messages go straight from one core's Ready to the others' step(), and
"persisting" is keeping a reference. It measures the core's own cost per
entry (proposal, replication, commitment, apply hand-off on all three nodes),
i.e. the ceiling the core puts on the real system.

    python bench/core_throughput.py [--entries 200000] [--burst 256] [--size 100]
"""

from __future__ import annotations

import argparse
import random
import time
from collections import deque

from uhaha.raft import Configuration, Member, Message, RaftConfig, RaftCore, Role


def make_cluster(n: int) -> dict[str, RaftCore]:
    conf = Configuration(tuple(Member(str(i), f"a{i}") for i in range(1, n + 1)))
    cores = {}
    for m in conf.members:
        core = RaftCore(RaftConfig(m.id), rng=random.Random(int(m.id)))
        core.bootstrap(conf)
        cores[m.id] = core
    return cores


def pump(cores: dict[str, RaftCore], applied: dict[str, int]) -> None:
    """Run Ready cycles and deliver messages until the cluster is quiet."""
    queue: deque[Message] = deque()
    busy = True
    while busy:
        busy = False
        for nid, core in cores.items():
            while core.has_ready():
                busy = True
                rd = core.ready()
                queue.extend(rd.messages)
                applied[nid] += len(rd.committed)
                core.advance(rd)
        while queue:
            busy = True
            m = queue.popleft()
            cores[m.to].step(m)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=200_000)
    ap.add_argument("--burst", type=int, default=256, help="proposals between two Ready cycles")
    ap.add_argument("--size", type=int, default=100, help="bytes per entry")
    ap.add_argument("--nodes", type=int, default=3)
    args = ap.parse_args()
    cores = make_cluster(args.nodes)
    applied = dict.fromkeys(cores, 0)
    leader = cores["1"]
    leader.campaign()
    pump(cores, applied)
    assert leader.role is Role.LEADER
    base = dict(applied)
    payload = b"x" * args.size
    proposed = 0
    started = time.perf_counter()
    while proposed < args.entries:
        for _ in range(args.burst):
            leader.propose(payload)
        proposed += args.burst
        pump(cores, applied)
    took = time.perf_counter() - started
    done = min(applied[n] - base[n] for n in cores)
    assert done >= proposed, (done, proposed)
    print(
        f"{args.nodes} nodes, burst {args.burst}, {args.size}-byte entries: "
        f"{proposed} entries committed and applied on every node in {took:.2f} s "
        f"= {proposed / took:,.0f} entries/s"
    )


if __name__ == "__main__":
    main()
