"""The simulated network: delivery through the loop, partitions, drops, delays."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from uhaha.raft.messages import Heartbeat
from uhaha.transport import MemoryNetwork, MemoryTransport, Transport

from .harness import Inbox
from .strategies import one_of_each

IDS = ("a", "b", "c")


class Cluster:
    def __init__(self, net: MemoryNetwork) -> None:
        self.net = net
        self.inbox = {i: Inbox() for i in IDS}
        self.t = {i: net.transport(i, self.inbox[i]) for i in IDS}
        for i, t in self.t.items():
            t.set_peers({p: p for p in IDS if p != i})

    def hb(self, frm: str, to: str, seq: int = 0) -> Heartbeat:
        return Heartbeat(1, frm, to, 0, seq)

    async def settle(self) -> None:
        """Let every zero-delay delivery happen (they are all call_soon callbacks)."""
        for _ in range(3):
            await asyncio.sleep(0)


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    c = Cluster(MemoryNetwork(seed=1))
    for t in c.t.values():
        await t.start()
    yield c
    for t in c.t.values():
        await t.close()


def test_memory_transport_is_a_transport() -> None:
    t: Transport = MemoryNetwork().transport("a", lambda m: None)
    assert isinstance(t, MemoryTransport)


async def test_delivery_goes_through_the_loop_in_order(cluster: Cluster) -> None:
    msgs = one_of_each("a", "b")
    cluster.t["a"].send(msgs)
    assert cluster.inbox["b"].messages == []  # never inside send()
    await cluster.inbox["b"].wait_for(len(msgs))
    assert cluster.inbox["b"].messages == msgs
    assert cluster.t["a"].stats()["b"].sent == len(msgs)


async def test_messages_are_copies_through_the_codec(cluster: Cluster) -> None:
    msg = one_of_each("a", "b")[2]
    cluster.t["a"].send([msg])
    (got,) = await cluster.inbox["b"].wait_for(1)
    assert got == msg and got is not msg


async def test_one_way_block(cluster: Cluster) -> None:
    cluster.net.block("a", "b")
    cluster.t["a"].send([cluster.hb("a", "b")])
    cluster.t["b"].send([cluster.hb("b", "a")])
    await cluster.inbox["a"].wait_for(1)
    await cluster.settle()
    assert cluster.inbox["b"].messages == []
    assert cluster.t["a"].stats()["b"].dropped == 1
    assert not cluster.t["a"].stats()["b"].connected
    assert cluster.t["b"].stats()["a"].connected
    cluster.net.unblock("a", "b")
    cluster.t["a"].send([cluster.hb("a", "b")])
    await cluster.inbox["b"].wait_for(1)


async def test_partition_and_heal(cluster: Cluster) -> None:
    cluster.net.partition({"a"}, {"b", "c"})
    for frm in IDS:
        cluster.t[frm].send([cluster.hb(frm, to) for to in IDS if to != frm])
    await cluster.inbox["c"].wait_for(1)
    await cluster.inbox["b"].wait_for(1)
    await cluster.settle()
    assert [m.frm for m in cluster.inbox["b"].messages] == ["c"]
    assert [m.frm for m in cluster.inbox["c"].messages] == ["b"]
    assert cluster.inbox["a"].messages == []
    cluster.net.heal()
    cluster.t["b"].send([cluster.hb("b", "a")])
    await cluster.inbox["a"].wait_for(1)


async def test_a_message_in_flight_is_lost_when_the_link_is_cut(cluster: Cluster) -> None:
    cluster.t["a"].send([cluster.hb("a", "b")])
    cluster.net.block("a", "b")
    await cluster.settle()
    assert cluster.inbox["b"].messages == []


async def _lossy_run(seed: int) -> tuple[int, list[int]]:
    net = MemoryNetwork(seed=seed)
    inbox = Inbox()
    a, b = net.transport("a", lambda m: None), net.transport("b", inbox)
    a.set_peers({"b": "b"})
    await a.start()
    await b.start()
    net.set_link("a", "b", drop=0.5)
    a.send([Heartbeat(1, "a", "b", 0, i) for i in range(200)])
    stats = a.stats()["b"]
    assert stats.sent + stats.dropped == 200
    await inbox.wait_for(stats.sent)
    seqs = [m.seq for m in inbox.messages if isinstance(m, Heartbeat)]
    return stats.dropped, seqs


async def test_drops_are_counted_and_replayable_from_the_seed() -> None:
    dropped, seqs = await _lossy_run(3)
    assert 60 < dropped < 140
    assert seqs == sorted(seqs)
    assert await _lossy_run(3) == (dropped, seqs)
    assert await _lossy_run(4) != (dropped, seqs)


async def test_duplicates_and_delays() -> None:
    net = MemoryNetwork(seed=5)
    inbox = Inbox()
    a, b = net.transport("a", lambda m: None), net.transport("b", inbox)
    a.set_peers({"b": "b"})
    await a.start()
    await b.start()
    net.set_link("a", "b", duplicate=1.0, delay=(0.001, 0.01))
    a.send([Heartbeat(1, "a", "b", 0, i) for i in range(20)])
    await asyncio.sleep(0)
    assert inbox.messages == []  # delayed
    await inbox.wait_for(40)
    seqs = [m.seq for m in inbox.messages if isinstance(m, Heartbeat)]
    assert sorted(seqs) == sorted(list(range(20)) * 2)
    assert seqs != sorted(seqs)  # a spread of delays reorders


async def test_closed_or_unstarted_transports_receive_nothing() -> None:
    net = MemoryNetwork()
    inbox = Inbox()
    a, b = net.transport("a", lambda m: None), net.transport("b", inbox)
    a.set_peers({"b": "b", "zz": "nowhere"})
    a.send([Heartbeat(1, "a", "b", 0)])  # a not started
    await a.start()
    a.send([Heartbeat(1, "a", "b", 0)])  # b not started
    a.send([Heartbeat(1, "a", "zz", 0)])  # nobody there
    a.send([Heartbeat(1, "a", "unknown", 0)])  # not a peer
    await b.start()
    a.send([Heartbeat(1, "a", "b", 0, 7)])
    await b.close()
    await asyncio.sleep(0)
    assert inbox.messages == []
    assert a.stats()["b"].dropped == 2
    assert a.stats()["zz"].dropped == 1
    assert not a.stats()["b"].connected


async def test_addresses_are_unique_and_peers_can_move() -> None:
    net = MemoryNetwork()
    inbox = Inbox()
    a = net.transport("a", lambda m: None)
    b = net.transport("b", inbox, address="host-b:1")
    with pytest.raises(ValueError, match="in use"):
        net.transport("x", lambda m: None, address="host-b:1")
    await a.start()
    await b.start()
    a.set_peers({"b": "b"})  # wrong address: nobody listens there
    a.send([Heartbeat(1, "a", "b", 0)])
    a.set_peers({"b": "host-b:1"})
    a.send([Heartbeat(1, "a", "b", 0, 2)])
    (got,) = await inbox.wait_for(1)
    assert got == Heartbeat(1, "a", "b", 0, 2)
