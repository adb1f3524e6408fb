"""What an application's log entries hold, byte for byte.

Two kinds, told apart by the first byte:

- ``C``: a batch of write commands (uhaha batches up to 256 per entry):
  ``C``, the count, then per command its argument count and each argument
  as a length and bytes (unsigned LEB128 varints throughout).
- ``T``: a tick, ``T`` then ``ts`` (nanoseconds) and ``seed`` as
  little-endian 64-bit integers: the leader's replicated time and seed.

Entries are decoded on every node, including on replay years later, so the
format is versioned by its first byte and decoding is strict.
"""

from __future__ import annotations

import struct

__all__ = ["EntryFormatError", "decode", "encode_batch", "encode_tick"]

BATCH = b"C"
TICK = b"T"
_TICK = struct.Struct("<qQ")


class EntryFormatError(ValueError):
    """An entry that this version cannot read."""


def _varint(n: int, out: bytearray) -> None:
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise EntryFormatError("truncated or oversized varint")
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, pos
        shift += 7


def encode_batch(commands: list[list[bytes]]) -> bytes:
    out = bytearray(BATCH)
    _varint(len(commands), out)
    for args in commands:
        _varint(len(args), out)
        for a in args:
            _varint(len(a), out)
            out += a
    return bytes(out)


def encode_tick(ts: int, seed: int) -> bytes:
    return TICK + _TICK.pack(ts, seed & 0xFFFF_FFFF_FFFF_FFFF)


def decode(data: bytes) -> tuple[int, int] | list[list[bytes]]:
    """A tick as ``(ts, seed)``, or a batch as a list of argument lists."""
    if data[:1] == TICK:
        if len(data) != 1 + _TICK.size:
            raise EntryFormatError("bad tick entry")
        ts, seed = _TICK.unpack_from(data, 1)
        return ts, seed
    if data[:1] != BATCH:
        raise EntryFormatError(f"unknown entry kind {data[:1]!r}")
    count, pos = _read_varint(data, 1)
    commands: list[list[bytes]] = []
    for _ in range(count):
        nargs, pos = _read_varint(data, pos)
        args = []
        for _ in range(nargs):
            size, pos = _read_varint(data, pos)
            end = pos + size
            if end > len(data):
                raise EntryFormatError("truncated argument")
            args.append(data[pos:end])
            pos = end
        commands.append(args)
    if pos != len(data):
        raise EntryFormatError("trailing bytes in a batch entry")
    return commands
