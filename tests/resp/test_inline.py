"""Inline command lines split as Redis's sdssplitargs does."""

from __future__ import annotations

import pytest

from uhaha.resp.inline import split_args
from uhaha.resp.types import ProtocolError


@pytest.mark.parametrize(
    ("line", "args"),
    [
        (b"", []),
        (b"   ", []),
        (b"PING", [b"PING"]),
        (b"  set  a\tb ", [b"set", b"a", b"b"]),
        (b"SET \"a key\" 'v'", [b"SET", b"a key", b"v"]),
        (b'"\\n\\r\\t\\b\\a\\\\\\"\\q"', [b'\n\r\t\b\a\\"q']),
        (b'"\\x41\\x4a\\x4"', [b"AJx4"]),
        (b"'it\\'s' '\\n'", [b"it's", b"\\n"]),
        (b'a"b c" d', [b"ab c", b"d"]),
        (b'""', [b""]),
    ],
)
def test_split(line: bytes, args: list[bytes]) -> None:
    assert split_args(line) == args


@pytest.mark.parametrize("line", [b'"open', b"'open", b'"a"b', b"'a'b", b'"\\', b'a"b c"d'])
def test_unbalanced(line: bytes) -> None:
    with pytest.raises(ProtocolError, match="unbalanced quotes in request"):
        split_args(line)
