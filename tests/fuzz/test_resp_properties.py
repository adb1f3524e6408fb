"""Properties of the RESP request parser, for any input (hypothesis).

- what the RESP writer encodes parses back to the same commands, in any chunking;
- Redis-style quoted inline lines parse back to their arguments;
- any bytes, in any chunking, give the same commands as one buffer, or the
  parser's ProtocolError and never another exception (the fuzz harness's checks);
- every limit is enforced exactly, with the error that names it, and before
  the bytes a header announces arrive.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz import fuzz_resp
from uhaha.resp import ParserLimits, ProtocolError, RespParser, encode

arguments = st.lists(st.binary(max_size=40), min_size=1, max_size=6)
commands = st.lists(arguments, max_size=8)
cuts = st.lists(st.integers(1, 64), max_size=40)


def feed(parser: RespParser, data: bytes, sizes: list[int]) -> list[list[bytes]]:
    """Feed `data` in pieces of `sizes` (then the rest), taking the commands out."""
    out: list[list[bytes]] = []
    pos = 0
    for size in [*sizes, len(data)]:
        parser.feed(data[pos : pos + size])
        pos += size
        while (args := parser.next_command()) is not None:
            out.append(args)
    return out


@settings(max_examples=200, deadline=None)
@given(commands, cuts)
def test_what_the_writer_encodes_parses_back_in_any_chunking(
    sent: list[list[bytes]], sizes: list[int]
) -> None:
    data = b"".join(encode(list(args)) for args in sent)
    parser = RespParser()
    assert feed(parser, data, sizes) == sent
    assert parser.buffered == 0


def quote(arg: bytes) -> bytes:
    """An argument as redis-cli would quote it in an inline command."""
    out = bytearray(b'"')
    for byte in arg:
        if byte in b'"\\':
            out += b"\\" + bytes([byte])
        elif 0x20 <= byte < 0x7F:
            out.append(byte)
        else:
            out += b"\\x%02x" % byte
    return bytes(out + b'"')


@settings(max_examples=200, deadline=None)
@given(st.lists(arguments, max_size=6), cuts, st.sampled_from([b"\r\n", b"\n"]))
def test_quoted_inline_lines_parse_back_to_their_arguments(
    lines: list[list[bytes]], sizes: list[int], end: bytes
) -> None:
    data = b"".join(b" ".join(quote(a) for a in args) + end for args in lines)
    assert feed(RespParser(), data, sizes) == lines


def _hostile() -> st.SearchStrategy[bytes]:
    pieces = st.sampled_from(
        [b"*", b"$", b"\r\n", b"\n", b"\r", b"-1", b"0", b"1", b"3", b"8", b"65",
         b"99999999999999999999", b"9223372036854775808", b"+", b":", b'"', b"'", b"\\x4",
         b"\\xff", b"PING", b"ECHO", b" ", b"\x00", b"\xff\xfe", b"*1\r\n", b"*2\r\n",
         b"$3\r\n", b"$0\r\n", b"abc", b"x" * 70]
    )  # fmt: skip
    return st.one_of(st.binary(max_size=300), st.lists(pieces, max_size=60).map(b"".join))


@settings(max_examples=400, deadline=None)
@given(_hostile(), st.integers(0, 0x3F), st.booleans())
def test_any_bytes_in_any_chunking_parse_alike_or_raise_the_protocol_error(
    data: bytes, chunk: int, real_limits: bool
) -> None:
    fuzz_resp.test_one_input(bytes([chunk | (0x80 if real_limits else 0)]) + data)


def expected_error(args: list[bytes], limits: ParserLimits) -> str | None:
    """The error a request of `args` must get under `limits`, if any."""
    if len(args) > limits.max_array:
        return f"multibulk length {len(args)} exceeds the limit of {limits.max_array}"
    end = len(b"*%d\r\n" % len(args))
    for arg in args:
        if len(arg) > limits.max_bulk:
            return f"bulk length {len(arg)} exceeds the limit of {limits.max_bulk} bytes"
        end += len(b"$%d\r\n" % len(arg)) + len(arg) + 2
        if end > limits.max_request:
            return f"request exceeds the limit of {limits.max_request} bytes"
    return None


small_limits = st.builds(
    ParserLimits,
    max_bulk=st.integers(0, 40),
    max_array=st.integers(1, 8),
    max_inline=st.integers(1, 80),
    max_request=st.integers(1, 200),
)


@settings(max_examples=300, deadline=None)
@given(small_limits, st.lists(st.binary(max_size=50), min_size=1, max_size=10))
def test_each_limit_is_enforced_exactly_and_named(limits: ParserLimits, args: list[bytes]) -> None:
    parser = RespParser(limits)
    parser.feed(encode(list(args)))
    error = expected_error(args, limits)
    if error is None:
        assert parser.next_command() == args
        return
    with pytest.raises(ProtocolError) as caught:
        parser.next_command()
    assert str(caught.value) == error


@settings(max_examples=100, deadline=None)
@given(small_limits, st.lists(st.binary(max_size=50), min_size=1, max_size=10))
def test_a_limit_is_enforced_before_the_announced_bytes_arrive(
    limits: ParserLimits, args: list[bytes]
) -> None:
    error = expected_error(args, limits)
    data = encode(list(args))
    # Up to the header that breaks the limit, and none of the data it announces.
    parser = RespParser(limits)
    cut = data.index(b"\r\n") + 2  # the array header
    if error is not None and "multibulk" not in error:
        for i, arg in enumerate(args):
            header = b"$%d\r\n" % len(arg)
            if expected_error(args[: i + 1], limits) is not None:
                cut += len(header)
                break
            cut += len(header) + len(arg) + 2
    parser.feed(data[:cut])
    if error is None:
        assert parser.next_command() is None  # still waiting for the arguments
        return
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        parser.next_command()


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 80), st.binary(min_size=1, max_size=200))
def test_an_inline_line_longer_than_its_limit_is_refused_without_its_end(
    max_inline: int, line: bytes
) -> None:
    line = b"A" + line.replace(b"\n", b"").replace(b"*", b"")  # an inline command, one line
    parser = RespParser(ParserLimits(max_inline=max_inline))
    parser.feed(line)  # no line ending yet
    if len(line) > max_inline:
        with pytest.raises(ProtocolError, match="too big inline request"):
            parser.next_command()
    else:
        assert parser.next_command() is None
        assert parser.buffered == len(line)
