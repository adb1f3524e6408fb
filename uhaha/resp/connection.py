"""A client connection as the dispatcher sees it, and the dispatcher's interface."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from uhaha.resp.types import Reply

__all__ = ["Connection", "RespDispatcher", "format_address"]


class Connection:
    """One RESP client connection.

    `context` is free for the application (uhaha's connection context: what
    intermediate commands keep per client); the other fields are maintained
    by the RESP layer: `protocol` is 2 or 3 (switched by HELLO),
    `authenticated` turns true after a successful AUTH (or from the start
    when no password is required), `name` is set by CLIENT SETNAME.
    """

    __slots__ = (
        "_close",
        "_push",
        "authenticated",
        "context",
        "feed",
        "id",
        "name",
        "protocol",
        "remote",
    )

    def __init__(
        self,
        conn_id: int,
        remote: str,
        close: Callable[[], None],
        push: Callable[[Any], None] | None = None,
    ) -> None:
        self.id = conn_id
        self.remote = remote
        self.protocol = 2
        self.authenticated = False
        self.name: str | None = None
        self.context: dict[str, Any] = {}
        self.feed = False
        """Set by MONITOR: the connection receives pushes, so it is never idle."""
        self._close = close
        self._push = push

    def close(self) -> None:
        """Close the connection once the replies already due have been written."""
        self._close()

    def push(self, value: Any) -> None:
        """Send a reply the client did not ask for (MONITOR's feed)."""
        if self._push is not None:
            self._push(value)

    def __repr__(self) -> str:
        return f"<Connection id={self.id} remote={self.remote} resp{self.protocol}>"


class RespDispatcher(Protocol):
    """What executes the commands of RESP clients (uhaha's dispatcher).

    `submit` is called synchronously, in the order the commands arrived on
    the connection, and may return the reply or an awaitable of it; replies
    are written in that same order whatever order the awaitables finish in.
    The dispatcher relies on submission order (a client's read submitted
    after its write sees that write). An exception, raised by `submit` or by
    the awaitable, becomes the reply `-ERR <message>` for that command only.
    """

    def submit(self, conn: Connection, args: list[bytes]) -> Reply | Awaitable[Reply]:
        """Start executing one command; `args[0]` is the command name, as sent."""
        ...

    def opened(self, conn: Connection) -> None:
        """A client connected (before its first command)."""
        ...

    def closed(self, conn: Connection) -> None:
        """A client's connection is gone; replies still owed to it are dropped."""
        ...


def format_address(address: object) -> str:
    """`host:port` (`[v6]:port`) of a socket address tuple; other values as str."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address) if address else "?"
