"""Turning an open transport into an asyncio StreamReader/StreamWriter pair."""

from __future__ import annotations

import asyncio

__all__ = ["stream_pair"]


def stream_pair(
    transport: asyncio.Transport, data: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Wrap `transport` in streams; `data` (already read from it) is read first.

    The same wiring `asyncio.start_server` does for a new connection, done
    for a connection whose first bytes the front door has already consumed.
    """
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    if data:
        reader.feed_data(data)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer
