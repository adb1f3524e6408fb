"""Every client on the one port: redis-cli, redis-py, netcat-style inline, curl, httpx
HTTP/1.1 and HTTP/2, and an application service."""

from __future__ import annotations

import asyncio
import json
import os
import pty
from typing import Any

import httpx
import redis.asyncio as aioredis

from tests.frontdoor.conftest import Door, OpenDoor, run
from tests.resp.doubles import command, read_replies, until
from uhaha.frontdoor import Kind
from uhaha.resp import secret_checker


async def test_redis_cli(door: Door) -> None:
    code, out = await run("redis-cli", "-p", str(door.port), "PING")
    assert (code, out) == (0, "PONG\n")
    code, out = await run("redis-cli", "-p", str(door.port), "ECHO", "hello world")
    assert (code, out) == (0, "hello world\n")
    code, out = await run("redis-cli", "-p", str(door.port), "FAIL")
    assert "ERR boom forged" in out


async def test_redis_cli_reading_commands_from_stdin(door: Door) -> None:
    code, out = await run("redis-cli", "-p", str(door.port), stdin=b"INCR n\nINCR n\nTYPES\n")
    assert code == 0
    assert out.startswith("1\n2\n\n1\n0\n42\n")


async def test_redis_cli_interactive(door: Door) -> None:
    """A terminal session, as in uhaha's README (redis-cli asks COMMAND DOCS first)."""
    master, slave = pty.openpty()
    output = bytearray()
    loop = asyncio.get_running_loop()
    loop.add_reader(master, lambda: output.extend(_read_pty(master)))
    process = await asyncio.create_subprocess_exec(
        "redis-cli", "-p", str(door.port), stdin=slave, stdout=slave, stderr=slave,
        env={**os.environ, "TERM": "dumb", "HOME": os.devnull},
    )  # fmt: skip
    os.close(slave)
    try:
        os.write(master, b"INCR tickets\r")
        await until(lambda: b"(integer) 1" in output, what="the first reply")
        os.write(master, b"INCR tickets\r")
        await until(lambda: b"(integer) 2" in output, what="the second reply")
        os.write(master, b"quit\r")
        await asyncio.wait_for(process.wait(), 10)
    finally:
        loop.remove_reader(master)
        os.close(master)
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert [args[0] for args in door.dispatcher.submitted] == [b"INCR", b"INCR"]


def _read_pty(fd: int) -> bytes:
    try:
        return os.read(fd, 4096)
    except OSError:  # the terminal's other side closed
        return b""


async def test_redis_cli_with_a_password(open_door: OpenDoor) -> None:
    door = await open_door(check_auth=secret_checker("secret"))
    port = str(door.port)
    code, out = await run("redis-cli", "-p", port, "--no-auth-warning", "-a", "secret", "PING")
    assert (code, out) == (0, "PONG\n")
    code, out = await run("redis-cli", "-p", port, "PING")
    assert "NOAUTH Authentication required." in out
    code, out = await run("redis-cli", "-p", port, "--no-auth-warning", "-a", "wrong", "PING")
    assert "WRONGPASS" in out


async def test_redis_py_default_resp3_handshake(door: Door) -> None:
    client = aioredis.Redis(port=door.port)
    try:
        assert await client.ping() is True
        assert await client.echo("x") == b"x"
        assert await call(client, "INCR", "n") == 1
        async with client.pipeline(transaction=False) as pipe:
            for _ in range(100):
                pipe.execute_command("INCR", "n")
            assert await pipe.execute() == list(range(2, 102))
        assert await call(client, "WHOAMI") == [1, None, 3, await _remote(client)]
    finally:
        await client.aclose()


async def call(client: aioredis.Redis, *args: str) -> Any:
    """A raw command (redis-py's execute_command is untyped)."""
    return await client.execute_command(*args)  # type: ignore[no-untyped-call]


async def _remote(client: aioredis.Redis) -> bytes:
    reply = await call(client, "WHOAMI")
    assert isinstance(reply, list)
    return bytes(reply[3])


async def test_redis_py_resp2_with_password_and_name(open_door: OpenDoor) -> None:
    door = await open_door(check_auth=secret_checker("pw"))
    for protocol in (2, 3):
        client = aioredis.Redis(port=door.port, protocol=protocol, password="pw", client_name="me")
        try:
            assert await client.ping() is True
            whoami = await call(client, "WHOAMI")
            assert whoami[1:3] == [b"me", protocol]
            assert await client.client_getname() in ("me", b"me")
        finally:
            await client.aclose()


async def test_inline_commands_over_a_raw_socket(door: Door) -> None:
    reader, writer = await door.connect()
    writer.write(b"PING\r\n")
    assert await reader.readline() == b"+PONG\r\n"
    writer.write(b'echo "two words"\n')
    assert await read_replies(reader, 1) == [b"two words"]
    writer.write(b"GET key\r\n")  # Redis's GET, not HTTP's
    assert (await reader.readline()).startswith(b"-ERR unknown command 'GET'")
    writer.close()


