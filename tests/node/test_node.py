"""The asyncio Node over an in-memory network: the Ready loop end to end.

Real storage (SQLite on disk) where durability matters; the memory transport
otherwise, with real asyncio timing (ticks of 10 ms). Every wait polls a
condition with a deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from uhaha.node import Node, NodeOptions, NotLeaderError, OutcomeUnknown, ProposalFailed
from uhaha.raft import ConfChange, ConfChangeOp, Entry, EntryKind
from uhaha.storage import (
    MemoryStorage,
    SnapshotHeader,
    SnapshotStore,
    SQLiteStorage,
    Storage,
    StorageError,
)
from uhaha.transport import MemoryNetwork


class Recorder:
    """A machine that records applied data and answers its length."""

    def __init__(self) -> None:
        self.applied: list[bytes] = []

    def apply(self, entry: Entry) -> Any:
        if entry.data == b"boom":
            raise ValueError("ERR boom")
        self.applied.append(entry.data)
        return len(self.applied)

    def restore(self, store: SnapshotStore, snapshot_id: str) -> None:
        with store.open(snapshot_id) as reader:
            self.applied = [x for x in reader.read().split(b"\n") if x]

    def dump(self) -> tuple[SnapshotHeader, bytes]:
        return SnapshotHeader(), b"\n".join(self.applied)


async def until(cond: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await asyncio.sleep(0.005)


class Cluster:
    def __init__(self, tmp: Path, sqlite: bool = False) -> None:
        self.tmp = tmp
        self.net = MemoryNetwork(seed=1)
        self.nodes: dict[str, Node] = {}
        self.machines: dict[str, Recorder] = {}
        self.sqlite = sqlite
        self.snapshot_every = 10_000
        self.trailing_logs = 1_000

    async def storage(self, nid: str) -> Storage:
        if self.sqlite:
            return await SQLiteStorage.open(self.tmp / f"{nid}.db")
        return MemoryStorage()

    async def add(self, nid: str, *, bootstrap: bool) -> Node:
        address = f"n{nid}"
        machine = self.machines.setdefault(nid, Recorder())
        node = Node(
            NodeOptions(
                nid,
                address,
                tick_ms=10,
                request_timeout=5,
                snapshot_every=self.snapshot_every,
                trailing_logs=self.trailing_logs,
            ),
            await self.storage(nid),
            SnapshotStore(self.tmp / f"snap-{nid}"),
            lambda deliver: self.net.transport(nid, deliver, address=address),
            machine,
        )
        await node.start(bootstrap=bootstrap)
        self.nodes[nid] = node
        return node

    def leader(self) -> Node | None:
        leaders = [n for n in self.nodes.values() if n.is_leader() and not n._stopping]
        return leaders[0] if len(leaders) == 1 else None

    async def wait_leader(self) -> Node:
        await until(lambda: self.leader() is not None, what="a leader")
        leader = self.leader()
        assert leader is not None
        return leader

    async def join(self, nid: str, voter: bool = True) -> Node:
        leader = await self.wait_leader()
        node = await self.add(nid, bootstrap=False)
        node.add_seed_peers({leader.id: leader.options.advertise})
        op = ConfChangeOp.ADD_VOTER if voter else ConfChangeOp.ADD_NONVOTER
        await leader.change_membership(ConfChange(op, nid, node.options.advertise))
        return node

    async def close(self) -> None:
        for n in self.nodes.values():
            await n.stop()


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path)
    yield c
    await c.close()


async def three(c: Cluster) -> Node:
    await c.add("1", bootstrap=True)
    await c.join("2")
    await c.join("3")
    return await c.wait_leader()


async def retry(fn: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    """Run ``fn`` on whoever leads, until it succeeds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return await fn()
        except (NotLeaderError, ProposalFailed):
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.01)


async def test_single_node_bootstraps_and_commits(cluster: Cluster) -> None:
    node = await cluster.add("1", bootstrap=True)
    await until(node.is_leader, what="leadership")
    assert await node.propose(b"a") == 1
    assert await node.propose(b"b") == 2
    assert cluster.machines["1"].applied == [b"a", b"b"]
    await node.barrier()
    assert node.info()["applied_index"] >= 4


async def test_three_nodes_replicate_and_batch(cluster: Cluster) -> None:
    leader = await three(cluster)
    results = await asyncio.gather(*(leader.propose(f"v{i}".encode()) for i in range(300)))
    assert sorted(results) == list(range(1, 301))
    for machine in cluster.machines.values():
        await until(lambda m=machine: len(m.applied) == 300, what="all applied")  # type: ignore[misc]
        assert machine.applied == cluster.machines[leader.id].applied


async def test_follower_refuses_writes_with_the_leader_address(cluster: Cluster) -> None:
    leader = await three(cluster)
    follower = next(n for n in cluster.nodes.values() if n is not leader)
    await until(lambda: follower.leader_address() == leader.options.advertise, what="leader known")
    with pytest.raises(NotLeaderError) as e:
        await follower.propose(b"x")
    assert e.value.leader == leader.options.advertise


async def test_linearizable_read_on_leader_and_follower(cluster: Cluster) -> None:
    leader = await three(cluster)
    await leader.propose(b"w1")
    for node in cluster.nodes.values():
        index = await node.read_barrier()
        assert index >= leader.info()["commit_index"] - 1
        assert b"w1" in cluster.machines[node.id].applied


async def test_machine_errors_reach_only_their_caller(cluster: Cluster) -> None:
    leader = await three(cluster)
    with pytest.raises(ValueError, match="boom"):
        await leader.propose(b"boom")
    assert await leader.propose(b"fine") == 1


