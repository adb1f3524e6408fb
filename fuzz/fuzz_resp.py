"""Fuzzing the RESP request parser (uhaha.resp.parser, inline.py) with any bytes.

The first byte of an input picks the limits (bit 7: the real defaults, else
small ones that the fuzzer can reach) and the chunk size (bits 0-5); the
rest is what a client sends. For every input:

- the parser returns commands or raises its ProtocolError, nothing else,
  and an error stays raised;
- fed whole or in chunks, the bytes give the same commands, the same error
  and, without an error, the same leftover;
- every command is a non-empty list of bytes within the limits, and what
  stays buffered is bounded by the limits whatever was sent;
- the commands, encoded by the RESP writer, parse back to themselves.

    python fuzz/fuzz_resp.py -runs=100000 /tmp/resp-new fuzz/corpus/resp
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a program: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fuzz.runner import fuzz, instrumented

with instrumented(__name__ == "__main__", "uhaha"):
    from uhaha.resp.parser import ParserLimits, RespParser
    from uhaha.resp.types import ProtocolError
    from uhaha.resp.writer import encode

__all__ = ["SMALL", "Parsed", "parse", "split_input", "test_one_input"]

#: Limits small enough for mutations to cross every one of them.
SMALL = ParserLimits(max_bulk=64, max_array=8, max_inline=96, max_request=300)
_HEADER_MAX = 24  # the parser's longest length header


@dataclass(frozen=True)
class Parsed:
    """What a parser made of a byte stream."""

    commands: list[list[bytes]]
    error: str | None
    buffered: int


def split_input(data: bytes) -> tuple[ParserLimits, int, bytes]:
    """(limits, chunk size, client bytes) from a fuzz input."""
    if not data:
        return SMALL, 1, b""
    limits = ParserLimits() if data[0] & 0x80 else SMALL
    return limits, (data[0] & 0x3F) + 1, data[1:]


def parse(data: bytes, chunk: int, limits: ParserLimits) -> Parsed:
    """Feed `data` in pieces of `chunk` bytes, taking every command after each."""
    parser = RespParser(limits)
    bound = max(limits.max_request, limits.max_inline + 1) + _HEADER_MAX + chunk
    commands: list[list[bytes]] = []
    try:
        for pos in range(0, len(data), chunk):
            parser.feed(data[pos : pos + chunk])
            while (args := parser.next_command()) is not None:
                _check_command(args, limits)
                commands.append(args)
            assert parser.buffered <= bound, f"{parser.buffered} bytes buffered"
    except ProtocolError as exc:
        error = str(exc)
        try:
            parser.next_command()
        except ProtocolError as again:
            assert str(again) == error, "the parser forgot its error"
        else:
            raise AssertionError("the parser went on after an error") from None
        return Parsed(commands, error, parser.buffered)
    return Parsed(commands, None, parser.buffered)


def _check_command(args: list[bytes], limits: ParserLimits) -> None:
    assert isinstance(args, list) and args, f"not a command: {args!r}"
    assert len(args) <= limits.max_array, f"{len(args)} arguments"
    longest = max(limits.max_bulk, limits.max_inline)
    for arg in args:
        assert type(arg) is bytes, f"an argument of type {type(arg).__name__}"
        assert len(arg) <= longest, f"an argument of {len(arg)} bytes"


def test_one_input(data: bytes) -> None:
    """The harness: see the module's docstring."""
    limits, chunk, stream = split_input(data)
    whole = parse(stream, max(1, len(stream)), limits)
    pieces = parse(stream, chunk, limits)
    assert pieces.commands == whole.commands, "chunking changed the commands"
    assert pieces.error == whole.error, f"chunking changed {whole.error!r} to {pieces.error!r}"
    if whole.error is None:
        assert pieces.buffered == whole.buffered, "chunking changed the leftover"
    if whole.commands:
        encoded = b"".join(encode(list(args)) for args in whole.commands)
        again = parse(encoded, len(encoded), ParserLimits())
        assert again == Parsed(whole.commands, None, 0), "the writer's encoding parsed otherwise"


if __name__ == "__main__":
    fuzz("resp", test_one_input)