async def test_curl_http1(door: Door) -> None:
    code, out = await run("curl", "-sS", f"{door.url}/hello")
    assert code == 0
    assert json.loads(out) == {"hello": "world", "http_version": "1.1"}
    code, out = await run("curl", "-sS", "--data-binary", "payload", f"{door.url}/echo")
    assert (code, out) == (0, "payload")


async def test_curl_http2_prior_knowledge(door: Door) -> None:
    code, out = await run("curl", "-sS", "--http2-prior-knowledge", f"{door.url}/hello")
    assert code == 0
    assert json.loads(out)["http_version"] == "2"


async def test_httpx_http1_and_http2(door: Door) -> None:
    async with httpx.AsyncClient() as h1:
        response = await h1.get(f"{door.url}/hello")
        assert (response.http_version, response.json()["http_version"]) == ("HTTP/1.1", "1.1")
        response = await h1.post(f"{door.url}/echo", content=b"x" * 300_000)
        assert response.content == b"x" * 300_000
    async with httpx.AsyncClient(http1=False, http2=True) as h2:
        responses = await asyncio.gather(*(h2.get(f"{door.url}/hello") for _ in range(20)))
        assert {r.http_version for r in responses} == {"HTTP/2"}
        assert {r.json()["http_version"] for r in responses} == {"2"}
        response = await h2.post(f"{door.url}/echo", content=b"y" * 300_000)
        assert response.content == b"y" * 300_000


async def test_a_service_claims_its_connections(door: Door) -> None:
    reader, writer = await door.connect()
    writer.write(b"HE")  # not enough to tell yet
    await writer.drain()
    writer.write(b"LO alice\n")
    assert await reader.readline() == b"HI alice\n"
    writer.write(b"HELO bob\n")
    assert await reader.readline() == b"HI bob\n"
    writer.close()
    await until(lambda: door.door.connections == 0, what="the service connection to end")


async def test_all_of_them_at_once_on_one_port(door: Door) -> None:
    async def resp_client() -> None:
        client = aioredis.Redis(port=door.port)
        try:
            for _ in range(20):
                assert await client.ping() is True
        finally:
            await client.aclose()

    async def http1_client() -> None:
        async with httpx.AsyncClient() as h1:
            for _ in range(20):
                assert (await h1.get(f"{door.url}/hello")).status_code == 200

    async def http2_client() -> None:
        async with httpx.AsyncClient(http1=False, http2=True) as h2:
            for _ in range(20):
                assert (await h2.get(f"{door.url}/hello")).http_version == "HTTP/2"

    async def inline_client() -> None:
        reader, writer = await door.connect()
        for _ in range(20):
            writer.write(b"PING\r\n")
            assert await reader.readline() == b"+PONG\r\n"
        writer.close()

    async def service_client() -> None:
        reader, writer = await door.connect()
        for i in range(20):
            writer.write(b"HELO %d\n" % i)
            assert await reader.readline() == b"HI %d\n" % i
        writer.close()

    async def cli_client() -> None:
        assert await run("redis-cli", "-p", str(door.port), "PING") == (0, "PONG\n")

    await asyncio.wait_for(
        asyncio.gather(
            resp_client(), http1_client(), http2_client(), inline_client(), service_client(),
            cli_client(),
        ),
        30,
    )  # fmt: skip


async def test_http1_request_then_half_close_is_answered(door: Door) -> None:
    """A client that sends its request and shuts its side down (``nc -N``)
    still gets the response, however long it takes, and then the close."""
    for path in ("/hello", "/slow?s=0.3"):
        reader, writer = await door.connect()
        writer.write(b"GET %b HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
        writer.write_eof()
        data = await asyncio.wait_for(reader.read(), 10)  # to the server's close
        writer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n"), data
        assert body in (b'{"hello":"world","http_version":"1.1"}', b'{"slept":true}')
    # A body cut short by the half-close can never end: closed, not left waiting.
    reader, writer = await door.connect()
    writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()
    await until(lambda: door.door.connections == 0, what="the connections closed")


async def test_pipelining_through_the_front_door(door: Door) -> None:
    reader, writer = await door.connect()
    writer.write(
        command("SLOW", "0.05", "slow") + b"".join(command("INCR", "n") for _ in range(10_000))
    )
    replies = await read_replies(reader, 10_001, timeout=30)
    assert replies == [b"slow", *range(1, 10_001)]
    writer.close()


def test_kind_values_are_protocol_names() -> None:
    assert [k.value for k in Kind] == ["resp", "http/1.1", "h2"]
