"""``--limit resp-idle-timeout``: a RESP client that sends nothing for that
long is closed (Redis's ``timeout``), unless it is owed a reply or is a
MONITOR feed; by default (0) nobody is."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.app.inproc import serve
from uhaha import App

IDLE = 0.4


async def connect(addr: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = addr.rsplit(":", 1)
    return await asyncio.open_connection(host, int(port))


async def still_open(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Nothing arrives and no close comes for ``seconds``."""
    try:
        await asyncio.wait_for(reader.read(1), seconds)
    except TimeoutError:
        return True
    return False


async def test_idle_clients_are_closed_busy_ones_and_monitors_are_not(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    async with serve(App("idle"), tmp_path, "--limit", f"resp-idle-timeout={IDLE}") as addr:
        idle_r, idle_w = await connect(addr)
        idle_w.write(b"PING\r\n")  # (one that never spoke is the sniff timeout's)
        assert await idle_r.readline() == b"+PONG\r\n"
        mon_r, mon_w = await connect(addr)
        mon_w.write(b"MONITOR\r\n")
        assert await mon_r.readline() == b"+OK\r\n"
        busy_r, busy_w = await connect(addr)

        started = loop.time()
        closed = asyncio.create_task(idle_r.read())  # b"" at the server's close
        pings = 0
        while not closed.done():
            busy_w.write(b"PING\r\n")
            assert await busy_r.readline() == b"+PONG\r\n"
            pings += 1
            await asyncio.sleep(IDLE / 8)  # the busy client's pace
            assert loop.time() - started < 10, "the idle client was not closed"
        assert await closed == b""
        assert loop.time() - started >= IDLE
        for _ in range(pings):  # the monitor saw every PING: it was served throughout
            assert b'"PING"' in await mon_r.readline()

        # Now everyone is quiet for more than two idle periods: the monitor
        # stays (a feed is never idle); the other one is closed.
        assert await still_open(mon_r, 3 * IDLE)
        assert await asyncio.wait_for(busy_r.read(), 10) == b""
        mon_w.write(b"PING\r\n")  # still served (a MONITOR connection's own commands)
        assert await mon_r.readline() == b"+PONG\r\n"
        for w in (idle_w, mon_w, busy_w):
            w.close()


async def test_by_default_idle_clients_stay(tmp_path: Path) -> None:
    async with serve(App("idle"), tmp_path) as addr:
        reader, writer = await connect(addr)
        writer.write(b"PING\r\n")
        assert await reader.readline() == b"+PONG\r\n"
        assert await still_open(reader, 1.0)
        writer.write(b"PING\r\n")
        assert await reader.readline() == b"+PONG\r\n"
        writer.close()
