"""A hand-driven network of simulated servers for scripted Raft scenarios.

Nothing happens unless a test says so: ``tick`` advances one server's clock,
``stabilize`` delivers every queued message (in order) and runs every Ready
until the cluster is quiet. Links can be cut one way or both; servers can
crash (losing everything not yet durable) and restart from their disk.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable
from typing import TypeVar

from uhaha.raft import (
    Configuration,
    Member,
    Message,
    RaftConfig,
    RaftCore,
    Role,
    VoteRequest,
    VoteResponse,
)

from .checker import SafetyChecker
from .node import Disk, SimNode


def config_of(voters: list[str], learners: list[str] = ()) -> Configuration:  # type: ignore[assignment]
    members = [Member(v, f"addr-{v}", True) for v in voters]
    members += [Member(n, f"addr-{n}", False) for n in learners]
    return Configuration(tuple(sorted(members, key=lambda m: m.id)))


class Net:
    def __init__(
        self,
        voters: list[str],
        *,
        learners: list[str] | None = None,
        seed: int = 0,
        election_tick: int = 10,
        pre_vote: bool = True,
        check_quorum: bool = True,
        max_msg_bytes: int = 1 << 20,
        max_inflight: int = 256,
        snapshot_chunk_bytes: int = 1 << 20,
        bootstrap: bool = True,
    ) -> None:
        self.rng = random.Random(seed)
        self.checker = SafetyChecker()
        self.queue: deque[Message] = deque()
        self.cut: set[tuple[str, str]] = set()
        self.down: set[str] = set()
        self.delivered: list[Message] = []
        self.settings = dict(
            election_tick=election_tick,
            pre_vote=pre_vote,
            check_quorum=check_quorum,
            max_msg_bytes=max_msg_bytes,
            max_inflight=max_inflight,
            snapshot_chunk_bytes=snapshot_chunk_bytes,
        )
        self.nodes: dict[str, SimNode] = {}
        conf = config_of(voters, learners or [])
        for nid in conf.ids():
            node = self.add_node(nid)
            if bootstrap:
                node.core.bootstrap(conf)
        self.stabilize()

    def add_node(self, nid: str, disk: Disk | None = None) -> SimNode:
        cfg = RaftConfig(nid, **self.settings)  # type: ignore[arg-type]
        node = SimNode(nid, cfg, random.Random(self.rng.random()), self.checker, disk)
        self.nodes[nid] = node
        return node

    def core(self, nid: str) -> RaftCore:
        return self.nodes[nid].core

    # --- faults -----------------------------------------------------------------

    def isolate(self, nid: str) -> None:
        for other in self.nodes:
            if other != nid:
                self.cut.add((nid, other))
                self.cut.add((other, nid))

    def partition(self, *groups: list[str]) -> None:
        """Cut every link between servers of different groups."""
        for i, a in enumerate(groups):
            for b in groups[i + 1 :]:
                for x in a:
                    for y in b:
                        self.cut.add((x, y))
                        self.cut.add((y, x))

    def heal(self) -> None:
        self.cut.clear()

    def crash(self, nid: str) -> None:
        """Stop a server; whatever its outstanding Ready held is lost."""
        self.down.add(nid)
        self.nodes[nid].pending = None

    def restart(self, nid: str) -> None:
        self.down.discard(nid)
        self.nodes[nid].restart()

    # --- driving -------------------------------------------------------------------

    def tick(self, nid: str, n: int = 1) -> None:
        for _ in range(n):
            self.core(nid).tick()
        self.run(nid)

    def campaign(self, nid: str) -> None:
        self.core(nid).campaign()
        self.stabilize()

    def elect(self, nid: str) -> None:
        """Make ``nid`` leader by letting its election timer fire."""
        core = self.core(nid)
        for _ in range(3 * core.cfg.election_tick):
            if core.role is Role.LEADER:
                return
            core.tick()
            self.stabilize()
        assert core.role is Role.LEADER, f"{nid} did not become leader: {core}"

    def run(self, nid: str) -> None:
        """Run ``nid``'s Ready cycles until it has nothing more to do."""
        if nid in self.down:
            return
        node = self.nodes[nid]
        while node.begin():
            assert node.pending is not None
            early = node.pending.early  # a leader's appends, sent before it persists
            for m in [*early, *node.finish()]:
                if (m.frm, m.to) not in self.cut and m.to in self.nodes:
                    self.queue.append(m)
            if node.core.role is Role.LEADER:
                self.checker.leader(node.core)

    def deliver(self, m: Message) -> None:
        if m.to in self.down or (m.frm, m.to) in self.cut:
            return
        self.delivered.append(m)
        self.core(m.to).step(m)
        self.run(m.to)

    def stabilize(self, limit: int = 100_000) -> None:
        for nid in self.nodes:
            self.run(nid)
        n = 0
        while self.queue:
            self.deliver(self.queue.popleft())
            n += 1
            assert n < limit, "the network did not settle"

    def take(self) -> list[Message]:
        """Remove and return the queued messages (to deliver selectively)."""
        out = list(self.queue)
        self.queue.clear()
        return out

    def leader(self) -> str:
        leaders = [
            n
            for n, node in self.nodes.items()
            if node.core.role is Role.LEADER and n not in self.down
        ]
        assert len(leaders) == 1, f"expected one leader, found {leaders}"
        return leaders[0]

    def propose(self, nid: str, data: bytes) -> tuple[int, int]:
        out = self.core(nid).propose(data)
        self.stabilize()
        return out

    def tell_commit(self, nid: str) -> None:
        """One tick of leader ``nid``, then quiet: a new commit index has no
        message of its own, so when no append follows, the leader's next tick
        is what lets its followers apply."""
        self.tick(nid)
        self.stabilize()

    # --- helpers for scripted scenarios ---------------------------------------------

    def pump(
        self, allow: Callable[[Message], bool], *, hold: bool = False, limit: int = 100_000
    ) -> list[Message]:
        """Like :meth:`stabilize`, but only deliver the messages ``allow`` accepts;
        the others (including those sent meanwhile) are returned, and dropped,
        or with ``hold`` left queued (in order) for a later step."""
        for nid in self.nodes:
            self.run(nid)
        dropped: list[Message] = []
        n = 0
        while self.queue:
            m = self.queue.popleft()
            if allow(m):
                self.deliver(m)
            else:
                dropped.append(m)
            n += 1
            assert n < limit, "the network did not settle"
        if hold:
            self.queue.extend(dropped)
        return dropped

    def queued(self, kind: type[M], frm: str | None = None, to: str | None = None) -> list[M]:
        """The queued (not yet delivered) messages of one type, optionally by link."""
        return _select(self.queue, kind, frm, to)

    def sent(
        self, kind: type[M], frm: str | None = None, to: str | None = None, since: int = 0
    ) -> list[M]:
        """The delivered messages of one type, optionally by link, oldest first;
        ``since`` skips the first ones (pass an earlier ``len(net.delivered)``)."""
        return _select(self.delivered[since:], kind, frm, to)

    def campaign_only(self, nid: str, voters: Iterable[str] | None = None) -> None:
        """``nid`` campaigns now and only the election's messages are delivered
        (to and from ``voters``, default everyone); whatever else is sent,
        such as the new leader's first appends, stays queued for the test."""
        core = self.core(nid)
        core.campaign()
        heard = set(self.nodes if voters is None else voters)

        def election(m: Message) -> bool:
            return isinstance(m, VoteRequest | VoteResponse) and (m.to in heard or m.frm in heard)

        held = self.pump(election, hold=True)
        self.queue.clear()
        self.queue.extend(m for m in held if not isinstance(m, VoteRequest | VoteResponse))

    def expire(self, *nids: str) -> None:
        """Make followers forget that they heard from a leader recently, as if an
        election timeout had passed without news (so leader stickiness, thesis
        4.2.3, no longer stops them granting votes), without ticking them into
        an election of their own."""
        for nid in nids:
            core = self.core(nid)
            assert core.role is not Role.LEADER, f"{nid} is the leader"
            core.election_elapsed = core.cfg.election_tick


M = TypeVar("M", bound=Message)


def _select(msgs: Iterable[Message], kind: type[M], frm: str | None, to: str | None) -> list[M]:
    return [
        m
        for m in msgs
        if isinstance(m, kind) and (frm is None or m.frm == frm) and (to is None or m.to == to)
    ]