async def test_leader_failure_elects_a_new_leader_that_keeps_data(cluster: Cluster) -> None:
    leader = await three(cluster)
    await leader.propose(b"before")
    await leader.stop()
    survivors = [n for n in cluster.nodes.values() if n is not leader]
    await until(lambda: any(n.is_leader() for n in survivors), what="a new leader")
    new = next(n for n in survivors if n.is_leader())
    assert await retry(lambda: new.propose(b"after")) == 2
    assert cluster.machines[new.id].applied == [b"before", b"after"]


async def test_nonvoter_receives_the_log_and_removal_works(cluster: Cluster) -> None:
    leader = await three(cluster)
    learner = await cluster.join("4", voter=False)
    await leader.propose(b"x")
    await until(lambda: cluster.machines["4"].applied == [b"x"], what="learner applied")
    assert learner.info()["voter"] is False
    await leader.change_membership(ConfChange(ConfChangeOp.REMOVE, "4"))
    assert "4" not in {m.id for m in leader.members()}


async def test_restart_recovers_from_disk(tmp_path: Path) -> None:
    c = Cluster(tmp_path, sqlite=True)
    try:
        node = await c.add("1", bootstrap=True)
        await until(node.is_leader)
        for i in range(20):
            await node.propose(f"k{i}".encode())
        await node.stop()
        c.machines["1"] = Recorder()
        again = await c.add("1", bootstrap=True)  # bootstrap is ignored: not fresh
        await until(again.is_leader)
        await until(lambda: len(c.machines["1"].applied) == 20, what="replay")
        assert c.machines["1"].applied == [f"k{i}".encode() for i in range(20)]
        await until(lambda: again.logs_loaded, what="logs loaded")
    finally:
        await c.close()


async def test_long_replay_shows_progress(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    c = Cluster(tmp_path, sqlite=True)
    c.snapshot_every = 0  # replay the whole log
    try:
        node = await c.add("1", bootstrap=True)
        await until(node.is_leader)
        await asyncio.gather(*(node.propose(b"%d" % i) for i in range(12_000)))
        await node.stop()
        c.machines["1"] = Recorder()
        with caplog.at_level("INFO", logger="uhaha"):
            again = await c.add("1", bootstrap=False)
            await until(lambda: again.logs_loaded, what="replay")
        assert len(c.machines["1"].applied) == 12_000
        messages = [r.getMessage() for r in caplog.records]
        assert any(m.startswith("replaying logs: ") for m in messages), messages
        assert "logs loaded: ready for commands" in messages
    finally:
        await c.close()


async def test_restart_from_a_snapshot_and_the_tail(tmp_path: Path) -> None:
    c = Cluster(tmp_path, sqlite=True)
    c.snapshot_every = 10
    c.trailing_logs = 2
    try:
        node = await c.add("1", bootstrap=True)
        await until(node.is_leader)
        for i in range(35):
            await node.propose(b"v%d" % i)
        await until(lambda: len(node.snapshots.list()) >= 1, what="a snapshot")
        await until(lambda: node.info()["first_index"] > 1, what="compaction")
        await node.stop()
        c.machines["1"] = Recorder()
        again = await c.add("1", bootstrap=False)
        await until(lambda: len(c.machines["1"].applied) == 35, what="restored and replayed")
        assert c.machines["1"].applied == [b"v%d" % i for i in range(35)]
        assert again.info()["snapshot_index"] > 0
    finally:
        await c.close()


async def test_a_storage_failure_stops_the_node_without_acknowledging(tmp_path: Path) -> None:
    """After a failed write the node stops (fsyncgate: no retry); the write
    that hit the failure is not acknowledged, later ones are refused, and
    what was stored before stays intact."""
    storage = MemoryStorage()
    node = Node(
        NodeOptions("1", "n1", tick_ms=10, request_timeout=5),
        storage,
        SnapshotStore(tmp_path / "snap"),
        lambda deliver: MemoryNetwork().transport("1", deliver, address="n1"),
        Recorder(),
    )
    await node.start(bootstrap=True)
    try:
        await until(node.is_leader)
        assert await node.propose(b"kept") == 1
        before = await storage.load()
        storage.fail_writes("disk full while writing the log (injected)")
        with pytest.raises(OutcomeUnknown):
            await node.propose(b"lost")
        await until(node.stopped.is_set, what="the node to stop")
        assert isinstance(node.failed, StorageError)
        with pytest.raises(ProposalFailed):
            await node.propose(b"refused")
        kept = [e.data for e in before.entries if e.kind is EntryKind.NORMAL and e.data]
        assert kept == [b"kept"]
        after = await storage.load()
        assert after.entries == before.entries  # nothing half-written
    finally:
        await node.stop()


async def test_a_write_pending_at_shutdown_has_an_unknown_outcome(cluster: Cluster) -> None:
    """A stopping leader must not tell a client that a write in its log failed:
    the next leader may still commit it (the chaos tests caught this)."""
    leader = await three(cluster)
    others = [n for n in cluster.nodes if n != leader.id]
    for other in others:  # the leader's appends stop arriving: nothing commits
        cluster.net.block(leader.id, other)
    assert leader.core is not None
    before = leader.core.log.last_index()
    write = asyncio.ensure_future(leader.propose(b"maybe"))
    await until(lambda: leader.core is not None and leader.core.log.last_index() > before)
    await leader.stop()
    with pytest.raises(OutcomeUnknown, match="outcome was known"):
        await write
