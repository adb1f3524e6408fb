from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.resp.doubles import Dispatcher
from uhaha.frontdoor import FrontDoor, Limits, Service
from uhaha.resp import RespHandler


async def hello(request: Request) -> Response:
    return JSONResponse({"hello": "world", "http_version": request.scope["http_version"]})


async def echo(request: Request) -> Response:
    body = await request.body()
    return Response(body, media_type="application/octet-stream")


async def slow(request: Request) -> Response:
    await asyncio.sleep(float(request.query_params["s"]))
    return JSONResponse({"slept": True})


def make_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/hello", hello, methods=["GET"]),
            Route("/echo", echo, methods=["POST"]),
            Route("/slow", slow, methods=["GET"]),
        ]
    )


async def helo_service(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A line protocol: `HELO name` is answered `HI name`, until the client goes."""
    while line := await reader.readline():
        writer.write(b"HI " + line.removeprefix(b"HELO ").strip() + b"\n")
        await writer.drain()


def helo_sniff(data: bytes) -> bool | None:
    if len(data) < 4:
        return None if b"HELO".startswith(data) else False
    return data.startswith(b"HELO")


HELO = Service("helo", helo_sniff, helo_service)


@dataclass
class Door:
    door: FrontDoor
    dispatcher: Dispatcher
    port: int
    extra: dict[str, Any] = field(default_factory=dict)

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


OpenDoor = Callable[..., Awaitable[Door]]


@pytest.fixture
async def open_door() -> AsyncIterator[OpenDoor]:
    """Start a front door on 127.0.0.1 with the test app, dispatcher and HELO service.

    Keyword arguments: `limits`, `ssl`, `check_auth`, `max_pending`.
    """
    doors: list[FrontDoor] = []

    async def start(
        *,
        limits: Limits | None = None,
        ssl: ssl.SSLContext | None = None,
        **resp_options: Any,
    ) -> Door:
        dispatcher = Dispatcher()
        handler = RespHandler(dispatcher, **resp_options)
        door = FrontDoor(make_app(), handler, ssl=ssl, services=[HELO], limits=limits)
        await door.start("127.0.0.1", 0)
        doors.append(door)
        return Door(door, dispatcher, door.address[1])

    yield start
    for door in doors:
        await door.close(timeout=2.0)


@pytest.fixture
async def door(open_door: OpenDoor) -> Door:
    return await open_door()


@dataclass
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for localhost and 127.0.0.1 (made with openssl)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return Certificate(cert, key)


async def run(*argv: str, stdin: bytes | None = None, timeout: float = 20.0) -> tuple[int, str]:
    """Run a command without blocking the loop the server runs on: (exit code, stdout+stderr)."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(stdin), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")
