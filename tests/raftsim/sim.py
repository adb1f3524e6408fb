"""Seeded fault simulation of whole Raft clusters in one process.

One seed fixes everything: the cluster size, the mix of faults (swarm
testing: each seed enables a different subset at different rates), every
timeout, latency, drop and crash. Virtual time is in milliseconds; a heap of
``(time, seq, event)`` drives servers that tick at their own clock rate.

Faults: message drops, duplicates, delays and reordering; partitions
(majority/minority, isolated leader, bridge, one-way); crashes that lose
whatever was not durable, including right after granting a vote (a targeted
failpoint) and restarts; pauses (a SIGSTOP: messages queue up meanwhile);
membership changes (demote, promote, remove, add a fresh server); leadership
transfers; snapshots with log compaction at random thresholds.

Checked: the safety properties (see checker.py) at every step; after the
faults stop, a leader is elected and a new proposal is applied by every live
member within a bounded time; the clients' history is linearizable.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from uhaha.raft import (
    ConfChange,
    ConfChangeOp,
    Entry,
    Message,
    NotLeader,
    RaftConfig,
    RaftError,
    Role,
)

from . import history
from .checker import SafetyChecker
from .net import config_of
from .node import SimNode

TICK_MS = 10.0


@dataclass
class Params:
    """The swarm: which faults a seed enables, and how hard."""

    nodes: int
    drop: float
    dup: float
    slow: float
    crash_every: float
    partition_every: float
    pause_every: float
    member_every: float
    transfer_every: float
    vote_crash: float
    snapshot_every: int
    snapshot_keep: int
    max_msg_bytes: int
    max_inflight: int
    chunk_bytes: int
    clients: int
    fault_ms: float
    heal_ms: float
    pre_vote: bool

    @classmethod
    def draw(cls, rng: random.Random) -> Params:
        def maybe(p: float, lo: float, hi: float) -> float:
            return rng.uniform(lo, hi) if rng.random() < p else 0.0

        return cls(
            nodes=rng.choice([3, 3, 5, 5, 7]),
            drop=maybe(0.5, 0.0, 0.15),
            dup=maybe(0.3, 0.0, 0.1),
            slow=maybe(0.3, 0.0, 0.2),
            crash_every=maybe(0.6, 150, 1500),
            partition_every=maybe(0.6, 150, 1500),
            pause_every=maybe(0.5, 200, 1500),
            member_every=maybe(0.4, 200, 1500),
            transfer_every=maybe(0.3, 200, 1500),
            vote_crash=maybe(0.3, 0.2, 0.8),
            snapshot_every=rng.choice([0, 5, 20, 100]),
            snapshot_keep=rng.choice([0, 0, 3, 50]),
            max_msg_bytes=rng.choice([64, 1 << 20]),
            max_inflight=rng.choice([1, 4, 256]),
            chunk_bytes=rng.choice([16, 100, 1 << 20]),
            clients=rng.choice([1, 3, 5]),
            fault_ms=rng.uniform(1000, 3000),
            heal_ms=6000,
            pre_vote=rng.random() < 0.9,
        )


@dataclass
class Result:
    seed: int
    params: Params
    ops: int = 0
    committed: int = 0
    elections: int = 0
    faults: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        faults = " ".join(f"{k}={v}" for k, v in sorted(self.faults.items()) if v)
        return (
            f"seed {self.seed}: {self.params.nodes} nodes, {self.ops} ops checked, "
            f"{self.committed} entries committed, {self.elections} terms; {faults or 'no faults'}"
        )


class SimFailure(AssertionError):
    pass


class Simulation:
    def __init__(self, seed: int, params: Params | None = None) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.p = params or Params.draw(self.rng)
        self.now = 0.0
        self.heap: list[tuple[float, int, Callable[[], None]]] = []
        self.seq = itertools.count()
        self.checker = SafetyChecker()
        self.nodes: dict[str, SimNode] = {}
        self.up: dict[str, bool] = {}
        self.incarnation: dict[str, int] = {}
        self.paused_until: dict[str, float] = {}
        self.rate: dict[str, float] = {}
        self.cut: set[tuple[str, str]] = set()
        self.faulty = True
        self.ops: list[history.Op] = []
        self.waiting_writes: dict[tuple[str, int], history.Op] = {}
        self.waiting_reads: dict[bytes, history.Op] = {}
        self.believed: dict[int, str] = {}
        self.next_id = itertools.count(self.p.nodes + 1)
        self.result = Result(seed, self.p)
        self.log: list[str] = []
        ids = [str(i) for i in range(1, self.p.nodes + 1)]
        conf = config_of(ids)
        for nid in ids:
            node = self._make(nid)
            node.core.bootstrap(conf)

    # --- plumbing -------------------------------------------------------------------

    def at(self, delay: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self.heap, (self.now + delay, next(self.seq), fn))

    def note(self, what: str) -> None:
        self.log.append(f"{self.now:9.2f} {what}")

    def count(self, fault: str) -> None:
        self.result.faults[fault] = self.result.faults.get(fault, 0) + 1

    def _make(self, nid: str) -> SimNode:
        cfg = RaftConfig(
            nid,
            election_tick=10,
            pre_vote=self.p.pre_vote,
            check_quorum=True,
            max_msg_bytes=self.p.max_msg_bytes,
            max_inflight=self.p.max_inflight,
            snapshot_chunk_bytes=self.p.chunk_bytes,
        )
        node = SimNode(nid, cfg, random.Random(self.rng.random()), self.checker)
        node.on_apply = self._applied
        self.nodes[nid] = node
        self.up[nid] = True
        self.incarnation[nid] = 0
        self.rate[nid] = self.rng.uniform(0.8, 1.2)
        self.at(self.rng.uniform(0, TICK_MS), lambda: self._tick(nid, 0))
        return node

    def live(self) -> list[str]:
        return [n for n in self.nodes if self.up[n]]

    def leader(self) -> str | None:
        best = None
        for n in self.live():
            core = self.nodes[n].core
            if core.role is Role.LEADER and (best is None or core.term > best[1]):
                best = (n, core.term)
        return best[0] if best else None

    # --- servers -----------------------------------------------------------------------

    def _tick(self, nid: str, inc: int) -> None:
        if not self.up[nid] or self.incarnation[nid] != inc:
            return
        if self.paused_until.get(nid, 0.0) <= self.now:
            self.nodes[nid].core.tick()
            self.kick(nid)
        self.at(TICK_MS / self.rate[nid], lambda: self._tick(nid, inc))

    def kick(self, nid: str) -> None:
        """Start a Ready if the server has one; it becomes durable a little later."""
        node = self.nodes[nid]
        if not self.up[nid] or self.paused_until.get(nid, 0.0) > self.now:
            return
        if node.core.role is Role.LEADER:
            self.checker.leader(node.core)
        if node.begin():
            assert node.pending is not None
            for m in node.pending.early:  # they leave before the Ready is durable
                self.send(m)
            inc = self.incarnation[nid]
            self.at(self.rng.uniform(0.05, 1.5), lambda: self._persisted(nid, inc))

    def _persisted(self, nid: str, inc: int) -> None:
        if not self.up[nid] or self.incarnation[nid] != inc:
            return
        node = self.nodes[nid]
        msgs = node.finish()
        voted = any(getattr(m, "granted", False) and not getattr(m, "pre", True) for m in msgs)
        for m in msgs:
            self.send(m)
        self._maybe_snapshot(node)
        self._check_reads(nid)
        if voted and self.faulty and self.rng.random() < self.p.vote_crash:
            # Failpoint: crash right after a vote left, come back 1 to 3 ticks
            # later. A vote that was not durable would let it vote again.
            self.count("vote-crash")
            self.crash(nid, self.rng.uniform(1, 3) * TICK_MS)
            return
        self.kick(nid)

    def _maybe_snapshot(self, node: SimNode) -> None:
        every = self.p.snapshot_every
        if not every:
            return
        base = node.disk.snapshot.index if node.disk.snapshot else 0
        if node.applied - base >= every:
            node.take_snapshot(self.p.snapshot_keep)

    def crash(self, nid: str, restart_after: float) -> None:
        self.note(f"crash {nid}")
        self.up[nid] = False
        self.incarnation[nid] += 1
        self.nodes[nid].pending = None
        self.at(restart_after, lambda: self.restart(nid))

    def restart(self, nid: str) -> None:
        if self.up[nid] or nid not in self.nodes:
            return
        self.note(f"restart {nid}")
        self.up[nid] = True
        inc = self.incarnation[nid]
        self.nodes[nid].restart()
        self.at(self.rng.uniform(0, TICK_MS), lambda: self._tick(nid, inc))

    # --- network ------------------------------------------------------------------------

    def send(self, m: Message) -> None:
        if (m.frm, m.to) in self.cut or m.to not in self.nodes:
            return
        if self.faulty and self.rng.random() < self.p.drop:
            return
        copies = 2 if self.faulty and self.rng.random() < self.p.dup else 1
        for _ in range(copies):
            delay = self.rng.uniform(0.2, 3.0)
            if self.faulty and self.rng.random() < self.p.slow:
                delay += self.rng.uniform(5, 60)  # a slow link reorders messages
            self.at(delay, lambda: self.deliver(m))

    def deliver(self, m: Message) -> None:
        to = m.to
        if not self.up.get(to) or (m.frm, to) in self.cut:
            return
        resume = self.paused_until.get(to, 0.0)
        if resume > self.now:
            self.at(resume - self.now + self.rng.uniform(0.0, 0.02), lambda: self.deliver(m))
            return
        self.nodes[to].core.step(m)
        self.kick(to)

    # --- clients -----------------------------------------------------------------------

    def _client(self, c: int) -> None:
        if self.now > self.p.fault_ms + self.p.heal_ms / 2:
            return
        # Like a real client, mostly stick to the server believed to lead
        # (which may be a deposed leader on the wrong side of a partition).
        roll = self.rng.random()
        nid = self.believed.get(c) if roll < 0.6 else self.leader() if roll < 0.8 else None
        nid = nid or self.rng.choice(list(self.nodes))
        self.believed[c] = nid
        if self.rng.random() < 0.6:
            self._write(c, nid)
        else:
            self._read(c, nid)

    def _next_op(self, c: int) -> None:
        self.at(self.rng.uniform(0.1, 8.0), lambda: self._client(c))

    def _write(self, c: int, nid: str) -> None:
        value = f"c{c}-{len(self.ops)}".encode()
        op = history.Op(c, "w", value, self.now, node=nid)
        self.ops.append(op)
        self._when_running(op, lambda: self._start_write(op, c, nid))

    def _when_running(self, op: history.Op, start: Callable[[], None]) -> None:
        """Start ``op`` now, or when a paused server resumes (its socket buffers
        the request meanwhile, and it races the peers' queued messages)."""
        nid = op.node
        if not self.up[nid]:
            self._finish(op, "fail")
            return
        resume = self.paused_until.get(nid, 0.0)
        if resume > self.now:
            self.at(resume - self.now + self.rng.uniform(0.0, 0.02), start)
        else:
            start()

    def _start_write(self, op: history.Op, c: int, nid: str) -> None:
        value = op.value
        if not self.up[nid]:
            self._finish(op, "fail")
            return
        try:
            op.index, op.term = self.nodes[nid].core.propose(value)
        except NotLeader as e:
            self.believed[c] = e.leader  # follow the redirect, as MOVED does
            self._finish(op, "fail")
            return
        except RaftError:
            self._finish(op, "fail")
            return
        op.incarnation = self.incarnation[nid]
        self.waiting_writes[(nid, op.index)] = op
        self.kick(nid)
        self.at(200 * TICK_MS, lambda: self._timeout(op))

    def _applied(self, node: SimNode, e: Entry) -> None:
        op = self.waiting_writes.pop((node.id, e.index), None)
        if op is None:
            return
        if op.incarnation != self.incarnation[node.id]:
            self._finish(op, "unknown")
        else:
            self._finish(op, "ok" if e.term == op.term else "fail")

    def _read(self, c: int, nid: str) -> None:
        op = history.Op(c, "r", b"", self.now, node=nid)
        self.ops.append(op)
        op.value = f"read-{len(self.ops)}".encode()  # the ctx until answered
        self._when_running(op, lambda: self._start_read(op, nid))

    def _start_read(self, op: history.Op, nid: str) -> None:
        if not self.up[nid]:
            self._finish(op, "fail")
            return
        if not self.nodes[nid].core.read_index(op.value):
            self._finish(op, "fail")
            return
        op.incarnation = self.incarnation[nid]
        self.waiting_reads[op.value] = op
        self.kick(nid)
        self.at(200 * TICK_MS, lambda: self._timeout(op))

    def _check_reads(self, nid: str) -> None:
        node = self.nodes[nid]
        for ctx, (observed, value) in node.reads_done.items():
            op = self.waiting_reads.pop(ctx, None)
            if op is not None and op.incarnation == self.incarnation[nid]:
                op.observed, op.value = observed, value
                self._finish(op, "ok")
        node.reads_done.clear()
        for ctx in node.reads_dropped:
            op = self.waiting_reads.pop(ctx, None)
            if op is not None:
                self._finish(op, "fail")
        node.reads_dropped.clear()

    def _timeout(self, op: history.Op) -> None:
        if op.status == "pending":
            if op.kind == "w":
                self._finish(op, "unknown")
                self.waiting_writes.pop((op.node, op.index), None)
            else:
                self._finish(op, "fail")  # a read that never answered has no effect
                self.waiting_reads.pop(op.value, None)

    def _finish(self, op: history.Op, status: str) -> None:
        if op.status != "pending":
            return
        op.status = status
        op.returned = self.now
        if status == "unknown":
            op.returned = history.INF
        self._next_op(op.client)

    # --- the nemesis -----------------------------------------------------------------------

    def _schedule(self, every: float, action: Callable[[], None]) -> None:
        if not every:
            return

        def fire() -> None:
            if not self.faulty:
                return
            action()
            self.at(self.rng.expovariate(1 / every), fire)

        self.at(self.rng.expovariate(1 / every), fire)

    def _crash_one(self) -> None:
        live = self.live()
        if not live:
            return
        lead = self.leader()
        nid = lead if lead and self.rng.random() < 0.5 else self.rng.choice(live)
        self.count("crash")
        self.crash(nid, self.rng.uniform(20, 1000))

    def _partition(self) -> None:
        ids = list(self.nodes)
        self.cut.clear()
        kind = self.rng.choice(["split", "isolate-leader", "bridge", "one-way"])
        self.count(f"partition-{kind}")
        self.note(f"partition {kind}")
        if kind == "split":
            self.rng.shuffle(ids)
            k = self.rng.randrange(1, len(ids))
            self._split(ids[:k], ids[k:])
        elif kind == "isolate-leader":
            lead = self.leader() or ids[0]
            self._split([lead], [n for n in ids if n != lead])
        elif kind == "bridge":
            self.rng.shuffle(ids)
            half = len(ids) // 2
            bridge, left, right = ids[0], ids[1 : half + 1], ids[half + 1 :]
            self._split(left, right)
            del bridge
        else:
            a, b = self.rng.sample(ids, 2)
            self.cut.add((a, b))
        heal_in = self.rng.uniform(50, 1500)
        self.at(heal_in, self.cut.clear)

    def _split(self, a: list[str], b: list[str]) -> None:
        for x in a:
            for y in b:
                self.cut.add((x, y))
                self.cut.add((y, x))

    def _pause(self) -> None:
        live = self.live()
        if not live:
            return
        lead = self.leader()
        nid = lead if lead and self.rng.random() < 0.5 else self.rng.choice(live)
        self.count("pause")
        self.note(f"pause {nid}")
        self.paused_until[nid] = self.now + self.rng.uniform(50, 600)
        self.at(self.paused_until[nid] - self.now + 0.01, lambda: self.kick(nid))

    def _membership(self) -> None:
        lead = self.leader()
        if lead is None:
            return
        core = self.nodes[lead].core
        conf = core.config
        voters = sorted(conf.voters())
        learners = sorted(conf.ids() - conf.voters())
        choice = self.rng.random()
        if choice < 0.25 and len(voters) > 2:
            change = ConfChange(ConfChangeOp.DEMOTE, self.rng.choice(voters))
        elif choice < 0.5 and learners:
            change = ConfChange(ConfChangeOp.PROMOTE, self.rng.choice(learners))
        elif choice < 0.75 and len(conf.ids()) > 2:
            change = ConfChange(ConfChangeOp.REMOVE, self.rng.choice(sorted(conf.ids())))
        elif len(conf.ids()) < 9:
            nid = str(next(self.next_id))
            op = ConfChangeOp.ADD_NONVOTER if self.rng.random() < 0.5 else ConfChangeOp.ADD_VOTER
            change = ConfChange(op, nid, f"addr-{nid}")
        else:
            return
        try:
            core.propose_conf_change(change)
        except RaftError:
            return
        self.count(f"member-{change.op.value}")
        self.note(f"{lead}: propose {change}")
        if change.op in (ConfChangeOp.ADD_VOTER, ConfChangeOp.ADD_NONVOTER):
            self._make(change.node_id)
        self.kick(lead)

    def _transfer(self) -> None:
        lead = self.leader()
        if lead is None:
            return
        voters = sorted(self.nodes[lead].core.config.voters() - {lead})
        if not voters:
            return
        try:
            self.nodes[lead].core.transfer_leadership(self.rng.choice(voters))
        except RaftError:
            return
        self.count("transfer")
        self.kick(lead)

    def _heal(self) -> None:
        self.note("heal")
        self.faulty = False
        self.cut.clear()
        self.paused_until.clear()
        for nid in self.nodes:
            if not self.up[nid]:
                self.restart(nid)
            self.kick(nid)

    # --- running ------------------------------------------------------------------------------

    def run(self) -> Result:
        p = self.p
        self._schedule(p.crash_every, self._crash_one)
        self._schedule(p.partition_every, self._partition)
        self._schedule(p.pause_every, self._pause)
        self._schedule(p.member_every, self._membership)
        self._schedule(p.transfer_every, self._transfer)
        for c in range(p.clients):
            self._next_op(c)
        self.at(p.fault_ms, self._heal)
        self._run_until(p.fault_ms)
        self._check_liveness()
        self._drain_clients()
        try:
            self.result.ops = history.check(self.ops, self.checker.committed)
        except history.LinearizabilityError as e:
            raise SimFailure(f"not linearizable: {e}") from e
        self.result.committed = len(self.checker.committed)
        self.result.elections = len(self.checker.leaders)
        return self.result

    def _run_until(self, t: float) -> None:
        while self.heap and self.heap[0][0] <= t:
            when, _, fn = heapq.heappop(self.heap)
            self.now = when
            fn()
        self.now = max(self.now, t)

    def _check_liveness(self) -> None:
        """After healing, some leader must commit a new entry that every live
        member applies, within a bounded time (Raft's liveness under a stable
        network and timing, paper section 5.6)."""
        deadline = self.p.fault_ms + self.p.heal_ms
        proposed: tuple[str, int, int] | None = None
        while self.now < deadline:
            self._run_until(self.now + 5 * TICK_MS)
            lead = self.leader()
            if lead is None:
                continue
            core = self.nodes[lead].core
            if proposed is None or proposed[0] != lead or core.term != proposed[2]:
                try:
                    index, term = core.propose(f"liveness-{self.now}".encode())
                except RaftError:
                    continue
                proposed = (lead, index, term)
                self.kick(lead)
                continue
            members = core.config.ids()
            entry = self.checker.committed.get(proposed[1])
            if (
                entry is not None
                and entry.term == proposed[2]
                and all(self.nodes[n].applied >= proposed[1] for n in members if n in self.nodes)
            ):
                return
        raise SimFailure(
            f"no progress {self.p.heal_ms:.0f} ms after healing: "
            + ", ".join(f"{n}={self.nodes[n].core!r}" for n in self.nodes)
        )

    def _drain_clients(self) -> None:
        self._run_until(self.now + 30 * TICK_MS)
        for op in self.ops:
            if op.status == "pending":
                op.status = "unknown"
                op.returned = history.INF


def run_seed(seed: int) -> Result:
    return Simulation(seed).run()
