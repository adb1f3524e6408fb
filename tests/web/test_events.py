"""The dashboard's server side without a browser: the page's files, the event
stream (its views, auth, CORS, and that it leaves nothing running when the
client leaves or the node stops) and the command proxy, on in-process nodes
and on a real 3-node cluster."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.routing import Route

from tests.app.inproc import serve, until
from tests.cluster.harness import ROOT, free_port, running, wait_for
from uhaha import App, Machine
from uhaha.http.ui import _EventStream, ui_routes

TICKET = [sys.executable, str(ROOT / "examples" / "ticket.py")]


def make_app() -> App:
    app = App("uitest", version="9.9", initial_data={"n": 0}, json_snapshots=True)

    @app.write("ticket")
    def ticket(m: Machine, args: list[str]) -> int:
        m.data["n"] += 1
        n: int = m.data["n"]
        return n

    return app


def ui_tasks() -> list[asyncio.Task[Any]]:
    """The event stream's tasks still alive (all are named ``uhaha-ui-*``)."""
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("uhaha-ui-")]


async def views(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """The views of an event stream, parsed."""
    event = ""
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:") and event == "view":
            yield json.loads(line[5:])


def sync_views(response: httpx.Response) -> Iterator[dict[str, Any]]:
    event = ""
    for line in response.iter_lines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:") and event == "view":
            yield json.loads(line[5:])


async def test_the_page_and_its_files(tmp_path: Path) -> None:
    async with (
        serve(make_app(), tmp_path) as addr,
        httpx.AsyncClient(base_url=f"http://{addr}", timeout=10) as http,
    ):
        r = await http.get("/ui")
        assert (r.status_code, r.headers["location"]) == (308, "/ui/")
        r = await http.get("/ui/")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert '<script type="module" src="app.js">' in r.text
        assert (await http.get("/ui/index.html")).text == r.text
        r = await http.get("/ui/app.js")
        assert (r.status_code, r.headers["content-type"]) == (200, "text/javascript; charset=utf-8")
        r = await http.get("/ui/style.css")
        assert (r.status_code, r.headers["content-type"]) == (200, "text/css; charset=utf-8")
        for path in ("/ui/nope.js", "/ui/..%2Fpyproject.toml", "/ui/%2E%2E/README.md"):
            assert (await http.get(path)).status_code == 404, path


async def test_a_view_per_second_and_nothing_left_when_the_client_leaves(tmp_path: Path) -> None:
    async with (
        serve(make_app(), tmp_path) as addr,
        httpx.AsyncClient(base_url=f"http://{addr}", timeout=10) as http,
    ):
        await http.post("/cmd/ticket")
        await http.post("/cmd/raft", json=["snapshot", "now"])
        async with http.stream("GET", "/ui/events") as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            assert r.headers["cache-control"] == "no-store"
            seen = []
            async for view in views(r):
                seen.append(view)
                if len(seen) == 2:
                    break
        first, second = seen
        assert second["time"] > first["time"]
        assert first["title"] == "uitest"
        assert first["node"] == {"id": "1", "address": addr}
        assert first["leader"] == "1"
        assert first["self"]["state"] == "leader"
        (node,) = first["nodes"]
        assert node["id"] == "1" and node["leader"] and node["self"] and node["reachable"]
        assert node["voter"] and node["member"]
        assert node["lag"] == 0 and node["applied_index"] >= 2
        assert first["commit_index"] >= node["applied_index"]
        assert len(first["snapshots"]) == 1
        # The node counts the commands its dispatcher was given (the test's own writes).
        assert isinstance(first["requests_total"], int) and first["requests_total"] >= 1
        assert second["requests_total"] >= first["requests_total"]
        # Several watchers at once share the gathering; all of them end with their clients.
        streams = [http.stream("GET", "/ui/events") for _ in range(3)]
        for s in streams:
            response = await s.__aenter__()
            async for _ in views(response):
                break
        assert len(ui_tasks()) >= 3
        for s in streams:
            await s.__aexit__(None, None, None)
        await until(lambda: not ui_tasks(), 20, "the event streams' tasks to end")


async def test_the_stream_over_http2(tmp_path: Path) -> None:
    """Browsers speak HTTP/2 to a TLS node: the stream works there too (here h2c),
    and leaves nothing behind once the client is gone. (httpx does not reset a
    stream it stops reading, as browsers do: closing its connection ends it.)"""
    async with serve(make_app(), tmp_path) as addr:
        async with (
            httpx.AsyncClient(base_url=f"http://{addr}", http1=False, http2=True, timeout=10) as h2,
            h2.stream("GET", "/ui/events") as r,
        ):
            assert r.http_version == "HTTP/2"
            async for view in views(r):
                assert view["leader"] == "1"
                break
        await until(lambda: not ui_tasks(), 20, "the event stream's tasks to end")


async def test_the_stream_ends_when_the_node_stops(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    addr = f"127.0.0.1:{free_port()}"
    proc = await make_app().start(["-n", "1", "-a", addr, "-d", str(tmp_path), "--localtime"])
    stopped = False
    try:
        async with httpx.AsyncClient(base_url=f"http://{addr}", timeout=30) as http:
            await until(
                lambda: http.get("/readyz"), 20, "the node to be ready"
            )  # any answer will do
            got: list[dict[str, Any]] = []
            first = asyncio.Event()

            async def read() -> None:
                async with http.stream("GET", "/ui/events") as r:
                    async for view in views(r):
                        got.append(view)
                        first.set()

            reader = asyncio.create_task(read())
            await asyncio.wait_for(first.wait(), 20)
            await proc.stop()
            stopped = True
            # The stream ended as a complete response (no reset, no cut at the deadline).
            await asyncio.wait_for(reader, 20)
        assert got
        assert not ui_tasks()
        assert "cutting" not in caplog.text  # the front door did not have to cut it
    finally:
        if not stopped:
            await proc.stop()


async def test_auth_cors_and_the_command_proxy(tmp_path: Path) -> None:
    secret = "ui-secret"
    async with (
        serve(make_app(), tmp_path, "--auth", secret) as addr,
        httpx.AsyncClient(base_url=f"http://{addr}", timeout=10) as http,
    ):
        good = {"Authorization": f"Bearer {secret}"}
        bad = {"Authorization": "Bearer nope"}
        assert (await http.get("/ui/")).status_code == 200  # the page asks for the secret
        for headers in ({}, bad):
            r = await http.get("/ui/events", headers=headers)
            assert (r.status_code, r.json()) == (401, {"error": "NOAUTH Authentication required."})
            r = await http.post("/ui/cmd", json={"args": ["ticket"]}, headers=headers)
            assert r.status_code == 401
        async with http.stream("GET", "/ui/events", headers=good) as r:
            assert r.status_code == 200
            async for view in views(r):
                assert view["nodes"][0]["reachable"]
                break
        r = await http.post("/ui/cmd", json={"args": ["ticket"]}, headers=good)
        assert (r.status_code, r.json()) == (200, {"result": 1, "node": addr})
        r = await http.post("/ui/cmd", json=["ticket"], headers=good)  # a bare array works too
        assert r.json()["result"] == 2
        r = await http.post("/ui/cmd", json={"args": ["nope"]}, headers=good)
        assert (r.status_code, r.json()["error"]) == (400, "ERR unknown command 'nope'")
        r = await http.post("/ui/cmd", json={"args": ["raft", "info", "id"]}, headers=good)
        assert r.json()["result"] == {"id": "1"}
        for body in (
            b"[",
            b'{"args": []}',
            b'{"args": [1]}',
            b'"x"',
            b'{"args": ["a"], "node": 1}',
        ):
            r = await http.post("/ui/cmd", content=body, headers=good)
            assert r.status_code == 400 and r.json()["error"].startswith("ERR "), body
        r = await http.post(
            "/ui/cmd", json={"args": ["ping"], "node": "203.0.113.9:80"}, headers=good
        )
        assert r.status_code == 400 and "not a member" in r.json()["error"]
        # CORS: only the members' own origins (here, the node itself) may call.
        for path in ("/ui/events", "/ui/cmd"):
            r = await http.options(
                path,
                headers={
                    "Origin": f"http://{addr}",
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization",
                },
            )
            assert r.status_code == 204
            assert r.headers["access-control-allow-origin"] == f"http://{addr}"
            assert "authorization" in r.headers["access-control-allow-headers"]
            r = await http.options(path, headers={"Origin": "http://evil.example"})
            assert "access-control-allow-origin" not in r.headers
        r = await http.post(
            "/ui/cmd", json={"args": ["ping"]}, headers={**good, "Origin": "http://evil.example"}
        )
        assert "access-control-allow-origin" not in r.headers


async def test_the_request_counter_reaches_the_view(tmp_path: Path) -> None:
    app = make_app()
    async with serve(app, tmp_path):
        proc = app._runtime
        routes = ui_routes(proc.node, proc.dispatcher, requests=lambda: 42, title="t 1")
        events = next(
            r
            for r in routes
            if isinstance(r, Route) and r.path == "/ui/events" and r.methods and "GET" in r.methods
        )
        scope = {"type": "http", "method": "GET", "path": "/ui/events", "headers": []}
        response = await events.endpoint(Request(scope))
        assert isinstance(response, _EventStream)
        try:
            chunk = await anext(response.source)
        finally:
            await response.source.aclose()  # type: ignore[attr-defined]
        event, data = chunk.decode().strip().split("\n")
        assert event == "event: view"
        view = json.loads(data.removeprefix("data: "))
        assert (view["requests_total"], view["title"]) == (42, "t 1")
        assert not ui_tasks()


def test_a_cluster_view_marks_a_killed_member_and_commands_reach_the_leader(
    tmp_path: Path,
) -> None:
    with running(tmp_path, 3, program=TICKET) as c:
        leader = c.wait_leader()
        follower, other = (p for p in c.live() if p is not leader)
        with httpx.Client(base_url=f"http://{follower.address}", timeout=30) as http:
            # A follower's console: TICKET is forwarded to the leader, RAFT INFO
            # runs where it is asked to.
            r = http.post("/ui/cmd", json={"args": ["TICKET"]})
            assert (r.status_code, r.json()) == (200, {"result": 1, "node": leader.address})
            r = http.post("/ui/cmd", json={"args": ["RAFT", "INFO", "id"], "node": other.address})
            assert r.json() == {"result": {"id": other.node_id}, "node": other.address}
            with http.stream("GET", "/ui/events") as s:
                stream = sync_views(s)
                view = next(stream)
                assert view["node"]["id"] == follower.node_id
                assert view["leader"] == leader.node_id
                assert sorted(n["id"] for n in view["nodes"]) == ["1", "2", "3"]
                assert all(n["reachable"] for n in view["nodes"])
                assert [n["id"] for n in view["nodes"] if n["leader"]] == [leader.node_id]
                assert all(isinstance(n["lag"], int) for n in view["nodes"])
                other.kill()
                for view in stream:
                    gone = next(n for n in view["nodes"] if n["id"] == other.node_id)
                    if not gone["reachable"]:
                        break
                assert gone["error"] and gone["lag"] is None and gone["state"] is None
                alive = [n for n in view["nodes"] if n["id"] != other.node_id]
                assert all(n["reachable"] for n in alive)
        wait_for(lambda: c.leader() is not None, 30, "a leader")
