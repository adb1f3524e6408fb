"""Encoding of reply values into RESP2 or RESP3 bytes.

The mapping follows Redis. RESP2 has no null, boolean, double or map type,
so there: None is a null bulk string (`$-1`), True/False are the integers 1
and 0, a float is a bulk string of its shortest decimal form, a mapping is a
flat array `[k1, v1, k2, v2, ...]` and a set an array. RESP3 uses `_`, `#`,
`,`, `%` and `~` for them. Integers are RESP integers (`:`) when they fit in
64 bits, as every client expects; larger ones are big numbers (`(`) in RESP3
and bulk strings in RESP2. `str` is sent as a UTF-8 bulk string.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence, Set
from typing import Any

from uhaha.resp.types import Error, Reply, SimpleString

__all__ = ["MAX_DEPTH", "encode", "encode_into"]

#: Deepest nesting accepted; deeper values (and cyclic ones) raise ValueError.
MAX_DEPTH = 64

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_NULL = {2: b"$-1\r\n", 3: b"_\r\n"}
_TRUE = {2: b":1\r\n", 3: b"#t\r\n"}
_FALSE = {2: b":0\r\n", 3: b"#f\r\n"}


def encode(value: Reply, proto: int = 2) -> bytes:
    """Return the RESP encoding of `value` for protocol version `proto` (2 or 3).

    Raises TypeError for a value with no RESP form and ValueError for one
    nested deeper than MAX_DEPTH.
    """
    out: list[bytes] = []
    encode_into(out, value, proto)
    return b"".join(out)


def encode_into(out: list[bytes], value: Reply, proto: int = 2, depth: int = 0) -> None:
    """Append the RESP encoding of `value` to `out` (the caller joins once)."""
    v: Any = value  # narrowed by the exact type tests below, which mypy cannot follow
    kind = type(v)
    # Exact-type checks first: they are the common case and are cheaper than
    # isinstance; bool must be tested before int, the str subclasses before str.
    if kind is bytes:
        out.append(b"$%d\r\n%b\r\n" % (len(v), v))
    elif kind is str:
        data = v.encode("utf-8", "surrogateescape")
        out.append(b"$%d\r\n%b\r\n" % (len(data), data))
    elif kind is SimpleString:
        out.append(b"+%b\r\n" % v.encode("utf-8", "surrogateescape"))
    elif kind is Error:
        out.append(b"-%b\r\n" % v.encode("utf-8", "surrogateescape"))
    elif kind is int:
        _encode_int(out, v, proto)
    elif v is None:
        out.append(_NULL[proto])
    elif kind is bool:
        out.append(_TRUE[proto] if v else _FALSE[proto])
    elif kind is float:
        text = _float_text(v).encode()
        out.append(b",%b\r\n" % text if proto == 3 else b"$%d\r\n%b\r\n" % (len(text), text))
    else:
        _encode_other(out, v, proto, depth)


def _encode_int(out: list[bytes], value: int, proto: int) -> None:
    if _INT64_MIN <= value <= _INT64_MAX:
        out.append(b":%d\r\n" % value)
    elif proto == 3:
        out.append(b"(%d\r\n" % value)
    else:
        text = b"%d" % value
        out.append(b"$%d\r\n%b\r\n" % (len(text), text))


def _float_text(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    # Redis prints integral doubles without a fraction ("3", not "3.0");
    # otherwise the shortest text that reads back to the same double.
    if value.is_integer() and abs(value) < 1e17:
        return str(int(value))
    return repr(value)


def _encode_other(out: list[bytes], value: Reply, proto: int, depth: int) -> None:
    if depth >= MAX_DEPTH:
        raise ValueError(f"reply nested deeper than {MAX_DEPTH} levels (or cyclic)")
    # Subclasses and the less common types: the order matters (Error and
    # SimpleString are str; bool is int; str and bytes are Sequences).
    if isinstance(value, Error):
        encode_into(out, Error(str(value)), proto)
    elif isinstance(value, SimpleString):
        encode_into(out, SimpleString(str(value)), proto)
    elif isinstance(value, bool):
        encode_into(out, bool(value), proto)
    elif isinstance(value, int):
        _encode_int(out, int(value), proto)
    elif isinstance(value, float):
        encode_into(out, float(value), proto)
    elif isinstance(value, str):
        encode_into(out, str(value), proto)
    elif isinstance(value, bytes | bytearray | memoryview):
        encode_into(out, bytes(value), proto)
    elif isinstance(value, Mapping):
        _encode_map(out, value, proto, depth + 1)
    elif isinstance(value, Set):
        out.append(b"%c%d\r\n" % (0x7E if proto == 3 else 0x2A, len(value)))
        for item in value:
            encode_into(out, item, proto, depth + 1)
    elif isinstance(value, Sequence):
        out.append(b"*%d\r\n" % len(value))
        for item in value:
            encode_into(out, item, proto, depth + 1)
    else:
        raise TypeError(f"cannot encode a {type(value).__name__} as a RESP reply")


def _encode_map(out: list[bytes], value: Mapping[Any, Reply], proto: int, depth: int) -> None:
    out.append(b"%%%d\r\n" % len(value) if proto == 3 else b"*%d\r\n" % (2 * len(value)))
    for key, item in value.items():
        encode_into(out, key, proto, depth)
        encode_into(out, item, proto, depth)
