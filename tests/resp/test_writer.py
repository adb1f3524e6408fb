"""Reply encoding, RESP2 and RESP3, checked byte for byte and read back by hiredis."""

from __future__ import annotations

import math
from typing import Any

import hiredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uhaha.resp import Error, Reply, SimpleString, encode

CASES: list[tuple[Reply, bytes, bytes]] = [
    (None, b"$-1\r\n", b"_\r\n"),
    (True, b":1\r\n", b"#t\r\n"),
    (False, b":0\r\n", b"#f\r\n"),
    (0, b":0\r\n", b":0\r\n"),
    (-(2**63), b":-9223372036854775808\r\n", b":-9223372036854775808\r\n"),
    (2**63, b"$19\r\n9223372036854775808\r\n", b"(9223372036854775808\r\n"),
    (1.25, b"$4\r\n1.25\r\n", b",1.25\r\n"),
    (3.0, b"$1\r\n3\r\n", b",3\r\n"),
    (1e300, b"$6\r\n1e+300\r\n", b",1e+300\r\n"),
    (math.inf, b"$3\r\ninf\r\n", b",inf\r\n"),
    (-math.inf, b"$4\r\n-inf\r\n", b",-inf\r\n"),
    (math.nan, b"$3\r\nnan\r\n", b",nan\r\n"),
    ("é", b"$2\r\n\xc3\xa9\r\n", b"$2\r\n\xc3\xa9\r\n"),
    (b"", b"$0\r\n\r\n", b"$0\r\n\r\n"),
    (bytearray(b"ab"), b"$2\r\nab\r\n", b"$2\r\nab\r\n"),
    (SimpleString("OK"), b"+OK\r\n", b"+OK\r\n"),
    (SimpleString("a\r\nb"), b"+a b\r\n", b"+a b\r\n"),
    (Error("ERR bad\nthing"), b"-ERR bad thing\r\n", b"-ERR bad thing\r\n"),
    ([], b"*0\r\n", b"*0\r\n"),
    ((1, "a"), b"*2\r\n:1\r\n$1\r\na\r\n", b"*2\r\n:1\r\n$1\r\na\r\n"),
    ({"a": None}, b"*2\r\n$1\r\na\r\n$-1\r\n", b"%1\r\n$1\r\na\r\n_\r\n"),
    (frozenset({1}), b"*1\r\n:1\r\n", b"~1\r\n:1\r\n"),
    ([[[]]], b"*1\r\n*1\r\n*0\r\n", b"*1\r\n*1\r\n*0\r\n"),
]


@pytest.mark.parametrize(("value", "resp2", "resp3"), CASES)
def test_encoding(value: Reply, resp2: bytes, resp3: bytes) -> None:
    assert encode(value, 2) == resp2
    assert encode(value, 3) == resp3


def test_subclasses_encode_like_their_base() -> None:
    class Name(str):
        pass

    class Code(int):
        pass

    assert encode([Name("x"), Code(5)]) == b"*2\r\n$1\r\nx\r\n:5\r\n"


def test_values_without_a_resp_form_are_refused() -> None:
    with pytest.raises(TypeError, match="cannot encode a object"):
        encode([object()])  # type: ignore[list-item]
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(ValueError, match="nested deeper than"):
        encode(cyclic)


# Values whose hiredis reading is the value itself (after normalization).
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.binary(max_size=30),
    st.text(max_size=10),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.binary(max_size=5), inner, max_size=4),
    ),
    max_leaves=20,
)


def expected(value: Reply, proto: int) -> Any:
    """What hiredis reads back for `value` in protocol `proto`."""
    if isinstance(value, bool):
        return value if proto == 3 else int(value)
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, float):
        if proto == 3:
            return value
        return encode(value, 2).split(b"\r\n")[1]
    if isinstance(value, list):
        return [expected(v, proto) for v in value]
    if isinstance(value, dict):
        if proto == 3:
            return {k: expected(v, proto) for k, v in value.items()}
        return [x for k, v in value.items() for x in (k, expected(v, proto))]
    return value


@settings(max_examples=300, deadline=None)
@given(values, st.sampled_from([2, 3]))
def test_hiredis_reads_back_what_was_encoded(value: Reply, proto: int) -> None:
    reader = hiredis.Reader()
    reader.feed(encode(value, proto))
    got = reader.gets()
    assert reader.gets() is False  # exactly one reply, nothing left over
    assert got == expected(value, proto)


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False))
def test_floats_read_back_exactly(value: float) -> None:
    text = encode(value, 2).split(b"\r\n")[1]
    assert float(text) == value
