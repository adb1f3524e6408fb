"""A tiny dispatcher for testing the RESP layer, and socket helpers."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import hiredis

from uhaha.resp import Connection, Error, Reply, SimpleString

T = TypeVar("T")

#: What TYPES returns: one of every reply type.
EVERY_TYPE: list[Reply] = [
    None,
    True,
    False,
    42,
    -7,
    2**70,
    1.5,
    3.0,
    "text é",
    b"bin\x00\xff",
    SimpleString("OK"),
    Error("ERR custom failure"),
    [1, [2, b"x"]],
    (),
    {"k": 1, b"n": [None]},
    {b"member"},
]


class Dispatcher:
    """ECHO, PING, INCR, FAIL, AFAIL, TYPES, SLOW secs value, GATE name, WHOAMI, KILL.

    Records every submission in order, and the connections opened and closed.
    """

    def __init__(self) -> None:
        self.submitted: list[list[bytes]] = []
        self.opened_ids: list[int] = []
        self.closed_ids: list[int] = []
        self.counters: dict[bytes, int] = defaultdict(int)
        self.gates: dict[bytes, asyncio.Event] = defaultdict(asyncio.Event)

    def opened(self, conn: Connection) -> None:
        self.opened_ids.append(conn.id)

    def closed(self, conn: Connection) -> None:
        self.closed_ids.append(conn.id)

    def submit(self, conn: Connection, args: list[bytes]) -> Reply | Awaitable[Reply]:
        self.submitted.append(args)
        name = args[0].upper()
        if name == b"PING":
            return SimpleString("PONG") if len(args) == 1 else args[1]
        if name == b"ECHO":
            return args[1]
        if name == b"INCR":
            self.counters[args[1]] += 1
            return self.counters[args[1]]
        if name == b"FAIL":
            raise ValueError("boom\r\nforged")
        if name == b"AFAIL":
            return self._afail()
        if name == b"TYPES":
            return EVERY_TYPE
        if name == b"SLOW":
            return self._slow(float(args[1]), args[2])
        if name == b"GATE":
            return self._gate(args[1])
        if name == b"WHOAMI":
            return [conn.id, conn.name, conn.protocol, conn.remote]
        if name == b"KILL":
            conn.close()
            return SimpleString("OK")
        if name == b"BAD":
            return object()  # type: ignore[return-value]
        return Error(f"ERR unknown command '{args[0].decode(errors='replace')}'")

    async def _afail(self) -> Reply:
        await asyncio.sleep(0)
        raise RuntimeError("async boom")

    async def _slow(self, seconds: float, value: bytes) -> Reply:
        await asyncio.sleep(seconds)
        return value

    async def _gate(self, name: bytes) -> Reply:
        await self.gates[name].wait()
        return b"opened " + name


async def until(
    condition: Callable[[], T | None], timeout: float = 10.0, what: str = "condition"
) -> T:
    """Poll `condition` until it returns a true value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def read_replies(
    reader: asyncio.StreamReader, count: int, timeout: float = 10.0
) -> list[Any]:
    """Read `count` replies with hiredis (RESP2 or RESP3); errors come back as Error."""
    # hiredis calls replyError(text) for error replies; its stub wants an
    # exception class, but any callable works, and Error compares as text.
    parser = hiredis.Reader(replyError=cast(Any, Error))
    out: list[Any] = []

    async def run() -> None:
        while True:
            while len(out) < count:
                reply = parser.gets()
                if reply is False:
                    break
                out.append(reply)
            if len(out) >= count:
                return
            data = await reader.read(65536)
            if not data:
                raise ConnectionError(f"closed after {len(out)} of {count} replies")
            parser.feed(data)

    await asyncio.wait_for(run(), timeout)
    return out


async def read_until_closed(reader: asyncio.StreamReader, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection."""

    async def run() -> bytes:
        chunks = []
        while data := await reader.read(65536):
            chunks.append(data)
        return b"".join(chunks)

    return await asyncio.wait_for(run(), timeout)


def command(*args: str | bytes) -> bytes:
    """The RESP encoding of one request."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)
