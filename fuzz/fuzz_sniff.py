"""Fuzzing the front door's protocol sniffing (uhaha.frontdoor.sniff and the door's
connection sniffer) with any first bytes of a connection.

The first byte of an input gives the chunk size (bits 0-5) and whether two
application services share the port (bit 6: HELO, which claims `HELO`, and
one whose sniff raises on a NUL byte); the rest is what the client sends.

- `sniff` never raises and answers a Kind, a service's name or None;
- a decision is final: once a prefix of the bytes decides, every longer
  prefix decides the same, so how the bytes arrive does not matter;
- the built-in rules hold (`*` is RESP, the whole HTTP/2 preface is h2, a
  request line is HTTP/1.x, a line that is none of them is RESP);
- the real front door, fed the bytes in chunks through a stand-in transport,
  hands the connection to that protocol with exactly the bytes received,
  or closes it once more than `sniff_max_bytes` came undecided; it keeps no
  slot and no timer for the connection afterwards.

    python fuzz/fuzz_sniff.py -runs=100000 /tmp/sniff-new fuzz/corpus/sniff
"""

from __future__ import annotations

import asyncio
import atexit
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a program: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fuzz.runner import fuzz, instrumented

with instrumented(__name__ == "__main__", "uhaha"):
    from uhaha.frontdoor import H2_PREFACE, FrontDoor, Kind, Limits, Service, sniff
    from uhaha.resp import RespHandler

__all__ = ["LIMITS", "SERVICES", "Handoff", "decide", "split_input", "test_one_input"]

Sniff = Callable[[bytes], bool | None]
Decision = Kind | str | None

#: Small enough for the fuzzer's inputs to cross it.
LIMITS = Limits(sniff_max_bytes=512)


def _helo(data: bytes) -> bool | None:
    if len(data) < 4:
        return None if b"HELO".startswith(data) else False
    return data.startswith(b"HELO")


def _boom(data: bytes) -> bool | None:
    if b"\0" in data:
        raise ValueError("a service's sniff that fails")
    return False


SERVICES: tuple[tuple[str, Sniff], ...] = (("helo", _helo), ("boom", _boom))
_LINE = re.compile(rb"[A-Z]{1,20} [^ \r\n]+ HTTP/1\.[01]\r?")


def split_input(data: bytes) -> tuple[int, Sequence[tuple[str, Sniff]], bytes]:
    """(chunk size, services, client bytes) from a fuzz input."""
    if not data:
        return 1, (), b""
    return (data[0] & 0x3F) + 1, SERVICES if data[0] & 0x40 else (), data[1:]


def decide(data: bytes, services: Sequence[tuple[str, Sniff]]) -> Decision:
    """`sniff`, checked to answer one of the things it may answer."""
    verdict = sniff(data, services)
    assert verdict is None or isinstance(verdict, Kind) or verdict in dict(services), verdict
    return verdict


def _check_rules(data: bytes, verdict: Decision) -> None:
    """The built-in rules, for bytes no service claimed."""
    if not data:
        assert verdict is None
    elif data[:1] == b"*":
        assert verdict is Kind.RESP
    elif data.startswith(H2_PREFACE):
        assert verdict is Kind.HTTP2
    elif H2_PREFACE.startswith(data):
        assert verdict is None
    elif b"\n" in data:
        line = data[: data.index(b"\n")]
        assert verdict is (Kind.HTTP1 if _LINE.fullmatch(line) else Kind.RESP), verdict
    else:
        assert verdict in (None, Kind.RESP), verdict


def _check_final(data: bytes, services: Sequence[tuple[str, Sniff]]) -> Decision:
    """Check that the first decision on a prefix stands for every longer prefix."""
    first: Decision = None
    decided_at = -1
    for end in range(len(data) + 1):
        if decided_at >= 0 and end > 256 and end % 61 and end != len(data):
            continue  # after a decision: a sample of the longer prefixes
        verdict = decide(data[:end], services)
        if decided_at >= 0:
            assert verdict == first, f"{data[:decided_at]!r} gave {first}, {data[:end]!r} {verdict}"
        elif verdict is not None:
            first, decided_at = verdict, end
    return first


# --- the real front door over a stand-in transport ------------------------------------


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass


@dataclass
class Handoff:
    """What the door handed over: to which protocol, and which bytes."""

    kind: Decision = None
    data: bytes = b""
    on_close: list[Callable[[], None]] = field(default_factory=list)


