"""A small RESP client, for a node talking to other nodes as a Redis client would
(joining a cluster: ``RAFT SERVER ADD`` sent to any member, following ``MOVED``).
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from typing import Any

import hiredis

from .cli import parse_address

__all__ = ["ReplyError", "RespClientError", "call"]


class RespClientError(Exception):
    """The server could not be reached or answered something unreadable."""


class ReplyError(Exception):
    """The server answered an error reply; ``str(e)`` is its text."""


def _encode(args: list[str]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        data = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


async def call(
    address: str,
    *commands: list[str],
    auth: str = "",
    ssl: ssl_module.SSLContext | None = None,
    timeout: float = 5.0,
) -> list[Any]:
    """Send ``commands`` on one connection; returns one reply each (a
    :class:`ReplyError` instance for error replies, not raised)."""
    host, port = parse_address(address)
    to_send = ([["AUTH", auth]] if auth else []) + list(commands)
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=ssl, server_hostname=host if ssl else None
            )
            try:
                writer.write(b"".join(_encode(c) for c in to_send))
                await writer.drain()
                parser = hiredis.Reader(replyError=ReplyError)
                replies: list[Any] = []
                while len(replies) < len(to_send):
                    data = await reader.read(65536)
                    if not data:
                        raise RespClientError(f"{address} closed the connection")
                    parser.feed(data)
                    while (reply := parser.gets()) is not False:
                        replies.append(reply)
            finally:
                writer.close()
    except TimeoutError:
        raise RespClientError(f"{address} did not answer within {timeout:g} s") from None
    except OSError as e:
        raise RespClientError(f"cannot reach {address}: {e.strerror or e}") from None
    except hiredis.ProtocolError as e:
        raise RespClientError(f"{address} answered garbage: {e}") from None
    if auth:
        if isinstance(replies[0], ReplyError):
            raise RespClientError(f"{address} refused the auth secret: {replies[0]}")
        replies = replies[1:]
    return replies
