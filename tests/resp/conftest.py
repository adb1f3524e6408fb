from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.resp.doubles import Dispatcher
from uhaha.resp import RespHandler, RespProtocol


@dataclass
class Running:
    handler: RespHandler
    dispatcher: Dispatcher
    server: asyncio.Server
    port: int

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)


Start = Callable[..., Awaitable[Running]]


@pytest.fixture
async def start_resp() -> AsyncIterator[Start]:
    """Start a RESP-only server on 127.0.0.1 (keyword arguments go to RespHandler)."""
    servers: list[asyncio.Server] = []
    protocols: list[RespProtocol] = []

    async def start(**kwargs: Any) -> Running:
        dispatcher = Dispatcher()
        handler = RespHandler(dispatcher, **kwargs)
        loop = asyncio.get_running_loop()

        def factory() -> RespProtocol:
            protocols.append(handler.protocol())
            return protocols[-1]

        server = await loop.create_server(factory, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return Running(handler, dispatcher, server, port)

    yield start
    for server in servers:
        server.close()
    for protocol in protocols:
        protocol.abort()  # Python 3.11's Server.close leaves accepted connections open
    for server in servers:
        await server.wait_closed()
    await asyncio.sleep(0)  # let the aborted transports finish closing


@pytest.fixture
async def resp(start_resp: Start) -> Running:
    return await start_resp()
