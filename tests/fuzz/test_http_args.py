"""Properties of the JSON HTTP API's argument decoding, for any request (hypothesis).

Every request gets an answer the API documents: the command runs with exactly
the arguments the body or query gives, or a 400 (401, 404, 405, 413) with a
JSON error; never a 5xx. The requests run through the API's routes
in-process (fuzz/fuzz_http_args.py, which also checks each answer), plus
regressions found by fuzzing: lone surrogates, text with surrogate escapes in
results and errors, deep JSON, Unicode digits in Content-Length, and HTTP/2
targets that are not ASCII.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlencode

from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fuzz import fuzz_http_args
from fuzz.fuzz_http_args import Request, call, check
from tests.fuzz.h2get import h2_get
from tests.resp.doubles import Dispatcher
from uhaha.frontdoor import FrontDoor
from uhaha.resp import RespHandler

POST, GET, PIPELINE = 0, 1, 2

#: Any text, lone surrogates included (json.dumps writes them as \\ud800 escapes).
text = st.text(st.one_of(st.characters(), st.integers(0xD800, 0xDFFF).map(chr)), max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=3),
    max_leaves=12,
)


def bodies() -> st.SearchStrategy[bytes]:
    as_json = json_values.map(lambda v: json.dumps(v).encode())
    arg_lists = st.lists(st.one_of(text, st.integers(), st.floats()), max_size=6)
    return st.one_of(
        as_json,
        arg_lists.map(lambda v: json.dumps(v).encode()),
        arg_lists.map(lambda v: json.dumps({"args": v}).encode()),
        as_json.flatmap(lambda b: st.integers(0, len(b)).map(lambda n: b[:n])),  # cut short
        st.binary(max_size=60),
    )


@settings(max_examples=300, deadline=None)
@given(bodies(), st.sampled_from([b"echo", b"set", b"fail", b"moved", b"nope"]), st.integers(0, 63))
def test_a_post_runs_with_the_body_s_arguments_or_is_a_400(
    body: bytes, name: bytes, flags: int
) -> None:
    request = Request(POST, flags, name, body=body)
    check(request, call(request))  # for echo: the result is exactly the arguments


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(max_size=10), max_size=5))
def test_a_get_runs_with_the_query_s_arguments(args: list[str]) -> None:
    request = Request(GET, 0, b"echo", urlencode([("arg", a) for a in args]).encode())
    response = call(request)
    check(request, response)
    assert (response.status, response.json()) == (200, {"result": args})


commands = st.lists(st.one_of(text, st.integers()), max_size=4)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(commands, json_values), max_size=5))
def test_a_pipeline_answers_each_command_in_order_or_is_a_400(body: list[Any]) -> None:
    request = Request(PIPELINE, 0, body=json.dumps(body).encode())
    response = call(request)
    check(request, response)
    if response.status == 200:
        assert len(response.json()) == len(body)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_input_of_the_fuzz_harness(data: bytes) -> None:
    fuzz_http_args.test_one_input(data)


def post(name: bytes, body: bytes, flags: int = 0) -> tuple[int, Any]:
    request = Request(POST, flags, name, body=body)
    response = call(request)
    check(request, response)
    return response.status, response.json()


def test_a_lone_surrogate_argument_is_a_400_not_a_500() -> None:
    # The write path encodes arguments for the log, MONITOR's feed quotes
    # them: both failed on "\ud800" (a 500 with a traceback).
    for name in (b"set", b"echo"):
        assert post(name, b'["k", "\\ud800"]') == (
            400,
            {"error": "ERR arguments must be valid Unicode text"},
        )
    assert post(b"set", b'["k", "\\udcff"]') == (200, {"result": "OK"})  # the byte 0xff


def test_text_with_surrogate_escapes_is_rendered_as_json() -> None:
    # Values written over RESP that are not UTF-8, and errors quoting them,
    # made Starlette's JSONResponse fail (a 500).
    assert post(b"echo", b'["\\udcff", "a\\udc80"]') == (200, {"result": ["\udcff", "a\udc80"]})
    assert post(b"fail", b'["\\udcff"]') == (400, {"error": "ERR failed: \udcff"})
    request = Request(PIPELINE, 0, body=b'[["\\udcff"]]')
    response = call(request)
    assert response.status == 200
    assert response.json() == [{"error": "ERR unknown command '\udcff'"}]


def test_deeply_nested_json_is_a_400_not_a_500() -> None:
    for route in (POST, PIPELINE):
        request = Request(route, 0, b"echo", body=b"[" * 100_000 + b"]" * 100_000)
        response = call(request)
        assert (response.status, response.json()) == (
            400,
            {"error": "ERR invalid JSON body: nested too deeply"},
        )


def test_a_content_length_of_unicode_digits_is_refused_not_a_500() -> None:
    # "²".isdigit() is true but int("²") fails.
    for value in (b"\xb2", b"\xb9", b"-1", b"1e3"):
        request = Request(POST, 2, b"echo", header=value, body=b"[]")
        response = call(request)
        check(request, response)
        assert response.status == 413


def test_a_client_gone_before_the_end_of_its_body_is_no_traceback() -> None:
    # Starlette raises ClientDisconnect from the body stream: it reached
    # uvicorn as "Exception in ASGI application", a traceback per connection.
    for route, name in ((POST, b"set"), (PIPELINE, b"")):
        request = Request(route, 32 | 4, name, body=b'["k", "v"]')
        response = call(request)
        check(request, response)
        assert response.json() == {"error": "ERR the client went away before the end of its body"}


async def _slash(request: StarletteRequest) -> Response:
    return JSONResponse({"url": str(request.url)})


def test_an_http2_target_that_is_not_ascii_is_a_400_not_a_500() -> None:
    # h2 lets any byte through in :path, and Starlette decodes the query as
    # UTF-8 (a slash redirect, request.url): a 500 and a traceback before.
    app = Starlette(routes=[Route("/cmd/", _slash), Route("/cmd/x", _slash)])

    async def exchange() -> list[int]:
        door = FrontDoor(app, RespHandler(Dispatcher()))
        await door.start("127.0.0.1", 0)
        try:
            return [
                await h2_get(door.address, path)
                for path in (b"/cmd?\x84", b"/cmd/x?a=\xff", b"/cmd/x?a=%ff")
            ]
        finally:
            await door.close(1.0)

    assert asyncio.run(exchange()) == [400, 400, 200]
