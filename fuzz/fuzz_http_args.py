"""Fuzzing the JSON HTTP API's argument decoding (uhaha.http.api) with any request.

The API's routes run in-process (an ASGI call, no sockets) over a stand-in
dispatcher that uses the real argument codecs of uhaha.dispatch: a write
encodes its arguments for the log and MONITOR's feed quotes them, as the
real dispatcher does. An input is

    route byte, flags byte, name, NUL, query, NUL, header, NUL, body

route (mod 4): POST /cmd/{name}, GET /cmd/{name}, POST /cmd (a pipeline),
GET /snapshots/{name}; the name is a raw path segment (percent escapes
kept, as a client sends them). Flags: bits 0-1 the Content-Length (0 right,
1 none, 2 the header field as its value), bits 2-3 the body's chunk size,
bit 4 a server with --auth and the header field as the Authorization, bit 5
a client that goes away before the end of its body.

Every answer must be one the API documents: never a 5xx or an exception;
JSON (valid UTF-8) with a "result" or an "error" wherever the API answers
JSON; and a command's arguments, when it ran, exactly what the body said.

    python fuzz/fuzz_http_args.py -runs=50000 /tmp/http-new fuzz/corpus/http_args
"""

from __future__ import annotations

import asyncio
import atexit
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote_from_bytes, unquote

if __package__ in (None, ""):  # run as a program: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fuzz.runner import fuzz, instrumented

with instrumented(__name__ == "__main__", "uhaha", "starlette"):
    from starlette.applications import Starlette
    from starlette.types import Message

    from uhaha.dispatch import _quote, decode_arg, encode_arg
    from uhaha.errors import CommandError, Moved, unknown_command
    from uhaha.http import api
    from uhaha.raft.messages import Configuration
    from uhaha.storage.snapfile import SnapshotHeader
    from uhaha.storage.snapshots import SnapshotStore

__all__ = ["ROUTES", "Request", "Response", "call", "encode_input", "test_one_input"]

ROUTES = ("POST /cmd/", "GET /cmd/", "POST /cmd", "GET /snapshots/")
SECRET = "fuzz-secret"
_CHUNKS = (1 << 20, 1, 7, 64)
_SAFE = b"%/:@!$&'()*+,;=-._~"  # kept as they are in a path: escapes stay escapes
#: What a query keeps as it is; other bytes are percent-escaped, as HTTP/1.1's
#: parser and the front door's HTTP/2 check refuse a target that is not ASCII.
_QUERY_SAFE = bytes(c for c in range(0x21, 0x7F) if c != ord("#")).decode()
#: Statuses the API answers (a CommandError's own, the router's, and its checks').
_STATUSES = {200, 307, 400, 401, 404, 405, 413}


