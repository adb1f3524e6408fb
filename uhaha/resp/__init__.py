"""The Redis protocol (RESP2 and RESP3) front end.

`RespParser` turns bytes into commands within explicit limits; `encode`
turns reply values into bytes; `RespHandler` serves connections, handing each
command to a `RespDispatcher` in arrival order and writing the replies in
that order.
"""

from uhaha.resp.commands import ServerInfo, secret_checker
from uhaha.resp.connection import Connection, RespDispatcher
from uhaha.resp.parser import ParserLimits, RespParser
from uhaha.resp.server import DEFAULT_MAX_PENDING, RespHandler, RespProtocol
from uhaha.resp.types import Error, ProtocolError, Reply, SimpleString
from uhaha.resp.writer import encode

__all__ = [
    "DEFAULT_MAX_PENDING",
    "Connection",
    "Error",
    "ParserLimits",
    "ProtocolError",
    "Reply",
    "RespDispatcher",
    "RespHandler",
    "RespParser",
    "RespProtocol",
    "ServerInfo",
    "SimpleString",
    "encode",
    "secret_checker",
]
