"""Reply value types of the RESP layer, and its protocol error.

A reply is a plain Python value (see `Reply`) or one of the two wrappers
below, which carry the RESP types Python has no value for: a simple string
(`+OK`) and an error (`-ERR ...`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from typing import Any, TypeAlias

__all__ = ["Error", "ProtocolError", "Reply", "SimpleString"]


def _one_line(text: str) -> str:
    # RESP simple strings and errors end at the first CR or LF, so a line
    # break inside would let a reply forge the next one. Redis replaces them
    # with spaces in error replies; we do the same for both types.
    if "\r" in text or "\n" in text:
        return text.replace("\r\n", " ").replace("\r", " ").replace("\n", " ")
    return text


class SimpleString(str):
    """A RESP simple string, such as `+OK` or `+PONG` (one line of text)."""

    __slots__ = ()

    def __new__(cls, text: str = "OK") -> SimpleString:
        return super().__new__(cls, _one_line(text))


class Error(str):
    """A RESP error reply. The text starts with its code: `Error("ERR no such key")`.

    Clients read the first word as the error kind (`ERR`, `NOAUTH`, `MOVED`,
    `WRONGPASS` ...). Line breaks are replaced by spaces.
    """

    __slots__ = ()

    def __new__(cls, text: str) -> Error:
        return super().__new__(cls, _one_line(text))

    @property
    def code(self) -> str:
        """The first word of the error (`ERR`, `NOAUTH` ...)."""
        return self.split(" ", 1)[0]


class ProtocolError(ValueError):
    """The client sent bytes that are not a valid RESP request.

    The message reads like Redis's (`invalid bulk length`, `too big inline
    request` ...); the server replies `-ERR Protocol error: <message>` and
    closes that connection.
    """


# What a command may return, mapped to RESP like Redis does (see writer.py):
# None, bool, int, float, str/bytes (bulk strings), SimpleString, Error,
# sequences (arrays), mappings (maps), sets, nested freely.
Reply: TypeAlias = (
    bool
    | int
    | float
    | str
    | bytes
    | bytearray
    | memoryview
    | Sequence["Reply"]
    | Mapping[Any, "Reply"]
    | Set[Any]
    | None
)