@dataclass(frozen=True)
class Request:
    """One HTTP request, as a fuzz input describes it."""

    route: int
    flags: int
    name: bytes = b""
    query: bytes = b""
    header: bytes = b""
    body: bytes = b""

    @property
    def method(self) -> str:
        return ROUTES[self.route].split(" ")[0]

    @property
    def query_string(self) -> bytes:
        return quote_from_bytes(self.query, safe=_QUERY_SAFE).encode()

    @property
    def raw_path(self) -> bytes:
        prefix = ROUTES[self.route].split(" ")[1].encode()
        if self.route == 2:
            return prefix
        return prefix + quote_from_bytes(self.name, safe=_SAFE).encode()

    def headers(self) -> list[tuple[bytes, bytes]]:
        out = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")]
        length = self.flags & 3
        if length == 0:
            out.append((b"content-length", b"%d" % len(self.body)))
        elif length == 2:
            out.append((b"content-length", self.header))
        if self.flags & 16:
            out.append((b"authorization", self.header))
        return out

    def http1(self) -> bytes:
        """The request as HTTP/1.1 bytes (what the cluster test sends a node)."""
        target = self.raw_path + (b"?" + self.query_string if self.query else b"")
        head = b"%b %b HTTP/1.1\r\n" % (self.method.encode(), target)
        headers = [(k, v) for k, v in self.headers() if k != b"content-length"]
        headers.append((b"content-length", b"%d" % len(self.body)))
        headers.append((b"connection", b"close"))
        head += b"".join(b"%b: %b\r\n" % (k, v) for k, v in headers)
        # A client gone before the end of its body sends half of it.
        body = self.body[: len(self.body) // 2] if self.flags & 32 else self.body
        return head + b"\r\n" + body


def decode_input(data: bytes) -> Request:
    """The request a fuzz input describes."""
    if len(data) < 2:
        return Request(0, 0)
    fields = data[2:].split(b"\0", 3)
    fields += [b""] * (4 - len(fields))
    name, query, header, body = fields
    return Request(data[0] % len(ROUTES), data[1], name, query, header, body)


def encode_input(request: Request) -> bytes:
    """The fuzz input describing `request` (the name, query and header hold no NUL)."""
    head = bytes([request.route, request.flags])
    return head + b"\0".join([request.name, request.query, request.header, request.body])


# --- the API under test, over a stand-in node and dispatcher ----------------------


class _Node:
    """What the API's routes ask of a node: its snapshots (a real store, one snapshot)."""

    def __init__(self) -> None:
        folder = tempfile.mkdtemp(prefix="uhaha-fuzz-")
        atexit.register(shutil.rmtree, folder, True)
        self.snapshots = SnapshotStore(folder)
        with self.snapshots.create(1, 1, Configuration(), SnapshotHeader()) as writer:
            writer.write(b"state")
            writer.commit()


@dataclass
class _Dispatcher:
    """The dispatcher's contract over the real argument codecs.

    SET and DEL are writes (their arguments are encoded for the log), ECHO and
    GET return their arguments as an application sees them, MOVED answers a
    redirect, FAIL an error quoting its arguments; anything else is unknown.
    Every command is quoted for MONITOR's feed first, as with a monitor attached.
    """

    ran: list[list[str]] = field(default_factory=list)
    feed: list[str] = field(default_factory=list)

    def readonly(self, args: list[str]) -> bool:
        return bool(args) and args[0].lower() in ("echo", "get", "moved", "fail")

    def submit(self, conn: Any, args: list[str]) -> Any:
        if not args:
            raise CommandError("ERR empty command")
        self.feed.append(" ".join(_quote(decode_arg(a)) for a in args))  # MONITOR's line
        name = decode_arg(args[0])
        key = name.lower()
        self.ran.append(list(args))
        if key in ("set", "del"):
            logged = [encode_arg(a) for a in args]  # what goes into the log entry
            return "OK" if key == "set" else len(logged) - 1
        if key in ("echo", "get"):
            return [decode_arg(a) for a in args[1:]]
        if key == "moved":
            raise Moved("127.0.0.1:11002")
        if key == "fail":
            raise CommandError(f"ERR failed: {' '.join(args[1:])}")
        raise unknown_command(name)


@dataclass
class _Api:
    dispatcher: _Dispatcher
    apps: dict[bool, Starlette]


_API: _Api | None = None
_LOOP: asyncio.AbstractEventLoop | None = None


def _api() -> _Api:
    global _API
    if _API is None:
        node, dispatcher = _Node(), _Dispatcher()
        apps = {
            auth: Starlette(
                routes=api.api_routes(
                    cast(Any, node), cast(Any, dispatcher), SECRET if auth else ""
                )
            )
            for auth in (False, True)
        }
        _API = _Api(dispatcher, apps)
    return _API


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    ran: list[list[str]]

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))  # strict: the body must be UTF-8


