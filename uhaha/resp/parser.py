"""An incremental, bounded parser of RESP requests (sans-I/O).

Feed it bytes as they arrive and take complete commands out one at a time:

    parser.feed(data)
    while (args := parser.next_command()) is not None:
        handle(args)            # a list of bytes: [b"SET", b"key", b"value"]

A request is a RESP array of bulk strings (`*2\\r\\n$4\\r\\nECHO\\r\\n$2\\r\\nhi\\r\\n`)
or, if it does not start with `*`, an inline command line (`PING\\r\\n`) as
telnet and netcat send them. Anything else raises ProtocolError; after one,
the parser stays broken and the connection should be closed.

Why the framing is checked here before hiredis builds the command: hiredis
has no size limits, waits for a bulk string of any declared length, and
allocates a list of the declared array length before the elements arrive
(`*2000000000\\r\\n` would ask for 16 GB). So every header is validated
against ParserLimits first, and hiredis only ever sees one complete, valid
request, from which it builds the argument list in C.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import hiredis

from uhaha.resp.inline import split_args
from uhaha.resp.types import ProtocolError

__all__ = ["ParserLimits", "RespParser"]

KIB = 1024
MIB = 1024 * KIB

# A length header is `*` or `$`, at most 20 characters of number, then CRLF.
_HEADER_MAX = 24
_STAR, _DOLLAR = ord("*"), ord("$")


@dataclass(frozen=True)
class ParserLimits:
    """Upper bounds on one request; exceeding one is a protocol error.

    Redis allows 512 MB bulk strings; here every write also travels through
    the Raft log and to every follower, so the defaults are much smaller.
    """

    #: Longest bulk string (one argument), bytes.
    max_bulk: int = 64 * MIB
    #: Most elements (arguments) in one request.
    max_array: int = 1024 * 1024
    #: Longest inline command line, bytes (as Redis's PROTO_INLINE_MAX_SIZE).
    max_inline: int = 64 * KIB
    #: Largest whole request (headers and all its arguments), bytes.
    max_request: int = 128 * MIB

    def unauthenticated(self) -> ParserLimits:
        """The tighter limits for a client that has not authenticated yet.

        Like Redis 7: at most 10 arguments of at most 16 KiB each, so that an
        anonymous client cannot make the server buffer much before AUTH.
        """
        return replace(
            self,
            max_bulk=min(self.max_bulk, 16 * KIB),
            max_array=min(self.max_array, 10),
            max_request=min(self.max_request, 256 * KIB),
        )


class RespParser:
    """Turns a stream of bytes into commands (lists of bytes), within `limits`.

    `limits` may be replaced between two `next_command` calls (the server
    does so when a client authenticates).
    """

    def __init__(self, limits: ParserLimits | None = None) -> None:
        self.limits = limits if limits is not None else ParserLimits()
        self._buf = bytearray()
        self._start = 0  # first byte not consumed yet
        self._left = -1  # elements of the current array still to scan; -1: none open
        self._scan = 0  # where the next element header of that array starts
        self._error: ProtocolError | None = None
        self._reader = hiredis.Reader()

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as commands."""
        return len(self._buf) - self._start

    def feed(self, data: bytes) -> None:
        """Add bytes received from the client."""
        if self._start:
            # Drop what was consumed before growing the buffer, so that it
            # holds at most one partial request plus the newest data.
            del self._buf[: self._start]
            self._scan -= self._start
            self._start = 0
        self._buf += data

    def next_command(self) -> list[bytes] | None:
        """Return the next complete command, or None if more bytes are needed.

        Raises ProtocolError when the bytes are not a valid request.
        """
        if self._error is not None:
            raise self._error
        try:
            return self._next()
        except ProtocolError as exc:
            self._error = exc
            raise

    def _next(self) -> list[bytes] | None:
        buf = self._buf
        while True:
            if self._start >= len(buf):
                buf.clear()
                self._start = self._scan = 0
                return None
            if self._left < 0:
                if buf[self._start] != _STAR:
                    args = self._inline()
                    if args is None or args:
                        return args
                    continue  # an empty line: ignored, as by Redis
                if not self._open_array():
                    return None
                if self._left < 0:
                    continue  # `*0`: an empty request, ignored
            if not self._scan_elements():
                return None
            return self._build()

    def _header(self, pos: int, what: str) -> tuple[int, int] | None:
        """Read the number after the type byte at `pos`: (value, end of line)."""
        buf = self._buf
        eol = buf.find(b"\r\n", pos + 1, pos + _HEADER_MAX)
        if eol < 0:
            if len(buf) - pos >= _HEADER_MAX:
                raise ProtocolError(f"invalid {what} length")
            return None
        text = buf[pos + 1 : eol]
        # Digits only (int() alone would also take "+1", " 1" and "1_0").
        if not (text.isdigit() or (text[:1] == b"-" and text[1:].isdigit())):
            raise ProtocolError(f"invalid {what} length")
        return int(text), eol + 2

    def _open_array(self) -> bool:
        header = self._header(self._start, "multibulk")
        if header is None:
            return False
        count, body = header
        if count < 0:
            raise ProtocolError(f"invalid multibulk length {count}")
        if count > self.limits.max_array:
            raise ProtocolError(
                f"multibulk length {count} exceeds the limit of {self.limits.max_array}"
            )
        if count == 0:
            self._start = body
        else:
            self._left, self._scan = count, body
        return True

    def _scan_elements(self) -> bool:
        """Check the element headers of the open array; True once it is complete."""
        buf, limits = self._buf, self.limits
        while self._left:
            pos = self._scan
            if pos >= len(buf):
                return False
            if buf[pos] != _DOLLAR:
                raise ProtocolError(f"expected '$', got {chr(buf[pos])!r}")
            header = self._header(pos, "bulk")
            if header is None:
                return False
            length, data = header
            if length < 0:
                raise ProtocolError(f"invalid bulk length {length}")
            if length > limits.max_bulk:
                raise ProtocolError(
                    f"bulk length {length} exceeds the limit of {limits.max_bulk} bytes"
                )
            end = data + length + 2
            if end - self._start > limits.max_request:
                raise ProtocolError(f"request exceeds the limit of {limits.max_request} bytes")
            if end > len(buf):
                return False
            if buf[end - 2] != 0x0D or buf[end - 1] != 0x0A:
                raise ProtocolError("expected CRLF after bulk data")
            self._scan = end
            self._left -= 1
        return True

    def _build(self) -> list[bytes]:
        start, end = self._start, self._scan
        # hiredis reads any buffer (its stub says bytes): no copy of the request.
        self._reader.feed(self._buf, start, end - start)  # type: ignore[arg-type]
        try:
            args = self._reader.gets()
        except hiredis.ProtocolError as exc:  # unreachable after the checks above
            raise ProtocolError(str(exc)) from exc
        self._start, self._left = end, -1
        if not isinstance(args, list):  # pragma: no cover - checked framing
            raise ProtocolError("request is not an array of bulk strings")
        return args

    def _inline(self) -> list[bytes] | None:
        buf, start, limit = self._buf, self._start, self.limits.max_inline
        newline = buf.find(b"\n", start, start + limit + 1)
        if newline < 0:
            if len(buf) - start > limit:
                raise ProtocolError("too big inline request")
            return None
        line = bytes(buf[start:newline])
        self._start = newline + 1
        args = split_args(line[:-1] if line.endswith(b"\r") else line)
        if len(args) > self.limits.max_array:
            raise ProtocolError(f"inline request has more than {self.limits.max_array} arguments")
        return args
