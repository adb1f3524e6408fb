"""The request parser: framing, inline commands, limits, and properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.resp.doubles import command
from uhaha.resp import ParserLimits, ProtocolError, RespParser


def parse_all(data: bytes, limits: ParserLimits | None = None) -> list[list[bytes]]:
    parser = RespParser(limits)
    parser.feed(data)
    out = []
    while (args := parser.next_command()) is not None:
        out.append(args)
    return out


def test_arrays_inline_and_empty_requests() -> None:
    data = command("SET", "k", "v") + b"*0\r\n" + b"\r\n  \r\n" + b"GET k\n" + command("")
    assert parse_all(data) == [[b"SET", b"k", b"v"], [b"GET", b"k"], [b""]]


def test_binary_arguments_are_kept_exactly() -> None:
    value = bytes(range(256)) + b"\r\n*3\r\n"
    assert parse_all(command("SET", value)) == [[b"SET", value]]


def test_byte_by_byte_feeding_gives_the_same_commands() -> None:
    data = command("ECHO", "a\r\nb") + b"PING\r\n" + command("X")
    parser = RespParser()
    out = []
    for i in range(len(data)):
        parser.feed(data[i : i + 1])
        while (args := parser.next_command()) is not None:
            out.append(args)
    assert out == [[b"ECHO", b"a\r\nb"], [b"PING"], [b"X"]]
    assert parser.buffered == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"*-1\r\n", "invalid multibulk length -1"),
        (b"*abc\r\n", "invalid multibulk length"),
        (b"*+1\r\n", "invalid multibulk length"),
        (b"*" + b"9" * 30, "invalid multibulk length"),
        (b"*1\r\n$-1\r\n", "invalid bulk length -1"),
        (b"*1\r\n$1x\r\n", "invalid bulk length"),
        (b"*1\r\n+OK\r\n", "expected '$', got '+'"),
        (b"*1\r\n*1\r\n", "expected '$', got '*'"),
        (b"*1\r\n:1\r\n", "expected '$', got ':'"),
        (b"*1\r\n$1\r\nabc", "expected CRLF after bulk data"),
        (b"*2000000000\r\n", "multibulk length 2000000000 exceeds the limit of 1048576"),
        (
            b"*1\r\n$999999999999\r\n",
            "bulk length 999999999999 exceeds the limit of 67108864 bytes",
        ),
        (b"a" * 70_000, "too big inline request"),
        (b'SET "a\r\n', "unbalanced quotes in request"),
        (b"SET 'a'b\r\n", "unbalanced quotes in request"),
    ],
)
def test_protocol_errors(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_all(data)
    assert str(caught.value) == message


def test_a_request_may_not_exceed_the_total_limit() -> None:
    limits = ParserLimits(max_bulk=100, max_request=150)
    assert parse_all(command("A", "x" * 100), limits)  # 119 bytes
    # Refused from the second header, before its 100 bytes arrive.
    with pytest.raises(ProtocolError, match="request exceeds the limit of 150 bytes"):
        parse_all(b"*3\r\n$1\r\nA\r\n$100\r\n" + b"x" * 100 + b"\r\n$100\r\n", limits)


def test_an_error_is_sticky() -> None:
    parser = RespParser()
    parser.feed(b"*1\r\n:1\r\n")
    for _ in range(2):
        with pytest.raises(ProtocolError):
            parser.next_command()


def test_the_buffer_holds_only_what_is_unparsed() -> None:
    parser = RespParser()
    parser.feed(command("PING") * 1000 + b"*1\r\n$5\r\nab")
    while parser.next_command() is not None:
        pass
    assert parser.buffered == len(b"*1\r\n$5\r\nab")
    parser.feed(b"cde\r\n")
    assert parser.next_command() == [b"abcde"]
    assert parser.buffered == 0


def test_limits_can_change_between_commands() -> None:
    parser = RespParser(ParserLimits().unauthenticated())
    parser.feed(command("AUTH", "pw") + command(*["x"] * 11))
    assert parser.next_command() == [b"AUTH", b"pw"]
    parser.limits = ParserLimits()
    assert parser.next_command() == [b"x"] * 11


arguments = st.lists(st.binary(max_size=40), min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.lists(arguments, max_size=8), st.lists(st.integers(1, 50), max_size=30))
def test_encoded_commands_round_trip_in_any_chunking(
    commands: list[list[bytes]], cuts: list[int]
) -> None:
    data = b"".join(command(*args) for args in commands)
    parser = RespParser()
    out: list[list[bytes]] = []
    pos = 0
    for size in [*cuts, len(data)]:
        parser.feed(data[pos : pos + size])
        pos += size
        while (args := parser.next_command()) is not None:
            out.append(args)
    assert out == commands


inline_words = st.lists(
    st.binary(min_size=1, max_size=10).filter(lambda w: not set(w) & set(b" \t\r\n\v\f\"'")),
    min_size=1,
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(inline_words, max_size=6))
def test_plain_inline_lines_split_on_spaces(lines: list[list[bytes]]) -> None:
    lines = [words for words in lines if not words[0].startswith(b"*")]  # `*` opens an array
    data = b"".join(b" ".join(words) + b"\r\n" for words in lines)
    assert parse_all(data) == lines


def _hostile() -> st.SearchStrategy[bytes]:
    pieces = st.sampled_from(
        [b"*", b"$", b"\r\n", b"\n", b"-1", b"0", b"3", b"99999999999", b"+", b":", b'"', b"'",
         b"\\x4", b"PING", b" ", b"\x00", b"*1\r\n", b"$3\r\n", b"abc"]
    )  # fmt: skip
    return st.one_of(st.binary(max_size=200), st.lists(pieces, max_size=40).map(b"".join))


@settings(max_examples=500, deadline=None)
@given(_hostile(), st.integers(1, 64))
def test_any_bytes_parse_or_raise_only_the_protocol_error(data: bytes, chunk: int) -> None:
    limits = ParserLimits(max_bulk=64, max_array=8, max_inline=64, max_request=256)
    parser = RespParser(limits)
    try:
        for pos in range(0, len(data), chunk):
            parser.feed(data[pos : pos + chunk])
            while (args := parser.next_command()) is not None:
                assert args and all(isinstance(a, bytes) for a in args)
                assert len(args) <= 8
        # What stays buffered is bounded by the limits, whatever was sent.
        assert parser.buffered <= 256 + chunk
    except ProtocolError:
        pass
