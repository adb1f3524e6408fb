"""Hostile clients get a clear error or are closed, while everyone else is served."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from tests.frontdoor.conftest import Door, OpenDoor, run
from tests.resp.doubles import command, read_until_closed, until
from uhaha.frontdoor import Limits

FAST = Limits(sniff_timeout=2.0, http_head_timeout=2.0, reject_timeout=0.5)


async def served_meanwhile(door: Door, hostile: Callable[[], Awaitable[None]]) -> None:
    """Run `hostile` while a RESP client and an HTTP client keep being answered."""
    done = asyncio.Event()
    rounds = {"resp": 0, "http": 0}

    async def resp_client() -> None:
        reader, writer = await door.connect()
        while not done.is_set() or rounds["resp"] < 3:
            writer.write(b"PING\r\n")
            assert await asyncio.wait_for(reader.readline(), 2) == b"+PONG\r\n"
            rounds["resp"] += 1
            await asyncio.sleep(0.01)
        writer.close()

    async def http_client() -> None:
        async with httpx.AsyncClient(timeout=2) as client:
            while not done.is_set() or rounds["http"] < 3:
                assert (await client.get(f"{door.url}/hello")).status_code == 200
                rounds["http"] += 1
                await asyncio.sleep(0.01)

    async def attack() -> None:
        try:
            await hostile()
        finally:
            done.set()

    await asyncio.wait_for(asyncio.gather(attack(), resp_client(), http_client()), 30)


async def expect_protocol_error(door: Door, data: bytes, message: bytes) -> None:
    reader, writer = await door.connect()
    writer.write(data)
    assert await read_until_closed(reader) == b"-ERR Protocol error: " + message + b"\r\n"
    writer.close()


async def test_malformed_resp(door: Door) -> None:
    cases = {
        b"*-5\r\n": b"invalid multibulk length -5",
        b"*1\r\n$-7\r\n": b"invalid bulk length -7",
        b"*99999999999\r\n": b"multibulk length 99999999999 exceeds the limit of 1048576",
        b"*1\r\n$100000000\r\n": b"bulk length 100000000 exceeds the limit of 67108864 bytes",
        b"*1\r\n+PING\r\n": b"expected '$', got '+'",
        b"*2\r\n$4\r\nECHO\r\n*1\r\n": b"expected '$', got '*'",
        b"*1\r\n$4\r\nPINGxx": b"expected CRLF after bulk data",
        b"x" * 70_000: b"too big inline request",
        b"A" * 70_000: b"too big inline request",
    }

    async def hostile() -> None:
        await asyncio.gather(*(expect_protocol_error(door, d, m) for d, m in cases.items()))

    await served_meanwhile(door, hostile)


async def test_binary_garbage(door: Door) -> None:
    garbage = random.Random(7).randbytes(200_000)

    async def hostile() -> None:
        reader, writer = await door.connect()
        writer.write(garbage)
        try:
            data = await read_until_closed(reader)
        except ConnectionResetError:
            pass  # closed with garbage still unread: the kernel sends a reset
        else:
            # Garbage "lines" are unknown commands until one does not parse.
            assert b"-ERR Protocol error: " in data
        writer.close()

    await served_meanwhile(door, hostile)


async def test_silent_and_slowloris_connections_are_closed(open_door: OpenDoor) -> None:
    door = await open_door(limits=FAST)

    async def silent() -> float:
        start = time.monotonic()
        reader, writer = await door.connect()
        assert await read_until_closed(reader) == b""
        writer.close()
        return time.monotonic() - start

    async def one_byte_per_second(data: bytes) -> tuple[float, bytes]:
        start = time.monotonic()
        reader, writer = await door.connect()
        received = b""
        for byte in data:
            writer.write(bytes([byte]))
            try:
                received += await asyncio.wait_for(reader.read(1000), 1.0)
            except TimeoutError:
                continue
            break  # the server answered or closed
        received += await read_until_closed(reader)
        writer.close()
        return time.monotonic() - start, received

    async def hostile() -> None:
        quiet, sniffing, heading = await asyncio.gather(
            silent(),
            one_byte_per_second(b"GET /hello HTTP/1.1\r\n"),  # stuck in protocol detection
            _slow_head(door),
        )
        assert 1.9 < quiet < 5
        assert 1.9 < sniffing[0] < 5 and sniffing[1].startswith(b"HTTP/1.1 408 ")
        assert 1.9 < heading[0] < 5 and heading[1].startswith(b"HTTP/1.1 408 ")

    await served_meanwhile(door, hostile)
    await until(lambda: door.door.connections == 0, what="every hostile connection closed")


async def _slow_head(door: Door) -> tuple[float, bytes]:
    """A request line at once, then its headers one byte per second."""
    start = time.monotonic()
    reader, writer = await door.connect()
    writer.write(b"GET /hello HTTP/1.1\r\n")
    received = b""
    for byte in b"Host: x\r\nX-Slow: yes\r\n\r\n":
        try:
            received = await asyncio.wait_for(reader.read(1000), 1.0)
        except TimeoutError:
            writer.write(bytes([byte]))
            continue
        break
    received += await read_until_closed(reader)
    writer.close()
    return time.monotonic() - start, received


async def test_too_many_bytes_without_a_protocol(door: Door) -> None:
    """Past ``sniff_max_bytes`` (8 KiB) with no end of the request line: the
    connection is closed, with a 414 since it looks like HTTP."""

    async def hostile() -> None:
        reader, writer = await door.connect()
        writer.write(b"GET /" + b"a" * 20_000)  # no end of the request line
        try:
            data = await read_until_closed(reader)
        except ConnectionResetError:
            data = b""  # closed with bytes unread: the kernel may reset at once
        assert data == b"" or data.startswith(b"HTTP/1.1 414 URI Too Long\r\n"), data
        writer.close()
        reader, writer = await door.connect()
        writer.write(b"GET /" + b"a" * 8_500)  # all read before the close: no reset
        data = await read_until_closed(reader)
        assert data.startswith(b"HTTP/1.1 414 URI Too Long\r\n")
        assert data.endswith(b"\r\n\r\nRequest line too long.")
        writer.close()

    await served_meanwhile(door, hostile)
    await until(lambda: door.door.connections == 0, what="every hostile connection closed")


async def test_oversized_http_head(door: Door) -> None:
    async def hostile() -> None:
        reader, writer = await door.connect()
        writer.write(b"GET /hello HTTP/1.1\r\nHost: x\r\n")
        for _ in range(100):
            writer.write(b"X-Filler: " + b"f" * 1000 + b"\r\n")
        data = await read_until_closed(reader)
        assert data.startswith(b"HTTP/1.1 431 ")
        writer.close()

    await served_meanwhile(door, hostile)


async def test_connection_limit(open_door: OpenDoor) -> None:
    door = await open_door(limits=Limits(max_connections=3, reject_timeout=0.5))
    held = []
    for _ in range(3):
        reader, writer = await door.connect()
        writer.write(b"PING\r\n")
        assert await reader.readline() == b"+PONG\r\n"
        held.append(writer)
    assert door.door.connections == 3
    reader, writer = await door.connect()
    writer.write(command("PING"))
    assert await read_until_closed(reader) == b"-ERR max number of clients reached\r\n"
    writer.close()
    _, out = await run("curl", "-sS", "-i", f"{door.url}/hello")
    assert out.startswith("HTTP/1.1 503 ") and out.endswith("max number of clients reached")
    reader, writer = await door.connect()  # silent: refused once reject_timeout passes
    assert await read_until_closed(reader) == b""
    writer.close()
    reader, writer = await door.connect()  # the start of an HTTP request line, then nothing
    writer.write(b"GET /hel")
    assert (await read_until_closed(reader)).startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    writer.close()
    held.pop().close()
    await until(lambda: door.door.connections == 2, what="a slot to free up")
    assert await run("redis-cli", "-p", str(door.port), "PING") == (0, "PONG\n")
    for writer in held:
        writer.close()


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def test_memory_stays_bounded(door: Door) -> None:
    before = _rss()
    request = command("ECHO", b"z" * 4000)

    async def never_reads() -> int:
        _, writer = await door.connect()
        sent = 0
        while True:
            writer.write(request * 64)
            sent += len(request) * 64
            try:
                await asyncio.wait_for(writer.drain(), 0.5)
            except TimeoutError:
                break
            assert sent < 500_000_000, "the server never stopped reading"
        writer.transport.abort()
        return sent

    async def endless_line() -> None:
        _, writer = await door.connect()
        try:
            for _ in range(2000):  # 100 MB if the server never said stop
                writer.write(b"A" * 50_000)
                await asyncio.wait_for(writer.drain(), 5)
        except ConnectionError:
            pass
        writer.transport.abort()

    async def hostile() -> None:
        sent = await never_reads()
        await endless_line()
        assert sent > 1_000_000  # enough to have mattered

    await served_meanwhile(door, hostile)
    await until(lambda: door.door.connections == 0, what="hostile connections gone")
    assert _rss() - before < 64 * 1024 * 1024
