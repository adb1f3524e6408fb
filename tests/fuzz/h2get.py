"""A raw HTTP/2 GET (prior knowledge) that sends its path byte for byte, which
httpx would refuse to: for targets with bytes no client should send."""

from __future__ import annotations

import asyncio

import h2.config
import h2.connection
import h2.events

__all__ = ["h2_get"]


async def h2_get(address: tuple[str, int], path: bytes) -> int:
    """The status of a GET of ``path`` (sent as it is) over HTTP/2 prior knowledge."""
    reader, writer = await asyncio.open_connection(*address)
    config = h2.config.H2Configuration(
        client_side=True, header_encoding=None, validate_outbound_headers=False
    )
    conn = h2.connection.H2Connection(config)
    conn.initiate_connection()
    headers = [(b":method", b"GET"), (b":path", path), (b":scheme", b"http"), (b":authority", b"x")]
    conn.send_headers(1, headers, end_stream=True)
    writer.write(conn.data_to_send())
    status = 0
    try:
        while not status:
            data = await asyncio.wait_for(reader.read(65536), 10)
            assert data, "the connection closed without an answer"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = int(dict(event.headers)[b":status"])
            writer.write(conn.data_to_send())
    finally:
        writer.close()
    return status
