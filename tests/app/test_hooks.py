"""The App hooks, in process: a node started with ``app.running([...])`` inside
the test's event loop, driven through redis-py's asyncio client and httpx."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as aredis
from starlette.requests import Request
from starlette.responses import JSONResponse

from tests.app.inproc import serve, until
from uhaha import App, Machine
from uhaha.errors import CommandError


@dataclass
class Seen:
    """What the hooks of one app saw."""

    opened: list[Any] = field(default_factory=list)
    closed: list[Any] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    filtered: list[list[str]] = field(default_factory=list)


def make_app() -> tuple[App, Seen]:
    app = App("hooks", version="9.9.9", initial_data={"n": 0, "caught": []}, json_snapshots=True)
    seen = Seen()

    @app.write("incr")
    def incr(m: Machine, args: list[str]) -> int:
        m.data["n"] += 1
        n: int = m.data["n"]
        return n

    @app.read("get")
    def get(m: Machine, args: list[str]) -> Any:
        return m.data["n"]

    @app.read("caught")
    def caught(m: Machine, args: list[str]) -> Any:
        return m.data["caught"]

    @app.write("boom")
    def boom(m: Machine, args: list[str]) -> Any:
        raise ValueError("boom")

    @app.read("readboom")
    def readboom(m: Machine, args: list[str]) -> Any:
        raise RuntimeError("read went wrong")

    @app.write("shout")
    def shout(m: Machine, args: list[str]) -> str:
        return " ".join(args)

    @app.command("visit")
    def visit(m: Machine, args: list[str]) -> Any:
        m.context["visits"] = m.context.get("visits", 0) + 1
        return [m.context["visits"], bool(m.context.get("opened"))]

    @app.command("incr2")
    async def incr2(m: Machine, args: list[str]) -> Any:
        first = await app.execute(["incr"])
        second = await app.execute(["incr"])
        m.context["last"] = second
        return [first, second]

    @app.command("last")
    def last(m: Machine, args: list[str]) -> Any:
        return m.context.get("last")

    @app.catch_all()
    def catch(m: Machine, args: list[str]) -> Any:
        if args[0].lower() == "refuse":
            raise CommandError(f"ERR unknown command '{args[0]}'")
        m.data["caught"].append(args)
        return ["caught", *args]

    @app.route("/bump", methods=["POST"])
    async def bump(request: Request) -> JSONResponse:
        return JSONResponse({"n": await app.execute(["incr"])})

    @app.on_connect
    def opened(conn: Any) -> None:
        conn.context["opened"] = True
        seen.opened.append(conn)

    @app.on_disconnect
    def closed(conn: Any) -> None:
        seen.closed.append(conn)

    @app.on_state_change
    def state(role: str) -> None:
        seen.states.append(role)

    @app.response_filter
    def upper(args: list[str], result: Any) -> Any:
        seen.filtered.append(args)
        if args[0].lower() == "shout" and isinstance(result, str):
            return result.upper() + "!"
        return result

    return app, seen


def client(addr: str) -> aredis.Redis:
    host, port = addr.rsplit(":", 1)
    return aredis.Redis(
        host=host,
        port=int(port),
        decode_responses=True,
        single_connection_client=True,  # one connection: one context
        socket_timeout=5,
    )


async def call(r: aredis.Redis, *args: str) -> Any:
    """One command (redis-py's execute_command is untyped)."""
    return await r.execute_command(*args)  # type: ignore[no-untyped-call]


async def raw(addr: str, payload: bytes) -> bytes:
    """Send ``payload`` on a fresh connection; the first reply line."""
    host, port = addr.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()
        await writer.wait_closed()


async def test_connection_hooks_and_state_change(tmp_path: Path) -> None:
    app, seen = make_app()
    async with serve(app, tmp_path) as addr:
        assert "leader" in seen.states
        async with client(addr) as r:
            assert await call(r, "INCR") == 1
            assert len(seen.opened) == 1
            conn = seen.opened[0]
            assert conn.remote.startswith("127.0.0.1:")
            assert conn.context["opened"] is True
            assert not seen.closed
        await until(lambda: seen.closed, what="the disconnect hook")
        assert seen.closed == [conn]


async def test_context_lives_with_the_connection(tmp_path: Path) -> None:
    app, _ = make_app()
    async with serve(app, tmp_path) as addr, client(addr) as one, client(addr) as two:
        assert await call(one, "VISIT") == [1, True]  # on_connect's context too
        assert await call(one, "VISIT") == [2, True]
        assert await call(two, "VISIT") == [1, True]
        assert await call(one, "VISIT") == [3, True]
        # Async, running writes through the cluster, and keeping context.
        assert await call(one, "INCR2") == [1, 2]
        assert await call(one, "LAST") == 2
        assert await call(two, "LAST") is None
        assert await call(two, "GET") == 2
        async with httpx.AsyncClient(base_url=f"http://{addr}") as http:
            # HTTP has no connection to keep a context in: a new one each time.
            for _ in range(2):
                assert (await http.get("/cmd/visit")).json() == {"result": [1, False]}


async def test_response_filter_rewrites_results(tmp_path: Path) -> None:
    app, seen = make_app()
    async with serve(app, tmp_path) as addr:
        async with client(addr) as r:
            assert await call(r, "SHOUT", "hello", "world") == "HELLO WORLD!"
            assert await call(r, "INCR") == 1  # others pass through
        async with httpx.AsyncClient(base_url=f"http://{addr}") as http:
            assert (await http.post("/cmd/shout", json=["hi"])).json() == {"result": "HI!"}
        assert ["SHOUT", "hello", "world"] in seen.filtered
        assert ["shout", "hi"] in seen.filtered


async def test_catch_all_gets_unknown_commands_with_their_name(tmp_path: Path) -> None:
    app, _ = make_app()
    async with serve(app, tmp_path) as addr, client(addr) as r:
        assert await call(r, "FROBNICATE", "a", "b") == ["caught", "FROBNICATE", "a", "b"]
        assert await call(r, "zap") == ["caught", "zap"]
        # Known commands and built-ins never reach it.
        assert await call(r, "INCR") == 1
        assert await call(r, "PING") in ("PONG", True)
        with pytest.raises(redis.ResponseError, match="unknown command 'refuse'"):
            await call(r, "refuse")
        # A write catch-all goes through the log.
        assert await call(r, "CAUGHT") == [["FROBNICATE", "a", "b"], ["zap"]]


async def test_an_exception_in_a_command_answers_an_error(tmp_path: Path) -> None:
    app, _ = make_app()
    async with serve(app, tmp_path) as addr:
        assert await raw(addr, b"BOOM\r\n") == b"-ERR boom\r\n"
        assert await raw(addr, b"READBOOM\r\n") == b"-ERR read went wrong\r\n"
        async with client(addr) as r:
            with pytest.raises(redis.ResponseError, match="boom"):
                await call(r, "BOOM")
            assert await call(r, "INCR") == 1  # the node keeps working
        async with httpx.AsyncClient(base_url=f"http://{addr}") as http:
            resp = await http.post("/cmd/boom")
            assert (resp.status_code, resp.json()) == (400, {"error": "ERR boom"})
            assert (await http.post("/cmd/incr")).json() == {"result": 2}


async def test_execute_from_a_route(tmp_path: Path) -> None:
    app, _ = make_app()
    with pytest.raises(RuntimeError, match="not running"):
        await app.execute(["incr"])
    async with serve(app, tmp_path) as addr:
        async with httpx.AsyncClient(base_url=f"http://{addr}") as http:
            assert (await http.post("/bump")).json() == {"n": 1}
            assert (await http.post("/bump")).json() == {"n": 2}
            assert (await http.get("/cmd/get")).json() == {"result": 2}
        assert await app.execute(["get"]) == 2
        with pytest.raises(CommandError, match="wrong number of arguments"):
            await app.execute(["ping", "a", "b"])


def test_async_writes_and_reads_are_refused_at_registration() -> None:
    app = App("refuse")

    async def write_fn(m: Machine, args: list[str]) -> Any:
        return None

    with pytest.raises(TypeError, match="must not be async"):
        app.write("w")(write_fn)
    with pytest.raises(TypeError, match="must not be async"):
        app.read("r")(write_fn)
    with pytest.raises(TypeError, match="catch-all"):
        app.catch_all()(write_fn)
    assert app.commands == {}
    app.command("fine")(write_fn)  # an intermediate command may be async
    app.catch_all("command")(write_fn)
    assert app.commands["fine"].kind == "command"
    with pytest.raises(ValueError, match="already defined"):
        app.command("FINE")(write_fn)
