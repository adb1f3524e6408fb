"""Splitting an inline command line into arguments, the way Redis does.

`SET "a key" 'it''s'` style quoting follows Redis's `sdssplitargs`: double
quotes understand `\\n \\r \\t \\b \\a \\\\ \\"` and `\\xHH`; single quotes
only `\\'`; a closing quote must be followed by a space or the end of the
line; anything else is the protocol error "unbalanced quotes in request".
"""

from __future__ import annotations

from uhaha.resp.types import ProtocolError

__all__ = ["split_args"]

_SPACE = frozenset(b" \t\n\r\v\f")  # what bytes.split() splits on
_ESCAPES = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}
_HEX = frozenset(b"0123456789abcdefABCDEF")
_DQ, _SQ, _BS = ord('"'), ord("'"), ord("\\")
_UNBALANCED = "unbalanced quotes in request"


def split_args(line: bytes) -> list[bytes]:
    """Split one inline command line (without its line ending) into arguments."""
    if _DQ not in line and _SQ not in line:
        return line.split()  # the common case: no quoting at all
    args: list[bytes] = []
    pos, end = 0, len(line)
    while True:
        while pos < end and line[pos] in _SPACE:
            pos += 1
        if pos == end:
            return args
        arg, pos = _one_arg(line, pos)
        args.append(arg)


def _one_arg(line: bytes, pos: int) -> tuple[bytes, int]:
    out = bytearray()
    end = len(line)
    while pos < end:
        ch = line[pos]
        if ch in _SPACE:
            break
        if ch == _DQ:
            pos = _double_quoted(line, pos + 1, out)
        elif ch == _SQ:
            pos = _single_quoted(line, pos + 1, out)
        else:
            out.append(ch)
            pos += 1
    return bytes(out), pos


def _closing(line: bytes, pos: int) -> int:
    # After a closing quote there must be a separator or the end of the line.
    if pos < len(line) and line[pos] not in _SPACE:
        raise ProtocolError(_UNBALANCED)
    return pos


def _double_quoted(line: bytes, pos: int, out: bytearray) -> int:
    end = len(line)
    while pos < end:
        ch = line[pos]
        if ch == _BS and pos + 3 < end and line[pos + 1] == ord("x") and _is_hex(line, pos + 2):
            out.append(int(line[pos + 2 : pos + 4], 16))
            pos += 4
        elif ch == _BS and pos + 1 < end:
            nxt = line[pos + 1]
            out.append(_ESCAPES.get(nxt, nxt))
            pos += 2
        elif ch == _DQ:
            return _closing(line, pos + 1)
        else:
            out.append(ch)
            pos += 1
    raise ProtocolError(_UNBALANCED)


def _is_hex(line: bytes, pos: int) -> bool:
    return line[pos] in _HEX and line[pos + 1] in _HEX


def _single_quoted(line: bytes, pos: int, out: bytearray) -> int:
    end = len(line)
    while pos < end:
        ch = line[pos]
        if ch == _BS and pos + 1 < end and line[pos + 1] == _SQ:
            out.append(_SQ)
            pos += 2
        elif ch == _SQ:
            return _closing(line, pos + 1)
        else:
            out.append(ch)
            pos += 1
    raise ProtocolError(_UNBALANCED)
