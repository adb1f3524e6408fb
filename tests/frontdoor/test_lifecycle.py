"""Starting (one clear error) and closing (graceful, with a deadline)."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest

from tests.frontdoor.conftest import Door, OpenDoor, make_app
from tests.resp.doubles import Dispatcher, command, read_until_closed
from uhaha.frontdoor import FrontDoor, StartupError
from uhaha.resp import RespHandler


def new_door() -> FrontDoor:
    return FrontDoor(make_app(), RespHandler(Dispatcher()))


async def test_port_in_use_is_one_clear_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StartupError) as caught:
            await new_door().start("127.0.0.1", port)
    assert str(caught.value) == f"address 127.0.0.1:{port} is already in use"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


async def test_address_not_on_this_machine() -> None:
    with pytest.raises(StartupError) as caught:
        await new_door().start("10.9.9.9", 11001)
    assert str(caught.value) == "cannot bind to 10.9.9.9:11001: Cannot assign requested address"


async def test_port_zero_and_address(door: Door) -> None:
    host, port = door.door.address
    assert host == "127.0.0.1" and port == door.port > 0


async def test_close_lets_owed_replies_out_then_closes(open_door: OpenDoor) -> None:
    door = await open_door()
    reader, writer = await door.connect()
    writer.write(command("SLOW", "0.2", "last words"))
    await writer.drain()
    idle_reader, idle_writer = await door.connect()
    idle_writer.write(b"PING\r\n")
    assert await idle_reader.readline() == b"+PONG\r\n"
    async with httpx.AsyncClient() as client:
        slow = asyncio.create_task(client.get(f"{door.url}/slow?s=0.2"))
        await asyncio.sleep(0.05)  # let the request reach the app
        start = time.monotonic()
        await door.door.close(timeout=5)
        elapsed = time.monotonic() - start
        assert (await slow).json() == {"slept": True}
    assert await read_until_closed(reader) == b"$10\r\nlast words\r\n"
    assert await read_until_closed(idle_reader) == b""
    assert elapsed < 2
    assert door.door.connections == 0
    with pytest.raises(OSError):
        await door.connect()  # no longer listening
    writer.close()
    idle_writer.close()


async def test_close_cuts_what_outlives_the_deadline(open_door: OpenDoor) -> None:
    door = await open_door()
    reader, writer = await door.connect()
    writer.write(command("GATE", "never"))
    await writer.drain()
    h2 = httpx.AsyncClient(http1=False, http2=True)
    slow = asyncio.create_task(h2.get(f"{door.url}/slow?s=30"))
    await asyncio.sleep(0.05)
    start = time.monotonic()
    await door.door.close(timeout=0.3)
    assert time.monotonic() - start < 2
    assert await read_until_closed(reader) == b""
    with pytest.raises(httpx.HTTPError):
        await slow
    await h2.aclose()
    writer.close()
