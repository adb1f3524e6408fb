"""The HTTP/2 transport between real Hypercorn servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from uhaha.raft.messages import (
    AppendRequest,
    Configuration,
    Entry,
    Heartbeat,
    HeartbeatResponse,
    Message,
    SnapshotChunk,
    SnapshotMeta,
)
from uhaha.transport import HttpTransport, Transport

from .harness import Peer, wait_until
from .strategies import one_of_each

Cluster = Callable[..., Awaitable[list[Peer]]]


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    """Start n peers, each serving its routes and streaming to the others."""
    made: list[Peer] = []

    async def make(n: int = 2, **kwargs: Any) -> list[Peer]:
        peers = [Peer(str(i + 1), **kwargs) for i in range(n)]
        made.extend(peers)
        for p in peers:
            await p.start({q.id: q.address for q in peers})
        return peers

    yield make
    for p in made:
        await p.stop()


def heartbeats(frm: str, to: str, seqs: range) -> list[Message]:
    return [Heartbeat(1, frm, to, 0, s) for s in seqs]


def seqs(msgs: list[Message]) -> list[int]:
    return [m.seq for m in msgs if isinstance(m, Heartbeat | HeartbeatResponse)]


def test_http_transport_is_a_transport() -> None:
    t: Transport = HttpTransport("1", lambda m: None)
    assert isinstance(t, HttpTransport)


async def test_every_message_type_arrives_intact_and_in_order(cluster: Cluster) -> None:
    one, two = await cluster(2)
    msgs = one_of_each("1", "2") * 3
    one.transport.send(msgs)
    got = await two.inbox.wait_for(len(msgs))
    # Snapshot chunks travel on their own requests; everything else on the stream.
    streamed = [m for m in msgs if not isinstance(m, SnapshotChunk)]
    assert [m for m in got if not isinstance(m, SnapshotChunk)] == streamed
    assert [m for m in got if isinstance(m, SnapshotChunk)] == [
        m for m in msgs if isinstance(m, SnapshotChunk)
    ]
    # The sender counts a snapshot chunk once the receiver's answer is back.
    await wait_until(lambda: one.transport.stats()["2"].sent == len(msgs))
    stats = one.transport.stats()["2"]
    assert stats.connected and stats.dropped == 0 and stats.errors == 0


async def test_replies_flow_back_and_three_nodes_talk(cluster: Cluster) -> None:
    peers = await cluster(3)
    for p in peers:
        for q in peers:
            if q is not p:
                p.transport.send(heartbeats(p.id, q.id, range(50)))
    for p in peers:
        got = await p.inbox.wait_for(100)
        for q in peers:
            if q is not p:
                assert seqs([m for m in got if m.frm == q.id]) == list(range(50))
    one, two, _ = peers
    two.transport.send([HeartbeatResponse(1, "2", "1", 77)])
    await wait_until(lambda: HeartbeatResponse(1, "2", "1", 77) in one.inbox.messages)


async def test_many_messages_in_large_batches(cluster: Cluster) -> None:
    one, two = await cluster(2)
    big = [SnapshotChunk(1, "1", "2", SnapshotMeta(1, 1, Configuration()), 0, b"", True)]
    for start in range(0, 20000, 1000):
        one.transport.send(heartbeats("1", "2", range(start, start + 1000)))
        # Stay within the queue's bound (4,096 messages) as the Raft core does.
        await wait_until(lambda: one.transport.stats()["2"].queued < 3000)
    one.transport.send(big)
    got = await two.inbox.wait_for(20001)
    assert seqs(got) == list(range(20000))


async def test_a_large_message_on_the_stream(cluster: Cluster) -> None:
    one, two = await cluster(2)
    # 2 MB of entries: many HTTP/2 DATA frames, reassembled by the receiver.
    entries = tuple(Entry(3, i, data=bytes([i % 256]) * 1000) for i in range(1, 2001))
    huge = AppendRequest(3, "1", "2", 0, 0, entries, 0)
    after = Heartbeat(3, "1", "2", 2000)
    one.transport.send([huge, after])
    got = await two.inbox.wait_for(2)
    assert got == [huge, after]


async def test_unknown_peers_are_dropped_and_counted(cluster: Cluster) -> None:
    one, _ = await cluster(2)
    one.transport.send(heartbeats("1", "9", range(3)))
    assert isinstance(one.transport, HttpTransport)
    assert one.transport.unroutable == 3


async def test_set_peers_disconnects_removed_peers(cluster: Cluster) -> None:
    one, two = await cluster(2)
    one.transport.send(heartbeats("1", "2", range(1)))
    await two.inbox.wait_for(1)
    one.transport.set_peers({})
    assert one.transport.stats() == {}
    one.transport.send(heartbeats("1", "2", range(1, 2)))
    one.transport.set_peers({"2": two.address})
    one.transport.send(heartbeats("1", "2", range(2, 3)))
    got = await two.inbox.wait_for(2)
    assert seqs(got) == [0, 2]


async def test_reconnects_after_the_server_restarts(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="uhaha.transport")
    one, two = await cluster(2)
    one.transport.send(heartbeats("1", "2", range(10)))
    await two.inbox.wait_for(10)
    await two.stop()
    # While the server is down, keep sending as Raft would (heartbeats repeat);
    # then bring it back and wait for the stream to carry messages again.
    seq = 10

    def resend() -> bool:
        nonlocal seq
        one.transport.send(heartbeats("1", "2", range(seq, seq + 1)))
        seq += 1
        return False

    await wait_until(lambda: resend() or not one.transport.stats()["2"].connected)
    await two.restart()
    await wait_until(lambda: resend() or len(two.inbox.messages) > 10)
    got = seqs(two.inbox.messages)
    assert got == sorted(got) and len(set(got)) == len(got)  # in order, some possibly lost
    stats = one.transport.stats()["2"]
    assert stats.connected and stats.errors >= 1
    lost = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("peer 2" in m for m in lost)
    assert sum("connected to peer 2" in r.getMessage() for r in caplog.records) == 2


async def test_a_node_stops_cleanly_while_a_peer_streams_to_it(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    one, two = await cluster(2)
    sending = True

    async def pump() -> None:
        seq = 0
        while sending:
            if one.transport.stats()["2"].queued < 500:
                one.transport.send(heartbeats("1", "2", range(seq, seq + 50)))
                seq += 50
            await asyncio.sleep(0)

    task = asyncio.create_task(pump())
    try:
        await two.inbox.wait_for(2000)
        await two.stop()  # must not raise, nor make Hypercorn log errors
    finally:
        sending = False
        await task
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
    got = seqs(two.inbox.messages)
    assert got == list(range(len(got)))  # nothing out of order, nothing skipped


@pytest.mark.parametrize("limit", [1, 5])
async def test_survives_the_servers_request_limit(cluster: Cluster, limit: int) -> None:
    # Hypercorn closes an HTTP/2 connection (GOAWAY) after this many requests.
    one, two = await cluster(2, keep_alive_max_requests=limit)
    meta = SnapshotMeta(10, 1, Configuration())
    chunks = [SnapshotChunk(1, "1", "2", meta, i * 1000, b"s" * 1000, i == 29) for i in range(30)]
    for i, chunk in enumerate(chunks):
        one.transport.send([chunk, *heartbeats("1", "2", range(i, i + 1))])
        # The sender keeps at most a few chunks queued, as the Raft core does.
        await wait_until(lambda: one.transport.stats()["2"].queued == 0)
    got = await two.inbox.wait_for(60)
    assert [m for m in got if isinstance(m, SnapshotChunk)] == chunks
    assert seqs(got) == list(range(30))
    stats = one.transport.stats()["2"]
    assert stats.dropped == 0 and stats.connected


async def test_queue_overflow_drops_and_counts(cluster: Cluster) -> None:
    one, two = await cluster(2, max_queue_messages=100, keepalive=0.05)
    await two.stop()
    # An idle stream notices the closed connection through its keepalives.
    await wait_until(lambda: not one.transport.stats()["2"].connected)
    one.transport.send(heartbeats("1", "2", range(250)))
    stats = one.transport.stats()["2"]
    assert stats.queued == 50 and stats.dropped == 200
    await two.restart()
    got = await two.inbox.wait_for(50)
    assert seqs(got) == list(range(200, 250))


async def test_close_stops_delivery(cluster: Cluster) -> None:
    one, two = await cluster(2)
    await two.transport.close()
    one.transport.send(heartbeats("1", "2", range(5)))
    await wait_until(lambda: one.transport.stats()["2"].errors > 0)
    assert two.inbox.messages == []
    assert two.transport.stats() == {}


async def test_a_restarted_link_carries_on(cluster: Cluster) -> None:
    one, two = await cluster(2)
    one.transport.send(heartbeats("1", "2", range(10)))
    await two.inbox.wait_for(10)
    assert isinstance(one.transport, HttpTransport)
    one.transport._links["2"].restart()  # as when peer 2 is seen with a new boot id
    one.transport.send(heartbeats("1", "2", range(10, 20)))
    got = await two.inbox.wait_for(20)
    assert seqs(got)[-10:] == list(range(10, 20))
