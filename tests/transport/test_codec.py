"""The wire codec: every message round-trips, and bad input only ever raises CodecError."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from uhaha.raft.messages import (
    AppendRequest,
    Entry,
    Heartbeat,
    Message,
    ReadIndexRequest,
    TimeoutNow,
    VoteRequest,
)
from uhaha.transport.codec import (
    KEEPALIVE,
    VERSION,
    CodecError,
    FrameDecoder,
    decode,
    encode,
    encode_frame,
)

from .strategies import messages, one_of_each

# --- round trips -----------------------------------------------------------


@pytest.mark.parametrize("msg", one_of_each(), ids=lambda m: type(m).__name__)
def test_every_message_type_round_trips(msg: Message) -> None:
    wire = encode(msg)
    assert wire[0] == VERSION
    assert decode(wire) == msg
    assert type(decode(wire)) is type(msg)


def test_type_bytes_are_distinct() -> None:
    assert len({encode(m)[1] for m in one_of_each()}) == len(one_of_each())


@settings(max_examples=500)
@given(messages)
def test_random_messages_round_trip(msg: Message) -> None:
    assert decode(encode(msg)) == msg


@settings(max_examples=200)
@given(st.lists(messages, max_size=8), st.data())
def test_frames_survive_any_chunking(msgs: list[Message], data: st.DataObject) -> None:
    stream = b"".join(encode_frame(m) for m in msgs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    decoder = FrameDecoder()
    out: list[Message] = []
    for start, stop in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        out.extend(decoder.feed(stream[start:stop]))
    decoder.close()
    assert out == msgs
    assert decoder.buffered == 0


def test_an_abandoned_iterator_loses_nothing() -> None:
    msgs = one_of_each()
    decoder = FrameDecoder()
    it = decoder.feed(b"".join(encode_frame(m) for m in msgs))
    first = [next(it), next(it)]
    rest = list(decoder.feed(b""))
    assert first + rest == msgs


def test_a_large_frame_in_many_small_chunks() -> None:
    big = ReadIndexRequest(1, "a", "b", b"z" * 1_000_000)
    frame = encode_frame(big)
    decoder = FrameDecoder()
    out: list[Message] = []
    for start in range(0, len(frame), 1000):
        out.extend(decoder.feed(frame[start : start + 1000]))
        if start + 1000 < len(frame):
            assert not out
            assert decoder.buffered == start + 1000
    assert out == [big]
    assert decoder.buffered == 0


# --- canonical encoding: whatever decodes, re-encodes to the same bytes -------


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
@example(encode(one_of_each()[2]))
def test_garbage_raises_codec_error_or_is_canonical(buf: bytes) -> None:
    try:
        msg = decode(buf)
    except CodecError:
        return
    assert encode(msg) == buf


@settings(max_examples=500)
@given(messages, st.data())
def test_corrupted_messages_raise_codec_error_or_are_canonical(
    msg: Message, data: st.DataObject
) -> None:
    wire = bytearray(encode(msg))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(wire) - 1))
        wire[pos] = data.draw(st.integers(0, 255))
    try:
        got = decode(bytes(wire))
    except CodecError:
        return
    assert encode(got) == bytes(wire)


@settings(max_examples=300)
@given(messages, st.data())
def test_every_truncation_raises_codec_error(msg: Message, data: st.DataObject) -> None:
    wire = encode(msg)
    cut = data.draw(st.integers(0, len(wire) - 1))
    with pytest.raises(CodecError):
        decode(wire[:cut])


@settings(max_examples=500)
@given(st.binary(max_size=300), st.integers(1, 64))
def test_garbage_streams_raise_only_codec_error(stream: bytes, step: int) -> None:
    decoder = FrameDecoder(max_frame_size=1 << 16)
    out: list[Message] = []
    try:
        for start in range(0, len(stream), step):
            out.extend(decoder.feed(stream[start : start + step]))
        decoder.close()
    except CodecError:
        pass
    # Whatever was decoded re-encodes to the start of the stream.
    assert b"".join(map(encode_frame, out)) == stream[: sum(len(encode_frame(m)) for m in out)]


# --- specific malformations, each with a clear message ------------------------


def _hb() -> bytes:
    return encode(Heartbeat(1, "a", "b", 2, 3))


def test_wrong_version() -> None:
    with pytest.raises(CodecError, match="version 9"):
        decode(b"\x09" + _hb()[1:])


def test_unknown_type() -> None:
    for kind in (0, 12, 255):
        with pytest.raises(CodecError, match=f"unknown message type {kind}"):
            decode(bytes([VERSION, kind]) + _hb()[2:])


def test_empty_and_header_only() -> None:
    for buf in (b"", bytes([VERSION]), bytes([VERSION, 5])):
        with pytest.raises(CodecError, match="truncated"):
            decode(buf)


def test_trailing_bytes() -> None:
    with pytest.raises(CodecError, match="trailing"):
        decode(_hb() + b"\x00")


def test_invalid_utf8_in_ids() -> None:
    wire = encode(Heartbeat(1, "a", "b", 2, 3))
    bad = wire[:-2] + b"\xff" + wire[-1:]
    with pytest.raises(CodecError, match="UTF-8"):
        decode(bad)


def test_string_length_past_the_end() -> None:
    wire = bytearray(_hb())
    struct.pack_into(">H", wire, len(wire) - 6, 0xFFFF)  # the sender id's length
    with pytest.raises(CodecError, match="truncated"):
        decode(bytes(wire))


def test_top_bit_integers_are_refused() -> None:
    wire = bytearray(_hb())
    wire[2] |= 0x80  # the term's top bit: negative as a signed 64-bit integer
    with pytest.raises(CodecError, match="out of range"):
        decode(bytes(wire))


def test_unknown_flags_and_entry_kinds() -> None:
    wire = bytearray(encode(VoteRequest(1, "a", "b", 2, 3, pre=True)))
    wire[26] = 0x04  # the flags byte
    with pytest.raises(CodecError, match="flags"):
        decode(bytes(wire))
    app = AppendRequest(1, "a", "b", 0, 0, (Entry(1, 1, data=b"x"),), 0)
    wire = bytearray(encode(app))
    wire[-6] = 7  # the entry's kind
    with pytest.raises(CodecError, match="entry kind 7"):
        decode(bytes(wire))


def test_huge_entry_count_is_refused_before_looping() -> None:
    wire = bytearray(encode(AppendRequest(1, "a", "b", 0, 0, (), 0)))
    struct.pack_into(">I", wire, 38, 0xFFFFFFFF)
    with pytest.raises(CodecError, match="4294967295 declared"):
        decode(bytes(wire))


def test_negative_or_oversized_values_cannot_be_encoded() -> None:
    bad: list[Message] = [
        Heartbeat(-1, "a", "b", 0),
        Heartbeat(1, "a", "b", -5),
        Heartbeat(2**64, "a", "b", 0),
        AppendRequest(1, "a", "b", 0, 0, (Entry(-1, 1),), 0),
        TimeoutNow(1, "x" * 70000, "b"),
        TimeoutNow(1, "\ud800", "b"),
    ]
    for msg in bad:
        with pytest.raises(CodecError, match="cannot encode"):
            encode(msg)
    with pytest.raises(CodecError, match="not a Raft message"):
        encode("hello")  # type: ignore[arg-type]


# --- framing limits ----------------------------------------------------------


def test_oversize_frame_is_refused_from_its_header() -> None:
    decoder = FrameDecoder(max_frame_size=1000)
    with pytest.raises(CodecError, match="exceeds the limit of 1000"):
        list(decoder.feed(struct.pack(">I", 1001)))
    assert decoder.buffered == 0


def test_a_declared_huge_frame_is_never_buffered() -> None:
    decoder = FrameDecoder()
    with pytest.raises(CodecError, match="exceeds"):
        list(decoder.feed(b"\xff\xff\xff\xff" + b"\x00" * 100))


def test_nothing_after_a_bad_frame_is_delivered() -> None:
    good = encode_frame(Heartbeat(1, "a", "b", 0, 1))
    bad = struct.pack(">I", 3) + b"\x01\x05\x00"
    decoder = FrameDecoder()
    out: list[Message] = []
    with pytest.raises(CodecError, match="bad frame"):
        out.extend(decoder.feed(good + bad + good))
    assert out == [Heartbeat(1, "a", "b", 0, 1)]
    with pytest.raises(CodecError):  # the decoder stays failed
        list(decoder.feed(good))


def test_stream_ending_mid_frame() -> None:
    decoder = FrameDecoder()
    list(decoder.feed(encode_frame(Heartbeat(1, "a", "b", 0))[:-1]))
    with pytest.raises(CodecError, match="inside a frame"):
        decoder.close()


def test_empty_frames_are_keepalives() -> None:
    hb = Heartbeat(1, "a", "b", 0)
    decoder = FrameDecoder()
    assert list(decoder.feed(KEEPALIVE * 3)) == []
    assert list(decoder.feed(KEEPALIVE + encode_frame(hb) + KEEPALIVE + KEEPALIVE[:2])) == [hb]
    assert list(decoder.feed(KEEPALIVE[2:])) == []
    decoder.close()