async def _call(app: Starlette, request: Request) -> tuple[int, dict[str, str], bytes]:
    raw_path = request.raw_path
    text = raw_path.decode("ascii")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": "http",
        "path": unquote(text) if "%" in text else text,  # as uvicorn decodes it
        "raw_path": raw_path,
        "root_path": "",
        "query_string": request.query_string,
        "headers": request.headers(),
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 11001),
    }
    size = _CHUNKS[(request.flags >> 2) & 3]
    chunks = [request.body[i : i + size] for i in range(0, len(request.body), size)] or [b""]
    gone = bool(request.flags & 32)
    messages = [
        {"type": "http.request", "body": c, "more_body": gone or i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    if gone:
        messages.append({"type": "http.disconnect"})
    sent: list[Message] = []

    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # no disconnect: the client waits for its answer
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return int(start["status"]), headers, body


def call(request: Request) -> Response:
    """Answer `request` with the API (any exception it raises propagates)."""
    global _LOOP
    if _LOOP is None:
        _LOOP = asyncio.new_event_loop()
        atexit.register(_LOOP.close)
    state = _api()
    state.dispatcher.ran.clear()
    state.dispatcher.feed.clear()
    app = state.apps[bool(request.flags & 16)]
    status, headers, body = _LOOP.run_until_complete(_call(app, request))
    return Response(status, headers, body, list(state.dispatcher.ran))


# --- what the answers must be -------------------------------------------------------


class _Invalid(Exception):
    """The body is not a valid argument list (the API must answer 400)."""


def expected_args(body: bytes) -> list[str]:
    """The arguments a /cmd/{name} body stands for, as the README describes them."""
    if not body.strip():
        return []
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        raise _Invalid from None
    if isinstance(value, dict):
        value = value.get("args", [])
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Invalid
    out = []
    for v in value:
        if isinstance(v, str):
            try:
                v.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                raise _Invalid from None  # a lone surrogate: no argument bytes stand for it
            out.append(v)
        elif isinstance(v, int | float) and not isinstance(v, bool):
            out.append(json.dumps(v))
        else:
            raise _Invalid
    return out


def check(request: Request, response: Response) -> None:
    """Assert that `response` is an answer the API documents for `request`."""
    status = response.status
    assert status in _STATUSES, f"status {status}: {response.body[:300]!r}"
    kind = response.headers.get("content-type", "")
    if kind.startswith("application/gzip"):
        assert request.route == 3 and status == 200
        return
    if not kind.startswith("application/json"):
        assert status in (307, 404, 405), f"status {status} as {kind}"  # the router's answers
        return
    doc = response.json()
    if request.route == 2 and status == 200:
        assert isinstance(doc, list) and all(_is_reply(r) for r in doc), doc
        return
    assert _is_reply(doc), doc
    if request.flags & 16 and status == 401:
        return
    if (
        request.route == 0
        and request.name
        and b"/" not in request.name
        and b"%" not in request.name
    ):
        _check_post(request, response, doc)


def _check_post(request: Request, response: Response, doc: dict[str, Any]) -> None:
    if request.flags & 3 == 2:
        return  # a Content-Length of the fuzzer's: checked first, covered by the status check
    if request.flags & 32:
        assert response.status == 400 and not response.ran, "a body cut short ran a command"
        return
    try:
        args = expected_args(request.body)
    except _Invalid:
        assert response.status == 400 and not response.ran, (response.status, response.ran)
        return
    name = request.name.decode("utf-8", "replace")
    assert response.ran == [[name, *args]], f"ran {response.ran}, expected {[name, *args]}"
    if name.lower() == "echo":
        assert doc == {"result": args}, f"{doc} for {args}"


def _is_reply(doc: Any) -> bool:
    return isinstance(doc, dict) and len(doc) == 1 and ("result" in doc or "error" in doc)


def test_one_input(data: bytes) -> None:
    """The harness: see the module's docstring."""
    request = decode_input(data)
    check(request, call(request))


if __name__ == "__main__":
    fuzz("http_args", test_one_input)
