"""The JSON HTTP API on an in-process node: /cmd/{name}, the /cmd pipeline,
/status, /healthz, /readyz, the body limit, and ``--auth`` over HTTP and RESP."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.app.inproc import serve
from uhaha import App, Machine
from uhaha.errors import wrong_args
from uhaha.http import api


def make_app() -> App:
    app = App("httpapi", initial_data={"kv": {}, "n": 0}, json_snapshots=True)

    @app.write("set")
    def set_(m: Machine, args: list[str]) -> str:
        if len(args) != 2:
            raise wrong_args()
        m.data["kv"][args[0]] = args[1]
        return "OK"

    @app.read("get")
    def get(m: Machine, args: list[str]) -> Any:
        if len(args) != 1:
            raise wrong_args()
        return m.data["kv"].get(args[0])

    @app.write("incr")
    def incr(m: Machine, args: list[str]) -> int:
        if args:
            raise wrong_args()
        m.data["n"] += 1
        n: int = m.data["n"]
        return n

    @app.command("args")
    def echo_args(m: Machine, args: list[str]) -> list[str]:
        return args

    @app.read("info")
    def info(m: Machine, args: list[str]) -> Any:
        return {"n": m.data["n"], "pi": 3.5, "yes": True, "none": None, "raw": b"bytes"}

    return app


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        serve(make_app(), tmp_path) as addr,
        httpx.AsyncClient(base_url=f"http://{addr}", timeout=10) as client,
    ):
        yield client


async def test_cmd_with_array_object_and_empty_bodies(http: httpx.AsyncClient) -> None:
    r = await http.post("/cmd/set", json=["name", "Tom"])
    assert (r.status_code, r.json()) == (200, {"result": "OK"})
    assert r.headers["content-type"] == "application/json"
    r = await http.post("/cmd/set", json={"args": ["age", 42]})  # numbers become strings
    assert (r.status_code, r.json()) == (200, {"result": "OK"})
    r = await http.post("/cmd/incr")  # no body at all
    assert (r.status_code, r.json()) == (200, {"result": 1})
    r = await http.post("/cmd/incr", content=b"  \n")  # only whitespace: no arguments
    assert r.json() == {"result": 2}
    r = await http.post("/cmd/INCR", json={})  # an object without args: none
    assert r.json() == {"result": 3}
    assert (await http.post("/cmd/get", json=["age"])).json() == {"result": "42"}
    assert (await http.post("/cmd/args", json=["a", 1.5, "ü"])).json() == {
        "result": ["a", "1.5", "ü"]
    }
    r = await http.post("/cmd/info")
    assert r.json() == {"result": {"n": 3, "pi": 3.5, "yes": True, "none": None, "raw": "bytes"}}


async def test_get_with_query_arguments(http: httpx.AsyncClient) -> None:
    await http.post("/cmd/set", json=["city", "Paris"])
    r = await http.get("/cmd/get", params={"arg": "city"})
    assert (r.status_code, r.json()) == (200, {"result": "Paris"})
    assert (await http.get("/cmd/get?arg=nope")).json() == {"result": None}
    r = await http.get("/cmd/args", params=[("arg", "x y"), ("arg", "&"), ("arg", "")])
    assert r.json() == {"result": ["x y", "&", ""]}
    r = await http.get("/cmd/get")
    assert (r.status_code, r.json()) == (400, {"error": "ERR wrong number of arguments"})


async def test_errors_are_json(http: httpx.AsyncClient) -> None:
    r = await http.post("/cmd/nope", json=["x"])
    assert (r.status_code, r.json()) == (400, {"error": "ERR unknown command 'nope'"})
    r = await http.post("/cmd/set", json=["only-key"])
    assert (r.status_code, r.json()) == (400, {"error": "ERR wrong number of arguments"})
    for body in (b"[1,", b"{not json}", b"\xff\xfe"):
        r = await http.post("/cmd/set", content=body)
        assert r.status_code == 400
        assert r.json()["error"].startswith("ERR invalid JSON body")
    for value in ('"text"', "[[1]]", "[true]", "[null]", '{"args": "x"}'):
        r = await http.post("/cmd/set", content=value.encode())
        assert r.status_code == 400, value
        assert r.json()["error"].startswith("ERR "), value
    # Nothing of the above was applied.
    assert (await http.get("/cmd/get?arg=only-key")).json() == {"result": None}


async def test_pipeline_mixes_results_and_errors(http: httpx.AsyncClient) -> None:
    r = await http.post(
        "/cmd",
        json=[
            ["set", "a", "1"],
            ["get", "a"],
            ["nope"],
            [],
            ["set", "a"],
            {"args": ["incr"]},
            ["set", "a", 2],
            ["get", "a"],
        ],
    )
    assert r.status_code == 200
    assert r.json() == [
        {"result": "OK"},
        {"result": "1"},
        {"error": "ERR unknown command 'nope'"},
        {"error": "ERR empty command"},
        {"error": "ERR wrong number of arguments"},
        {"result": 1},
        {"result": "OK"},
        {"result": "2"},
    ]
    r = await http.post("/cmd", json={"args": ["incr"]})  # a pipeline is an array
    assert r.status_code == 400 and r.json()["error"].startswith("ERR ")
    r = await http.post("/cmd", json=[["incr"], "incr"])  # of arrays: nothing runs
    assert r.status_code == 400
    assert (await http.post("/cmd/incr")).json() == {"result": 2}
    assert (await http.post("/cmd", content=b"[")).status_code == 400


async def test_body_limit(http: httpx.AsyncClient) -> None:
    # The real limit, announced by Content-Length: refused before any body is read.
    url = http.base_url
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        writer.write(
            b"POST /cmd/set HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (api.MAX_BODY + 1)
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 413 ")


async def test_body_limit_from_the_flag(tmp_path: Path) -> None:
    # --limit http-body-bytes: send more than it, in one piece and streamed (chunked).
    expected = {"error": "ERR request body too large (limit 1000 bytes)"}
    big = b'["k", "' + b"v" * 1000 + b'"]'
    async with (
        serve(make_app(), tmp_path, "--limit", "http-body-bytes=1000") as addr,
        httpx.AsyncClient(base_url=f"http://{addr}") as http,
    ):
        r = await http.post("/cmd/set", content=big)
        assert (r.status_code, r.json()) == (413, expected)

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(20):
                yield b" " * 100

        r = await http.post("/cmd/set", content=chunks())
        assert (r.status_code, r.json()) == (413, expected)
        r = await http.post("/cmd", content=big)
        assert (r.status_code, r.json()) == (413, expected)
        assert (await http.get("/cmd/get?arg=k")).json() == {"result": None}
        # Just under it is fine.
        r = await http.post("/cmd/set", content=b'["k", "' + b"v" * 900 + b'"]')
        assert r.json() == {"result": "OK"}


async def test_status_healthz_readyz(http: httpx.AsyncClient) -> None:
    r = await http.get("/status")
    assert r.status_code == 200
    status = r.json()
    addr = f"{http.base_url.host}:{http.base_url.port}"
    assert status["state"] == "leader" and status["leader"] == addr
    assert status["members"] == [{"id": "1", "address": addr, "voter": True}]
    assert (await http.get("/healthz")).json() == {"ok": True}
    r = await http.get("/readyz")
    assert (r.status_code, r.json()) == (200, {"ready": True})
    assert (await http.post("/status")).status_code == 405
    assert (await http.get("/nothing-here")).status_code == 404


async def redis_cli(addr: str, *args: str) -> str:
    """redis-cli in a thread: the node it talks to runs on this event loop."""
    host, port = addr.rsplit(":", 1)
    out = await asyncio.to_thread(
        subprocess.run,
        ["redis-cli", "-h", host, "-p", port, *args],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return out.stdout.strip()


async def test_auth_over_http_and_resp(tmp_path: Path) -> None:
    async with (
        serve(make_app(), tmp_path, "--auth", "secret") as addr,
        httpx.AsyncClient(base_url=f"http://{addr}", timeout=10) as http,
    ):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "secret"}):
            for method, path in (("POST", "/cmd/incr"), ("GET", "/status"), ("POST", "/cmd")):
                r = await http.request(method, path, headers=headers, json=[["incr"]])
                assert r.status_code == 401, (headers, path)
                assert r.json() == {"error": "NOAUTH Authentication required."}
                assert r.headers["www-authenticate"] == "Bearer"
        good = {"Authorization": "Bearer secret"}
        r = await http.post("/cmd/incr", headers=good)
        assert (r.status_code, r.json()) == (200, {"result": 1})  # the refused ones did nothing
        assert (await http.get("/status", headers=good)).status_code == 200
        # Probes need no secret.
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).status_code == 200

        noauth = "NOAUTH Authentication required."
        assert await redis_cli(addr, "INCR") == noauth
        assert await redis_cli(addr, "-a", "wrong", "--no-auth-warning", "INCR") == noauth
        assert await redis_cli(addr, "-a", "secret", "--no-auth-warning", "INCR") == "2"
        assert await redis_cli(addr, "-a", "secret", "--no-auth-warning", "GET", "k") == ""


async def test_get_never_changes_data(http: httpx.AsyncClient) -> None:
    """GET runs only commands that change nothing: a write, or a built-in that
    changes the cluster, answers 405 and points at POST."""
    r = await http.get("/cmd/set?arg=k&arg=v")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert (await http.get("/cmd/get?arg=k")).json() == {"result": None}
    for path in (
        "/cmd/barrier",
        "/cmd/raft?arg=snapshot&arg=now",
        "/cmd/raft?arg=server&arg=remove&arg=1",
    ):
        assert (await http.get(path)).status_code == 405, path
    for path in ("/cmd/ping", "/cmd/raft?arg=info", "/cmd/raft?arg=server&arg=list"):
        assert (await http.get(path)).status_code == 200, path
