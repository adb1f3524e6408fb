"""Properties of the front door's protocol sniffing, for any first bytes (hypothesis).

- `sniff` never raises and its first decision is final, so how the bytes are
  cut into reads does not change the protocol; the real door's sniffer hands
  over exactly the bytes received, or closes an undecided connection at its
  byte limit (the fuzz harness's checks);
- every prefix of an HTTP/1.0 or HTTP/1.1 request line, or of the HTTP/2
  preface, waits for more bytes rather than deciding for RESP (a regression:
  `GET / HTTP/1.0` arriving before its line end was taken for RESP);
- over real sockets, a request cut into reads at any point is served in its
  own protocol.
"""

from __future__ import annotations

import asyncio
import socket

from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from fuzz import fuzz_sniff
from tests.resp.doubles import Dispatcher
from uhaha.frontdoor import H2_PREFACE, FrontDoor, Kind, sniff
from uhaha.resp import RespHandler

_PIECES = [
    b"GET", b"POST", b"PRI", b"HELO", b"HEL", b" ", b"/", b"/healthz", b"?a=1", b"*",
    b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"\r", b"\n", b"\r\n", b"\x00", b"\xff",
    b"SM", H2_PREFACE, H2_PREFACE[:9], b"PING", b"A" * 21, b"x" * 100, b"\x16\x03\x01",
]  # fmt: skip


def first_bytes() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=200), st.lists(st.sampled_from(_PIECES), max_size=30).map(b"".join)
    )


@settings(max_examples=400, deadline=None)
@given(first_bytes(), st.integers(0, 0x3F), st.booleans())
def test_a_decision_is_final_and_the_door_hands_over_every_byte(
    data: bytes, chunk: int, services: bool
) -> None:
    fuzz_sniff.test_one_input(bytes([chunk | (0x40 if services else 0)]) + data)


methods = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=20)
targets = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(methods, targets, st.sampled_from(["HTTP/1.0", "HTTP/1.1"]), st.booleans())
def test_every_prefix_of_a_request_line_waits_for_its_end(
    method: str, target: str, version: str, cr: bool
) -> None:
    line = f"{method} {target} {version}".encode() + (b"\r" if cr else b"")
    for end in range(1, len(line) + 1):
        assert sniff(line[:end]) is None, line[:end]
    assert sniff(line + b"\n") is Kind.HTTP1
    assert sniff(line + b"\nHost: x\r\n") is Kind.HTTP1


def test_every_prefix_of_the_http2_preface_waits() -> None:
    for end in range(1, len(H2_PREFACE)):
        assert sniff(H2_PREFACE[:end]) is None
    assert sniff(H2_PREFACE) is Kind.HTTP2


async def _hello(request: Request) -> Response:
    return PlainTextResponse(f"hello {request.scope['http_version']}")


@settings(max_examples=15, deadline=None)
@given(
    st.sampled_from(
        [
            (b"GET /hello HTTP/1.0\r\n\r\n", b"HTTP/1.1 200 "),
            (b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"HTTP/1.1 200 "),
            (b"*1\r\n$4\r\nPING\r\n", b"+PONG\r\n"),
            (b"PING\r\n", b"+PONG\r\n"),
        ]
    ),
    st.integers(1, 30),
)
def test_a_request_cut_anywhere_is_served_in_its_protocol(
    exchange: tuple[bytes, bytes], cut: int
) -> None:
    request, answer = exchange
    assert asyncio.run(_send_in_two(request, min(cut, len(request) - 1))).startswith(answer)


async def _send_in_two(request: bytes, cut: int) -> bytes:
    app = Starlette(routes=[Route("/hello", _hello)])
    door = FrontDoor(app, RespHandler(Dispatcher()))
    await door.start("127.0.0.1", 0)
    try:
        reader, writer = await asyncio.open_connection(*door.address)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        writer.write(request[:cut])
        await writer.drain()
        # Until the first piece has been read by the door (a pause between reads).
        for _ in range(200):
            if any(c.buffer or c.kind is not None for c in door._conns):
                break
            await asyncio.sleep(0.005)
        writer.write(request[cut:])
        await writer.drain()
        data = await asyncio.wait_for(reader.read(1000), 10)
        writer.close()
        return data
    finally:
        await door.close(1.0)
