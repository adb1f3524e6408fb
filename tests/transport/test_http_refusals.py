"""What the /raft/ routes refuse: wrong credentials, malformed or oversized
input, messages for another node. Nothing refused may reach ``deliver``."""

from __future__ import annotations

import logging
import struct
from collections.abc import AsyncIterator

import httpx
import pytest

from uhaha.raft.messages import Configuration, Heartbeat, Message, SnapshotChunk, SnapshotMeta
from uhaha.transport import encode, encode_frame

from .harness import Peer, wait_until

SECRET = "s3cret"


def hb(seq: int, to: str = "2") -> Message:
    return Heartbeat(1, "1", to, 0, seq)


def chunk(to: str = "2", size: int = 10) -> SnapshotChunk:
    return SnapshotChunk(1, "1", to, SnapshotMeta(5, 1, Configuration()), 0, b"s" * size, True)


@pytest.fixture
async def node() -> AsyncIterator[Peer]:
    """Node "2", requiring the secret, with a small frame limit; no peers of its own."""
    peer = Peer("2", auth=SECRET, max_frame_size=4096)
    await peer.start({})
    yield peer
    await peer.stop()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(http1=False, http2=True, timeout=10) as c:
        yield c


def auth(secret: str = SECRET) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


async def test_wrong_or_missing_secret_gets_401_and_nothing_is_delivered(
    node: Peer, client: httpx.AsyncClient
) -> None:
    base = f"http://{node.address}/raft"
    frames = encode_frame(hb(1)) + encode_frame(hb(2))
    for headers in ({}, auth("wrong"), auth(SECRET + "x"), {"authorization": SECRET}):
        assert (await client.get(f"{base}/hello", headers=headers)).status_code == 401
        resp = await client.post(f"{base}/stream", content=frames, headers=headers)
        assert resp.status_code == 401
        assert resp.headers["www-authenticate"] == "Bearer"
        resp = await client.post(f"{base}/snapshot", content=encode(chunk()), headers=headers)
        assert resp.status_code == 401
    # Two Authorization headers, one of them right: refused too.
    two = [("authorization", "Bearer wrong"), ("authorization", f"Bearer {SECRET}")]
    assert (await client.post(f"{base}/stream", content=frames, headers=two)).status_code == 401
    assert node.inbox.messages == []
    # The same requests with the secret are accepted.
    assert (await client.get(f"{base}/hello", headers=auth())).text == "2"
    resp = await client.post(f"{base}/stream", content=frames, headers=auth())
    assert resp.status_code == 204
    assert node.inbox.messages == [hb(1), hb(2)]


async def test_a_transport_with_the_wrong_secret_is_refused(
    node: Peer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="uhaha.transport")
    one = Peer("1", auth="wrong")
    await one.start({"2": node.address})
    try:
        one.transport.send([hb(i) for i in range(5)])
        await wait_until(lambda: one.transport.stats()["2"].errors >= 2)
        stats = one.transport.stats()["2"]
        assert not stats.connected and "401" in stats.last_error
        assert node.inbox.messages == []
        # Logged once, not at every retry.
        assert sum("credentials" in r.getMessage() for r in caplog.records) == 1
    finally:
        await one.stop()


async def test_a_transport_without_a_secret_is_refused(node: Peer) -> None:
    one = Peer("1")
    await one.start({"2": node.address})
    try:
        one.transport.send([hb(1), chunk()])
        await wait_until(lambda: "401" in one.transport.stats()["2"].last_error)
        assert node.inbox.messages == []
    finally:
        await one.stop()


async def test_garbage_gets_400_and_nothing_after_the_bad_frame(
    node: Peer, client: httpx.AsyncClient
) -> None:
    base = f"http://{node.address}/raft"
    bad = struct.pack(">I", 5) + b"\x01\x63garb"  # an unknown message type
    body = encode_frame(hb(1)) + bad + encode_frame(hb(2))
    resp = await client.post(f"{base}/stream", content=body, headers=auth())
    assert resp.status_code == 400
    assert "unknown message type 99" in resp.text
    assert node.inbox.messages == [hb(1)]
    for junk in (b"\x00\x00\x00\x02\xff\xff", b"\x00\x00", b"GET / HTTP/1.1\r\n\r\n"):
        resp = await client.post(f"{base}/stream", content=junk, headers=auth())
        assert resp.status_code == 400
    resp = await client.post(f"{base}/snapshot", content=b"garbage", headers=auth())
    assert resp.status_code == 400
    resp = await client.post(f"{base}/snapshot", content=encode(hb(3)), headers=auth())
    assert resp.status_code == 400  # a heartbeat is not a snapshot chunk
    assert node.inbox.messages == [hb(1)]


async def test_oversize_frames_are_refused(node: Peer, client: httpx.AsyncClient) -> None:
    base = f"http://{node.address}/raft"
    # The length alone is enough to refuse: the body behind it is never buffered.
    body = encode_frame(hb(1)) + struct.pack(">I", 4097) + b"\x00" * 100
    resp = await client.post(f"{base}/stream", content=body, headers=auth())
    assert resp.status_code == 400 and "exceeds the limit" in resp.text
    resp = await client.post(f"{base}/snapshot", content=encode(chunk(size=5000)), headers=auth())
    assert resp.status_code == 413
    assert node.inbox.messages == [hb(1)]


async def test_the_sender_refuses_oversize_messages_too(node: Peer) -> None:
    one = Peer("1", auth=SECRET, max_frame_size=4096)
    await one.start({"2": node.address})
    try:
        one.transport.send([chunk(size=5000), hb(1)])
        await node.inbox.wait_for(1)
        stats = one.transport.stats()["2"]
        assert stats.dropped == 1 and "over the limit" in stats.last_error
        assert node.inbox.messages == [hb(1)]
    finally:
        await one.stop()


async def test_messages_for_another_node_are_not_delivered(
    node: Peer, client: httpx.AsyncClient
) -> None:
    base = f"http://{node.address}/raft"
    body = encode_frame(hb(1, to="3")) + encode_frame(hb(2))
    assert (await client.post(f"{base}/stream", content=body, headers=auth())).status_code == 204
    resp = await client.post(f"{base}/snapshot", content=encode(chunk(to="3")), headers=auth())
    assert resp.status_code == 421
    assert node.inbox.messages == [hb(2)]


async def test_a_different_node_at_the_address_is_refused(node: Peer) -> None:
    one = Peer("1", auth=SECRET)
    await one.start({"3": node.address})  # node "2" listens there
    try:
        one.transport.send([hb(1, to="3")])
        await wait_until(lambda: "is '2', not '3'" in one.transport.stats()["3"].last_error)
        assert node.inbox.messages == []
    finally:
        await one.stop()
