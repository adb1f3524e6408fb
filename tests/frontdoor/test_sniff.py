"""Protocol detection from the first bytes (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.frontdoor.conftest import helo_sniff
from uhaha.frontdoor import H2_PREFACE, Kind, sniff

HTTP1, HTTP2, RESP = Kind.HTTP1, Kind.HTTP2, Kind.RESP


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"", None),
        (b"*", RESP),
        (b"*1\r\n$4\r\nPING\r\n", RESP),
        (b"ping", RESP),  # lower case cannot start an HTTP request line
        (b"PING", None),  # could still be the method of an HTTP request line
        (b"PING\r\n", RESP),
        (b"GET key\r\n", RESP),  # a Redis GET, not an HTTP one
        (b"GET a b\r\n", RESP),
        (b"SET a b c", RESP),  # three spaces: not a request line
        (b"GET /x HTTP/1.1\r\n", HTTP1),
        (b"POST /cmd/ticket HTTP/1.0\n", HTTP1),
        (b"GET /x HTTP/1.1\r", None),  # the LF may come in the next packet
        (b"GET /x HTTP/1.", None),
        (b"GET /x HTTP/2.0\r\n", RESP),
        (H2_PREFACE[:5], None),
        (H2_PREFACE, HTTP2),
        (H2_PREFACE + b"\x00\x00\x12\x04", HTTP2),
        (b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", RESP),
        (b"\x16\x03\x01\x02\x00", RESP),  # TLS on a plain port: binary garbage, inline
    ],
)
def test_builtin_rules(data: bytes, kind: Kind | None) -> None:
    assert sniff(data) == kind


def test_services_are_asked_first() -> None:
    services = [("helo", helo_sniff)]
    assert sniff(b"HE", services) is None
    assert sniff(b"HELO x", services) == "helo"
    assert sniff(b"PING\r\n", services) == RESP
    assert sniff(b"HELP\r\n", services) == RESP


def test_a_failing_service_sniff_is_not_a_claim() -> None:
    def broken(data: bytes) -> bool | None:
        raise RuntimeError("bug in the application")

    assert sniff(b"PING\r\n", [("broken", broken)]) == RESP


chunks = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"GET", b" /", b"x", b" HTTP/1.1", b"\r", b"\n", b"PRI * HTTP/2.0", b"*"]),
    st.just(H2_PREFACE),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(chunks, min_size=1, max_size=8))
def test_a_decision_never_changes_when_more_bytes_come(parts: list[bytes]) -> None:
    data = b"".join(parts)
    first = None
    for end in range(1, len(data) + 1):
        kind = sniff(data[:end], [("helo", helo_sniff)])
        if first is None:
            first = kind
        else:
            assert kind == first, (data[:end], first, kind)