class _Receiver:
    """Stands in for the RESP, HTTP/1.x and HTTP/2 servers: records the hand-off."""

    def __init__(self, kind: Kind, handoff: list[Handoff]) -> None:
        self.kind = kind
        self.handoff = handoff

    def accept(self, transport: Any, data: bytes, on_close: Callable[[], None]) -> None:
        self.handoff.append(Handoff(self.kind, data, [on_close]))


class _Door:
    def __init__(self, services: Sequence[tuple[str, Sniff]]) -> None:
        async def unused(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            raise AssertionError("a service is never run here")

        specs = [Service(name, claims, unused) for name, claims in services]
        self.door = FrontDoor(_no_app, RespHandler(_NoDispatcher()), services=specs, limits=LIMITS)
        self.handoff: list[Handoff] = []
        self.door.resp = _Receiver(Kind.RESP, self.handoff)  # type: ignore[assignment]
        self.door.http1 = _Receiver(Kind.HTTP1, self.handoff)  # type: ignore[assignment]
        self.door.http2 = _Receiver(Kind.HTTP2, self.handoff)  # type: ignore[assignment]


async def _no_app(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("the app is never run here")


class _NoDispatcher:
    def opened(self, conn: Any) -> None:
        pass

    def closed(self, conn: Any) -> None:
        pass

    def submit(self, conn: Any, args: list[bytes]) -> Any:
        raise AssertionError("no command is run here")


_DOORS: dict[bool, _Door] = {}
_LOOP: asyncio.AbstractEventLoop | None = None


async def _connect(door: _Door, chunks: list[bytes]) -> tuple[Handoff | None, int, bool]:
    """Feed `chunks` to a new connection; (hand-off, bytes fed, closed by the door)."""
    door.handoff.clear()
    sniffer = door.door._new_connection()
    handoffs: list[Handoff] = []

    def serve(service: Any, transport: Any, data: bytes) -> None:
        handoffs.append(Handoff(service.name, data, [sniffer._ended]))

    sniffer._serve = serve  # type: ignore[assignment,method-assign]
    transport = _Transport()
    sniffer.connection_made(transport)
    assert door.door.connections == 1
    fed = 0
    for chunk in chunks:
        if transport.closed or door.handoff or handoffs:
            break  # a real transport reads no more: the protocol changed or it closed
        sniffer.data_received(chunk)
        fed += len(chunk)
    done = [*door.handoff, *handoffs]
    assert len(done) <= 1, done
    timer = sniffer.timer
    if done:
        assert timer is not None and timer.cancelled(), "the sniff timer outlived the hand-off"
        done[0].on_close[0]()  # the protocol ends the connection
    else:
        sniffer.connection_lost(None)
    assert door.door.connections == 0, "a connection kept its slot"
    if timer is not None:
        timer.cancel()
    return (done[0] if done else None), fed, transport.closed


def _door(with_services: bool) -> _Door:
    if with_services not in _DOORS:
        _DOORS[with_services] = _Door(SERVICES if with_services else ())
    return _DOORS[with_services]


def test_one_input(data: bytes) -> None:
    """The harness: see the module's docstring."""
    global _LOOP
    chunk, services, stream = split_input(data)
    final = _check_final(stream, services)
    verdict = decide(stream, services)
    if not services or _helo(stream) is False:  # else HELO claimed it or waits for more
        _check_rules(stream, verdict)
    if _LOOP is None:
        _LOOP = asyncio.new_event_loop()
        atexit.register(_LOOP.close)
    chunks = [stream[i : i + chunk] for i in range(0, len(stream), chunk)]
    door = _door(bool(services))
    handoff, fed, closed = _LOOP.run_until_complete(_connect(door, chunks))
    if handoff is not None:
        assert handoff.data == stream[:fed], "the hand-off lost or added bytes"
        assert handoff.kind == final, f"handed to {handoff.kind}, sniff says {final}"
        assert fed <= LIMITS.sniff_max_bytes + chunk
    elif closed:
        assert fed > LIMITS.sniff_max_bytes and decide(stream[:fed], services) is None
    else:
        assert verdict is None and fed == len(stream) <= LIMITS.sniff_max_bytes


if __name__ == "__main__":
    fuzz("sniff", test_one_input)
