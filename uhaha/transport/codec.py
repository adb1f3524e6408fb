"""The peer wire format: a compact binary encoding of Raft messages, and its framing.

A message is encoded as::

    version:u8  type:u8  <fixed-width fields>  <length-prefixed variable fields>

Every message starts with one fixed-width block packed by a single
:class:`struct.Struct` call, holding the version and type bytes, the sender's
term, every integer field, a flags byte for the booleans, and the lengths of
the variable fields that follow it (node ids, byte strings, entries). Fixed
widths rather than varints because ``struct`` packs a whole block in C, while a
varint costs a Python loop per integer: on this hot path that is a few times
slower for a saving of about 20% on a typical append (whose size is dominated
by entry data anyway).

Integers (terms, indexes, offsets, sizes) are big-endian 64-bit values in
``[0, 2**63)``: :func:`encode` refuses a negative one, and :func:`decode`
refuses one with the top bit set (it would be negative as the signed 64-bit
integer every store keeps). Node ids and addresses are UTF-8 with a
16-bit length; byte strings (entry data, read contexts, snapshot data) have a
32-bit length. Entries are ``(term, index, kind, data)``; a snapshot's
configuration is its list of ``(id, address, voter)`` members.

The encoding is canonical: :func:`decode` rejects trailing bytes, unknown flag
bits, unknown entry kinds and invalid UTF-8, so any buffer it accepts encodes
back to exactly the same bytes.

A *frame* is a 4-byte big-endian length followed by one encoded message. A
frame of length zero carries nothing: it is a keepalive (:data:`KEEPALIVE`),
which a writer sends on an idle stream so that a broken connection shows up
without waiting for the next message. :class:`FrameDecoder` turns a byte
stream, fed in arbitrary chunks, back into messages, refusing frames longer
than its ``max_frame_size`` before buffering them. Every malformed input
raises :class:`CodecError` and nothing else.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import Final, NoReturn

from uhaha.raft.messages import (
    AppendRequest,
    AppendResponse,
    Configuration,
    Entry,
    EntryKind,
    Heartbeat,
    HeartbeatResponse,
    Member,
    Message,
    ReadIndexRequest,
    ReadIndexResponse,
    SnapshotChunk,
    SnapshotMeta,
    SnapshotResponse,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "KEEPALIVE",
    "VERSION",
    "CodecError",
    "FrameDecoder",
    "decode",
    "encode",
    "encode_frame",
]

VERSION: Final = 1
"""The wire format version, the first byte of every encoded message."""

DEFAULT_MAX_FRAME_SIZE: Final = 64 << 20
"""Frames longer than this (64 MiB) are refused unless a decoder is told otherwise."""


KEEPALIVE: Final = b"\x00\x00\x00\x00"
"""An empty frame, skipped by :class:`FrameDecoder`."""


class CodecError(ValueError):
    """Raised for any input that is not a well-formed message or frame (and for
    messages that cannot be encoded, such as negative or oversized integers)."""


# Type bytes. Never renumber: they are on the wire.
_VOTE_REQ, _VOTE_RESP, _APP_REQ, _APP_RESP, _HB, _HB_RESP = 1, 2, 3, 4, 5, 6
_SNAP_CHUNK, _SNAP_RESP, _TIMEOUT_NOW, _READ_REQ, _READ_RESP = 7, 8, 9, 10, 11


class _Layout:
    """One fixed-width block, packed unsigned (so that struct itself refuses a
    negative integer while encoding, at no extra cost) and unpacked signed (so
    that a value of 2**63 or more, which no store could hold, reads as negative
    and is refused while decoding)."""

    __slots__ = ("pack", "size", "unpack_from")

    def __init__(self, fmt: str) -> None:
        self.pack = struct.Struct(fmt.replace("q", "Q")).pack
        decoder = struct.Struct(fmt)
        self.unpack_from = decoder.unpack_from
        self.size = decoder.size


# One fixed block per type: version, type, term, other integers, flags, then the
# lengths of the variable fields (H for node ids, I for byte strings and counts).
_S_VOTE_REQ: Final = _Layout(">BBqqqBHH")  # last_index, last_term, flags
_S_VOTE_RESP: Final = _Layout(">BBqBHH")  # flags
_S_APP_REQ: Final = _Layout(">BBqqqqHHI")  # prev_index, prev_term, commit, n entries
_S_APP_RESP: Final = _Layout(">BBqqqqBHH")  # index, hint_index, hint_term, flags
_S_HB: Final = _Layout(">BBqqqHH")  # commit, seq
_S_HB_RESP: Final = _Layout(">BBqqHH")  # seq
_S_SNAP_CHUNK: Final = _Layout(">BBqqqqqBHHHI")  # offset, index, term, size, flags, members
_S_SNAP_RESP: Final = _Layout(">BBqqqHH")  # index, next_offset
_S_TIMEOUT_NOW: Final = _Layout(">BBqHH")
_S_READ_REQ: Final = _Layout(">BBqHHI")  # ctx
_S_READ_RESP: Final = _Layout(">BBqqHHI")  # index, ctx
_S_ENTRY: Final = _Layout(">qqBI")  # term, index, kind, data length
_S_MEMBER: Final = _Layout(">HHB")  # id length, address length, voter
_S_LEN: Final = struct.Struct(">I")

_KINDS: Final = tuple(EntryKind)
_MAX_KIND: Final = len(_KINDS) - 1
assert all(k == i for i, k in enumerate(_KINDS)), "entry kinds must be 0..n-1"

# --- encoding --------------------------------------------------------------


def _enc_vote_req(m: VoteRequest) -> bytes:
    frm, to = m.frm.encode(), m.to.encode()
    flags = (1 if m.pre else 0) | (2 if m.transfer else 0)
    head = _S_VOTE_REQ.pack(
        VERSION, _VOTE_REQ, m.term, m.last_index, m.last_term, flags, len(frm), len(to)
    )
    return head + frm + to


def _enc_vote_resp(m: VoteResponse) -> bytes:
    frm, to = m.frm.encode(), m.to.encode()
    flags = (1 if m.granted else 0) | (2 if m.pre else 0)
    return _S_VOTE_RESP.pack(VERSION, _VOTE_RESP, m.term, flags, len(frm), len(to)) + frm + to


def _enc_app_req(m: AppendRequest) -> bytes:
    frm, to = m.frm.encode(), m.to.encode()
    entries = m.entries
    parts = [
        _S_APP_REQ.pack(
            VERSION,
            _APP_REQ,
            m.term,
            m.prev_index,
            m.prev_term,
            m.commit,
            len(frm),
            len(to),
            len(entries),
        ),
        frm,
        to,
    ]
    pack = _S_ENTRY.pack
    for e in entries:
        data = e.data
        parts.append(pack(e.term, e.index, e.kind, len(data)))
        parts.append(data)
    return b"".join(parts)


def _enc_app_resp(m: AppendResponse) -> bytes:
    frm, to = m.frm.encode(), m.to.encode()
    head = _S_APP_RESP.pack(
        VERSION,
        _APP_RESP,
        m.term,
        m.index,
        m.hint_index,
        m.hint_term,
        1 if m.reject else 0,
        len(frm),
        len(to),
    )
    return head + frm + to


def _enc_hb(m: Heartbeat) -> bytes:
    frm, to = m.frm.encode(), m.to.encode()
    return _S_HB.pack(VERSION, _HB, m.term, m.commit, m.seq, len(frm), len(to)) + frm + to


def _enc_hb_resp(m: HeartbeatResponse) -> bytes:
    frm, to = m.frm.encode(), m.to.encode()
    return _S_HB_RESP.pack(VERSION, _HB_RESP, m.term, m.seq, len(frm), len(to)) + frm + to


def _enc_snap_chunk(m: SnapshotChunk) -> bytes:
    frm, to = m.frm.encode(), m.to.encode()
    meta = m.meta
    members = meta.config.members
    parts = [
        _S_SNAP_CHUNK.pack(
            VERSION,
            _SNAP_CHUNK,
            m.term,
            m.offset,
            meta.index,
            meta.term,
            meta.size,
            1 if m.done else 0,
            len(frm),
            len(to),
            len(members),
            len(m.data),
        ),
        frm,
        to,
    ]
    for member in members:
        mid, addr = member.id.encode(), member.address.encode()
        parts += (_S_MEMBER.pack(len(mid), len(addr), 1 if member.voter else 0), mid, addr)
    parts.append(m.data)
    return b"".join(parts)


def _enc_snap_resp(m: SnapshotResponse) -> bytes:
    frm, to = m.frm.encode(), m.to.encode()
    head = _S_SNAP_RESP.pack(VERSION, _SNAP_RESP, m.term, m.index, m.next_offset, len(frm), len(to))
    return head + frm + to


def _enc_timeout_now(m: TimeoutNow) -> bytes:
    frm, to = m.frm.encode(), m.to.encode()
    return _S_TIMEOUT_NOW.pack(VERSION, _TIMEOUT_NOW, m.term, len(frm), len(to)) + frm + to


def _enc_read_req(m: ReadIndexRequest) -> bytes:
    frm, to = m.frm.encode(), m.to.encode()
    head = _S_READ_REQ.pack(VERSION, _READ_REQ, m.term, len(frm), len(to), len(m.ctx))
    return head + frm + to + m.ctx


def _enc_read_resp(m: ReadIndexResponse) -> bytes:
    frm, to = m.frm.encode(), m.to.encode()
    head = _S_READ_RESP.pack(VERSION, _READ_RESP, m.term, m.index, len(frm), len(to), len(m.ctx))
    return head + frm + to + m.ctx


_ENCODERS: Final[dict[type, Callable[[object], bytes]]] = {
    VoteRequest: _enc_vote_req,  # type: ignore[dict-item]
    VoteResponse: _enc_vote_resp,  # type: ignore[dict-item]
    AppendRequest: _enc_app_req,  # type: ignore[dict-item]
    AppendResponse: _enc_app_resp,  # type: ignore[dict-item]
    Heartbeat: _enc_hb,  # type: ignore[dict-item]
    HeartbeatResponse: _enc_hb_resp,  # type: ignore[dict-item]
    SnapshotChunk: _enc_snap_chunk,  # type: ignore[dict-item]
    SnapshotResponse: _enc_snap_resp,  # type: ignore[dict-item]
    TimeoutNow: _enc_timeout_now,  # type: ignore[dict-item]
    ReadIndexRequest: _enc_read_req,  # type: ignore[dict-item]
    ReadIndexResponse: _enc_read_resp,  # type: ignore[dict-item]
}


def encode(msg: Message) -> bytes:
    """Encode one message (without a frame header).

    Raises :class:`CodecError` if the message cannot be represented: a negative
    integer or one that does not fit in 64 bits, a node id or address longer
    than 65,535 bytes in UTF-8, or a string that cannot be encoded.
    """
    enc = _ENCODERS.get(type(msg))
    if enc is None:
        raise CodecError(f"cannot encode {type(msg).__name__}: not a Raft message")
    try:
        return enc(msg)
    except (struct.error, UnicodeError, AttributeError, TypeError) as exc:
        raise CodecError(f"cannot encode {type(msg).__name__}: {exc}") from None


def encode_frame(msg: Message) -> bytes:
    """Encode one message as a frame: its 4-byte big-endian length, then :func:`encode`."""
    body = encode(msg)
    return _S_LEN.pack(len(body)) + body


# --- decoding --------------------------------------------------------------
#
# Each decoder reads the message in buf[pos:end], from its version byte (the
# fixed block includes the version and type), and must consume exactly that.
# Bounds are checked against ``end`` explicitly because a frame usually sits in
# the middle of a larger buffer, where struct's own checks would not catch an
# overrun into the next frame.


def _short(what: str) -> CodecError:
    return CodecError(f"truncated {what}")


def _fixed(s: _Layout, buf: bytes, pos: int, end: int, what: str) -> tuple[int, ...]:
    if end - pos < s.size:
        raise _short(what)
    return s.unpack_from(buf, pos)


def _ids(buf: bytes, pos: int, end: int, lf: int, lt: int) -> tuple[str, str, int]:
    """Decode two strings (node ids, or a member's id and address) starting at
    ``pos``; return them and the position after them."""
    mid = pos + lf
    stop = mid + lt
    if stop > end:
        raise _short("node id or address")
    return buf[pos:mid].decode(), buf[mid:stop].decode(), stop


def _done(pos: int, end: int, what: str) -> None:
    if pos > end:
        raise _short(what)
    if pos < end:
        raise CodecError(f"{end - pos} trailing bytes after {what}")


def _no_negatives(values: tuple[int, ...], what: str) -> None:
    if min(values) < 0:
        raise CodecError(f"integer out of range (negative, or 2**63 or more) in {what}")


def _dec_vote_req(buf: bytes, pos: int, end: int) -> VoteRequest:
    w = "VoteRequest"
    f = _fixed(_S_VOTE_REQ, buf, pos, end, w)
    _no_negatives(f, w)
    _, _, term, last_index, last_term, flags, lf, lt = f
    if flags > 3:
        raise CodecError(f"unknown flags {flags:#x} in {w}")
    frm, to, p = _ids(buf, pos + _S_VOTE_REQ.size, end, lf, lt)
    _done(p, end, w)
    return VoteRequest(term, frm, to, last_index, last_term, bool(flags & 1), bool(flags & 2))


def _dec_vote_resp(buf: bytes, pos: int, end: int) -> VoteResponse:
    w = "VoteResponse"
    f = _fixed(_S_VOTE_RESP, buf, pos, end, w)
    _no_negatives(f, w)
    _, _, term, flags, lf, lt = f
    if flags > 3:
        raise CodecError(f"unknown flags {flags:#x} in {w}")
    frm, to, p = _ids(buf, pos + _S_VOTE_RESP.size, end, lf, lt)
    _done(p, end, w)
    return VoteResponse(term, frm, to, bool(flags & 1), bool(flags & 2))


def _dec_app_req(buf: bytes, pos: int, end: int) -> AppendRequest:
    w = "AppendRequest"
    f = _fixed(_S_APP_REQ, buf, pos, end, w)
    _no_negatives(f, w)
    _, _, term, prev_index, prev_term, commit, lf, lt, count = f
    frm, to, p = _ids(buf, pos + _S_APP_REQ.size, end, lf, lt)
    # Each entry needs at least its fixed block: refuse a count the frame
    # cannot hold before looping over it.
    esize = _S_ENTRY.size
    if count * esize > end - p:
        raise _short(f"{w} entries ({count} declared)")
    unpack = _S_ENTRY.unpack_from
    kinds = _KINDS
    entries = []
    for _ in range(count):
        if end - p < esize:
            raise _short(f"{w} entry")
        eterm, eindex, kind, n = unpack(buf, p)
        p += esize
        stop = p + n
        if stop > end:
            raise _short(f"{w} entry data")
        if eterm < 0 or eindex < 0:
            raise CodecError(f"integer out of range (negative, or 2**63 or more) in {w} entry")
        if kind > _MAX_KIND:
            raise CodecError(f"unknown entry kind {kind}")
        entries.append(Entry(eterm, eindex, kinds[kind], buf[p:stop]))
        p = stop
    _done(p, end, w)
    return AppendRequest(term, frm, to, prev_index, prev_term, tuple(entries), commit)


def _dec_app_resp(buf: bytes, pos: int, end: int) -> AppendResponse:
    w = "AppendResponse"
    f = _fixed(_S_APP_RESP, buf, pos, end, w)
    _no_negatives(f, w)
    _, _, term, index, hint_index, hint_term, flags, lf, lt = f
    if flags > 1:
        raise CodecError(f"unknown flags {flags:#x} in {w}")
    frm, to, p = _ids(buf, pos + _S_APP_RESP.size, end, lf, lt)
    _done(p, end, w)
    return AppendResponse(term, frm, to, index, bool(flags), hint_index, hint_term)


def _dec_hb(buf: bytes, pos: int, end: int) -> Heartbeat:
    w = "Heartbeat"
    f = _fixed(_S_HB, buf, pos, end, w)
    _no_negatives(f, w)
    _, _, term, commit, seq, lf, lt = f
    frm, to, p = _ids(buf, pos + _S_HB.size, end, lf, lt)
    _done(p, end, w)
    return Heartbeat(term, frm, to, commit, seq)


def _dec_hb_resp(buf: bytes, pos: int, end: int) -> HeartbeatResponse:
    w = "HeartbeatResponse"
    f = _fixed(_S_HB_RESP, buf, pos, end, w)
    _no_negatives(f, w)
    _, _, term, seq, lf, lt = f
    frm, to, p = _ids(buf, pos + _S_HB_RESP.size, end, lf, lt)
    _done(p, end, w)
    return HeartbeatResponse(term, frm, to, seq)


def _dec_members(buf: bytes, p: int, end: int, count: int) -> tuple[tuple[Member, ...], int]:
    w = "snapshot configuration"
    msize = _S_MEMBER.size
    if count * msize > end - p:
        raise _short(f"{w} ({count} members declared)")
    members = []
    for _ in range(count):
        if end - p < msize:
            raise _short(w)
        li, la, voter = _S_MEMBER.unpack_from(buf, p)
        if voter > 1:
            raise CodecError(f"bad voter flag {voter} in {w}")
        mid, addr, p = _ids(buf, p + msize, end, li, la)
        members.append(Member(mid, addr, voter == 1))
    return tuple(members), p


def _dec_snap_chunk(buf: bytes, pos: int, end: int) -> SnapshotChunk:
    w = "SnapshotChunk"
    f = _fixed(_S_SNAP_CHUNK, buf, pos, end, w)
    _no_negatives(f, w)
    _, _, term, offset, index, sterm, size, flags, lf, lt, count, ldata = f
    if flags > 1:
        raise CodecError(f"unknown flags {flags:#x} in {w}")
    frm, to, p = _ids(buf, pos + _S_SNAP_CHUNK.size, end, lf, lt)
    members, p = _dec_members(buf, p, end, count)
    stop = p + ldata
    if stop > end:
        raise _short(f"{w} data")
    _done(stop, end, w)
    meta = SnapshotMeta(index, sterm, Configuration(members), size)
    return SnapshotChunk(term, frm, to, meta, offset, buf[p:stop], bool(flags))


def _dec_snap_resp(buf: bytes, pos: int, end: int) -> SnapshotResponse:
    w = "SnapshotResponse"
    f = _fixed(_S_SNAP_RESP, buf, pos, end, w)
    _no_negatives(f, w)
    _, _, term, index, next_offset, lf, lt = f
    frm, to, p = _ids(buf, pos + _S_SNAP_RESP.size, end, lf, lt)
    _done(p, end, w)
    return SnapshotResponse(term, frm, to, index, next_offset)


def _dec_timeout_now(buf: bytes, pos: int, end: int) -> TimeoutNow:
    w = "TimeoutNow"
    f = _fixed(_S_TIMEOUT_NOW, buf, pos, end, w)
    _no_negatives(f, w)
    _, _, term, lf, lt = f
    frm, to, p = _ids(buf, pos + _S_TIMEOUT_NOW.size, end, lf, lt)
    _done(p, end, w)
    return TimeoutNow(term, frm, to)


def _dec_read_req(buf: bytes, pos: int, end: int) -> ReadIndexRequest:
    w = "ReadIndexRequest"
    f = _fixed(_S_READ_REQ, buf, pos, end, w)
    _no_negatives(f, w)
    _, _, term, lf, lt, lc = f
    frm, to, p = _ids(buf, pos + _S_READ_REQ.size, end, lf, lt)
    _done(p + lc, end, w)
    return ReadIndexRequest(term, frm, to, buf[p:end])


def _dec_read_resp(buf: bytes, pos: int, end: int) -> ReadIndexResponse:
    w = "ReadIndexResponse"
    f = _fixed(_S_READ_RESP, buf, pos, end, w)
    _no_negatives(f, w)
    _, _, term, index, lf, lt, lc = f
    frm, to, p = _ids(buf, pos + _S_READ_RESP.size, end, lf, lt)
    _done(p + lc, end, w)
    return ReadIndexResponse(term, frm, to, buf[p:end], index)


_Decoder = Callable[[bytes, int, int], Message]
# Indexed by type byte; slot 0 is unused.
_DECODERS: Final[tuple[_Decoder | None, ...]] = (
    None,
    _dec_vote_req,
    _dec_vote_resp,
    _dec_app_req,
    _dec_app_resp,
    _dec_hb,
    _dec_hb_resp,
    _dec_snap_chunk,
    _dec_snap_resp,
    _dec_timeout_now,
    _dec_read_req,
    _dec_read_resp,
)


def _decode_range(buf: bytes, pos: int, end: int) -> Message:
    if end - pos < 2:
        raise _short("message header")
    version = buf[pos]
    if version != VERSION:
        raise CodecError(f"unsupported codec version {version} (expected {VERSION})")
    kind = buf[pos + 1]
    dec = _DECODERS[kind] if kind < len(_DECODERS) else None
    if dec is None:
        raise CodecError(f"unknown message type {kind}")
    try:
        return dec(buf, pos, end)
    except UnicodeDecodeError as exc:
        raise CodecError(f"invalid UTF-8 in node id or address: {exc.reason}") from None


def decode(buf: bytes) -> Message:
    """Decode exactly one encoded message (without a frame header).

    Raises :class:`CodecError` if ``buf`` is not exactly one well-formed message.
    """
    if not isinstance(buf, bytes):
        buf = bytes(buf)
    return _decode_range(buf, 0, len(buf))


# --- framing ---------------------------------------------------------------


class FrameDecoder:
    """Reassembles frames from a byte stream fed in arbitrary chunks.

    :meth:`feed` returns an iterator of the messages completed so far. Bytes are
    only buffered once a frame's length has been checked against
    ``max_frame_size``, so a peer cannot make the decoder hold more than one
    maximum frame (plus the chunk being fed). After the first malformed frame
    the decoder is *failed*: that call and every later one raise
    :class:`CodecError`, so nothing after the bad frame is ever delivered.

    The iterator may be abandoned early; the messages it did not yield are
    yielded by the next one.
    """

    __slots__ = ("_buf", "_error", "_max", "_need", "_parts", "_parts_size", "_pos")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        if max_frame_size < 2:
            raise ValueError("max_frame_size must allow at least a message header")
        self._max = max_frame_size
        # Unparsed bytes are buf[pos:] followed by the chunks in parts (kept
        # apart so that a large frame arriving in many chunks is joined once,
        # when complete, instead of being copied at every chunk).
        self._buf = b""
        self._pos = 0
        self._parts: list[bytes] = []
        self._parts_size = 0
        # Unparsed bytes needed before parsing can make progress.
        self._need = 4
        self._error: str | None = None

    @property
    def max_frame_size(self) -> int:
        return self._max

    @property
    def buffered(self) -> int:
        """How many bytes are held waiting for the rest of a frame."""
        return len(self._buf) - self._pos + self._parts_size

    def feed(self, data: bytes) -> Iterator[Message]:
        """Add ``data`` to the stream; iterate over the messages it completes."""
        if self._error is not None:
            raise CodecError(self._error)
        if data:
            self._parts.append(bytes(data))
            self._parts_size += len(data)
        return self._frames()

    def close(self) -> None:
        """Declare the end of the stream: raise :class:`CodecError` if it ends mid-frame."""
        if self._error is not None:
            raise CodecError(self._error)
        if self.buffered:
            self._fail(f"stream ended inside a frame ({self.buffered} bytes pending)")

    def _fail(self, reason: str) -> NoReturn:
        self._error = reason
        self._buf, self._pos, self._parts, self._parts_size = b"", 0, [], 0
        raise CodecError(reason)

    def _frames(self) -> Iterator[Message]:
        while True:
            if self._error is not None:
                raise CodecError(self._error)
            buf, pos = self._buf, self._pos
            avail = len(buf) - pos
            if avail < self._need:
                if avail + self._parts_size < self._need:
                    return
                # Enough bytes in total: join the remainder and the new chunks.
                parts = self._parts
                buf = b"".join([buf[pos:], *parts]) if avail else b"".join(parts)
                pos, avail = 0, len(buf)
                parts.clear()
                self._parts_size = 0
                self._buf, self._pos = buf, 0
            (n,) = _S_LEN.unpack_from(buf, pos)
            if n > self._max:
                self._fail(f"frame of {n} bytes exceeds the limit of {self._max}")
            if n == 0:  # a keepalive
                self._buf, self._pos = (b"", 0) if pos + 4 == len(buf) else (buf, pos + 4)
                continue
            if avail < 4 + n:
                self._need = 4 + n
                continue
            start = pos + 4
            stop = start + n
            try:
                msg = _decode_range(buf, start, stop)
            except CodecError as exc:
                self._fail(f"bad frame: {exc}")
            # Record progress before yielding, so an abandoned iterator loses nothing.
            if stop == len(buf):
                self._buf, self._pos = b"", 0
            else:
                self._pos = stop
            self._need = 4
            yield msg
