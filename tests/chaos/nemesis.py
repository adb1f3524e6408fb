"""The nemesis: a seeded schedule of faults, injected one at a time and healed.

:func:`plan` turns a seed into a list of :class:`Step` (which fault, the quiet
gap before it, how long it is held, and a seed for its choices). The plan is a
pure function of the seed, the fault kinds and the duration, so a test can
assert what it will inject; *which* node a step hits may depend on the
cluster at that moment ("the leader"), and is drawn from the step's own
random stream otherwise. :class:`Nemesis` runs the plan: start the fault,
hold it, end it (restart, resume, heal), record it in the timeline with its
start and end times (seconds since the run started, the clock of the
history), and go on.

Fault kinds (:data:`KINDS`):

=================  ==========================================================
``kill``           SIGKILL a random member; restart it after the hold
``kill-leader``    SIGKILL the leader; restart it after the hold
``pause``          SIGSTOP a random member for 0.5-3 s, then SIGCONT
``pause-leader``   SIGSTOP the leader for 1-4 s (longer than an election
                   timeout: 10 ticks of 50 ms), then SIGCONT; the clients read
                   at once
``partition-half`` a random minority cut from the majority
``partition-bridge`` two halves that cannot talk, and one node that talks to
                   both
``isolate-leader`` the leader cut from every peer (clients still reach it)
``oneway-leader``  the leader hears no peer, or no peer hears it
``slow``           every link of one node, or one pair's, limited to
                   16-128 kbit/s with 0-10 % loss
``restart``        SIGTERM (a clean shutdown) of a random member, then start
``restart-leader`` the same for the leader, with writes in flight
``membership``     ``RAFT SERVER REMOVE`` a random member (maybe the leader),
                   stop it, and join a fresh node with a new id through ``-j``
``crash-all``      SIGKILL every node at once, restart them all after the hold
=================  ==========================================================
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from .harness import ChaosCluster, ClusterError
from .netfault import SlowLink

__all__ = ["KINDS", "Fault", "Nemesis", "Step", "plan"]

KINDS = (
    "kill",
    "kill-leader",
    "pause",
    "pause-leader",
    "partition-half",
    "partition-bridge",
    "isolate-leader",
    "oneway-leader",
    "slow",
    "restart",
    "restart-leader",
    "membership",
    "crash-all",
)

_HOLD = {
    "kill": (0.5, 3.0),
    "kill-leader": (0.5, 3.0),
    "pause": (0.5, 3.0),
    "pause-leader": (1.0, 4.0),
    "partition-half": (1.0, 5.0),
    "partition-bridge": (1.0, 5.0),
    "isolate-leader": (1.0, 5.0),
    "oneway-leader": (1.0, 4.0),
    "slow": (2.0, 6.0),
    "restart": (0.2, 2.0),
    "restart-leader": (0.2, 2.0),
    "membership": (0.2, 1.0),
    "crash-all": (0.3, 2.0),
}
_COST = {
    "membership": 4.0,
    "crash-all": 4.0,
    "restart": 2.0,
    "restart-leader": 2.0,
    "kill": 1.0,
    "kill-leader": 1.0,
}
"""Rough extra seconds a step takes besides its gap and hold (start-up of nodes)."""


@dataclass(frozen=True)
class Step:
    kind: str
    gap: float
    """Quiet seconds before the fault starts."""
    hold: float
    """Seconds the fault is held before it is ended."""
    seed: int


def plan(seed: int, kinds: Sequence[str], duration: float) -> list[Step]:
    """The steps for ``duration`` seconds of chaos, drawn from ``kinds`` in turn:
    each kind once in a shuffled order, then again, so that a short run still
    injects every kind it was given."""
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown fault kinds {sorted(unknown)}: use {', '.join(KINDS)}")
    if not kinds:
        return []
    rng = random.Random(seed)
    steps: list[Step] = []
    t = 0.0
    order: list[str] = []
    while t < duration:
        if not order:
            order = list(kinds)
            rng.shuffle(order)
        kind = order.pop()
        lo, hi = _HOLD[kind]
        gap, hold = round(rng.uniform(0.5, 2.0), 3), round(rng.uniform(lo, hi), 3)
        step = Step(kind, gap, hold, rng.getrandbits(32))
        steps.append(step)
        t += step.gap + step.hold + _COST.get(kind, 0.3)
    return steps


@dataclass
class Fault:
    """One entry of the timeline."""

    kind: str
    start: float
    end: float | None = None
    targets: list[int] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)
    applied: bool = True
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Nemesis:
    """Runs a plan against a cluster, from its own thread (see :meth:`start`)."""

    def __init__(
        self,
        cluster: ChaosCluster,
        steps: Sequence[Step],
        clock: Callable[[], float],
        *,
        deadline: float,
    ) -> None:
        self.cluster = cluster
        self.net = cluster.net
        self.steps = list(steps)
        self.clock = clock
        self.deadline = deadline
        """Clock time after which no new fault starts."""
        self.timeline: list[Fault] = []
        self.errors: list[str] = []
        self.crashed = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-nemesis", daemon=True)

    # --- running -----------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError("the nemesis did not finish its last fault in time")

    def stop(self) -> None:
        self._stop.set()

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            for step in self.steps:
                if self._stop.wait(step.gap) or self.clock() >= self.deadline:
                    break
                self.run_step(step)
        except Exception as e:  # a harness bug: reported as a problem of the run
            self.crashed = f"the nemesis crashed: {type(e).__name__}: {e}"

    def run_step(self, step: Step) -> Fault:
        self.cluster.check_exits()
        rng = random.Random(step.seed)
        fault = Fault(step.kind, self.clock())
        self.timeline.append(fault)
        start = getattr(self, "_" + step.kind.replace("-", "_"))
        try:
            end: Callable[[], None] | None = start(fault, rng)
        except (ClusterError, redis.RedisError, OSError, RuntimeError) as e:
            fault.applied = False
            fault.note = f"not applied: {type(e).__name__}: {e}"
            end = None
        if end is not None:
            time.sleep(step.hold)  # pacing: the fault is held this long
            try:
                end()
            except (ClusterError, redis.RedisError, OSError, RuntimeError) as e:
                self.errors.append(f"{step.kind} at {fault.start:.1f}: ending it: {e}")
                fault.note = f"ending failed: {type(e).__name__}: {e}"
        fault.end = self.clock()
        return fault

    # --- choosing targets ------------------------------------------------------------

    def _leader(self, rng: random.Random) -> int:
        lead = self.cluster.claimed_leader()
        if lead is None:
            # No leader right now: hit anyone rather than wait.
            return rng.choice(self.cluster.reachable() or self.cluster.members)
        return lead

    def _any(self, rng: random.Random) -> int:
        return rng.choice(self.cluster.reachable() or self.cluster.members)

    # --- the faults: each starts one and returns how to end it -------------------------

    def _kill(self, fault: Fault, rng: random.Random) -> Callable[[], None]:
        return self._kill_node(fault, self._any(rng))

    def _kill_leader(self, fault: Fault, rng: random.Random) -> Callable[[], None]:
        return self._kill_node(fault, self._leader(rng))

    def _kill_node(self, fault: Fault, target: int) -> Callable[[], None]:
        fault.targets = [target]
        self.cluster.nodes[target].kill()
        return lambda: self.cluster.restart(target)

    def _pause(self, fault: Fault, rng: random.Random) -> Callable[[], None]:
        return self._pause_node(fault, self._any(rng))

    def _pause_leader(self, fault: Fault, rng: random.Random) -> Callable[[], None]:
        return self._pause_node(fault, self._leader(rng))

    def _pause_node(self, fault: Fault, target: int) -> Callable[[], None]:
        fault.targets = [target]
        node = self.cluster.nodes[target]
        node.pause()
        return node.resume

    def _partition(self, fault: Fault, groups: list[list[int]]) -> Callable[[], None]:
        fault.detail["groups"] = groups
        self.net.partition(groups)
        return self._apply_and_heal(fault)

    def _apply_and_heal(self, fault: Fault) -> Callable[[], None]:
        fault.detail.update(self.net.describe())
        self.net.apply()

        def heal() -> None:
            self.net.heal()
            self.net.apply()

        return heal

    def _partition_half(self, fault: Fault, rng: random.Random) -> Callable[[], None]:
        members = sorted(self.cluster.members)
        rng.shuffle(members)
        k = (len(members) - 1) // 2
        fault.targets = sorted(members[:k])
        return self._partition(fault, [sorted(members[:k]), sorted(members[k:])])

    def _partition_bridge(self, fault: Fault, rng: random.Random) -> Callable[[], None]:
        members = sorted(self.cluster.members)
        rng.shuffle(members)
        bridge, rest = members[0], members[1:]
        half = len(rest) // 2
        left, right = sorted(rest[:half]), sorted(rest[half:])
        fault.targets = [bridge]
        fault.detail["bridge"] = bridge
        for a in left:
            for b in right:
                self.net.cut(a, b)
        fault.detail["groups"] = [left, [bridge], right]
        return self._apply_and_heal(fault)

    def _isolate_leader(self, fault: Fault, rng: random.Random) -> Callable[[], None]:
        lead = self._leader(rng)
        fault.targets = [lead]
        others = [m for m in self.cluster.members if m != lead]
        return self._partition(fault, [[lead], sorted(others)])

    def _oneway_leader(self, fault: Fault, rng: random.Random) -> Callable[[], None]:
        lead = self._leader(rng)
        fault.targets = [lead]
        inbound = rng.random() < 0.5
        fault.detail["direction"] = "peers->leader dropped" if inbound else "leader->peers dropped"
        for m in self.cluster.members:
            if m != lead:
                if inbound:
                    self.net.block(m, lead)
                else:
                    self.net.block(lead, m)
        return self._apply_and_heal(fault)

    def _slow(self, fault: Fault, rng: random.Random) -> Callable[[], None]:
        members = sorted(self.cluster.members)
        link = SlowLink(rng.choice([16, 32, 64, 128]), rng.choice([0.0, 0.02, 0.1]))
        a = rng.choice(members)
        if rng.random() < 0.5:
            peers = [m for m in members if m != a]
            fault.detail["mode"] = "node"
        else:
            peers = [rng.choice([m for m in members if m != a])]
            fault.detail["mode"] = "pair"
        fault.targets = [a, *peers]
        for b in peers:
            self.net.set_slow(a, b, link)
            self.net.set_slow(b, a, link)
        return self._apply_and_heal(fault)

    def _restart(self, fault: Fault, rng: random.Random) -> Callable[[], None]:
        return self._restart_node(fault, self._any(rng))

    def _restart_leader(self, fault: Fault, rng: random.Random) -> Callable[[], None]:
        return self._restart_node(fault, self._leader(rng))

    def _restart_node(self, fault: Fault, target: int) -> Callable[[], None]:
        fault.targets = [target]
        code = self.cluster.nodes[target].terminate()
        fault.detail["exit_code"] = code
        if code not in (0, -signal.SIGTERM):
            self.errors.append(f"node {target} exited with {code} after SIGTERM")
        return lambda: self.cluster.restart(target)

    def _membership(self, fault: Fault, rng: random.Random) -> Callable[[], None]:
        victim = rng.choice(sorted(self.cluster.members))
        fault.targets = [victim]
        fault.detail["removed"] = victim
        self.cluster.remove(victim)

        def replace() -> None:
            # The removed node may still run until now (it must not disturb the
            # others); then it goes, and a fresh node joins through -j.
            self.cluster.nodes[victim].kill()
            node = self.cluster.add_fresh()
            fault.targets.append(node.node_id)
            fault.detail["added"] = node.node_id

        return replace

    def _crash_all(self, fault: Fault, rng: random.Random) -> Callable[[], None]:
        fault.targets = self.cluster.crash_all()

        def restart_all() -> None:
            for i in self.cluster.members:
                if not self.cluster.nodes[i].alive:
                    self.cluster.restart(i)

        return restart_all

    # --- the end of a run -----------------------------------------------------------------

    def heal_all(self) -> None:
        """Resume paused nodes, restart dead members, remove every network fault."""
        self.cluster.check_exits()
        self.net.heal()
        self.net.apply()
        for i in self.cluster.members:
            node = self.cluster.nodes[i]
            if node.paused:
                node.resume()
            if not node.alive:
                self.cluster.restart(i)
