"""The OpenAPI description: ``openapi/openapi.json`` is valid OpenAPI 3.1, a
node serves it (with the application's routes merged in) at ``/openapi.json``,
it names every route a node serves, method by method, and nothing else, and
a short schemathesis run against a real kvdb cluster finds no answer that
breaks it (no 5xx, statuses, headers and bodies as described)."""

from __future__ import annotations

import fnmatch
import json
import re
import runpy
import subprocess
import sys
import tomllib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from openapi_spec_validator import validate
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Receive, Scope, Send

from tests.app.inproc import until
from tests.cluster.harness import ROOT, free_port
from tests.http.nodes import SECRET, client, kvdb_cluster
from uhaha import App
from uhaha.http.openapi import describe, description_path, load_description

STATIC = ROOT / "openapi" / "openapi.json"
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}

# The run is bounded: examples per operation and phase, a timeout per request,
# a timeout for the whole process.
SCHEMATHESIS_EXAMPLES = 10
SCHEMATHESIS_TIMEOUT = 300.0

# A command API cannot describe which names exist or how many arguments each
# takes, so "schema-valid request rejected" (an unknown command is a 400) is
# not checked. The event stream is read for one event (it never ends by itself).
SCHEMATHESIS_CONFIG = """\
max-stream-events = 1
"""


def served(routes: Sequence[BaseRoute], prefix: str = "") -> set[tuple[str, str]]:
    """(OpenAPI path, method) of every route; HEAD is implied by GET and left out.
    A mounted application that lists no routes counts as (path, "*")."""
    out: set[tuple[str, str]] = set()
    for route in routes:
        if isinstance(route, Route):
            for method in route.methods or {"*"}:
                if method != "HEAD":
                    out.add((prefix + route.path_format, method.lower()))
        elif isinstance(route, Mount):
            if route.routes:
                out |= served(route.routes, prefix + route.path)
            else:
                out.add((prefix + route.path_format, "*"))
    return out


def described(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, item in spec["paths"].items()
        for method in item
        if method in METHODS
    }


def test_the_file_is_valid_openapi_31_and_is_what_the_package_loads() -> None:
    spec = json.loads(STATIC.read_text())
    validate(spec)
    assert spec["openapi"] == "3.1.0"
    assert description_path().resolve() == STATIC.resolve()
    assert load_description() == spec
    bearer = spec["components"]["securitySchemes"]["bearer"]
    assert (bearer["type"], bearer["scheme"]) == ("http", "bearer")
    open_ops = {
        (path, method)
        for path, method in described(spec)
        if spec["paths"][path][method].get("security") == []
    }
    assert ("/healthz", "get") in open_ops and ("/openapi.json", "get") in open_ops
    assert ("/metrics", "get") not in open_ops and ("/status", "get") not in open_ops


def make_app() -> App:
    """A fresh copy of examples/webticket.py's app (a ticket app with a route
    and a service of its own)."""
    app: App = runpy.run_path(str(ROOT / "examples" / "webticket.py"))["app"]
    return app


def test_the_file_ships_in_the_wheel_as_uhaha_openapi() -> None:
    # Checked by hand with `pip wheel --no-deps .`: the wheel holds
    # uhaha/openapi/openapi.json, and description_path() finds it there.
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "uhaha.openapi" in config["packages"]
    assert config["package-dir"]["uhaha.openapi"] == "openapi"
    patterns = config["package-data"]["uhaha.openapi"]
    assert any(fnmatch.fnmatch(STATIC.name, pattern) for pattern in patterns)


@asynccontextmanager
async def webticket_node(data: Path, *flags: str) -> AsyncIterator[tuple[Any, str]]:
    """An app with a custom route as an in-process node: (its process, its address)."""
    addr = f"127.0.0.1:{free_port()}"
    argv = ["-n", "1", "-a", addr, "-d", str(data), "--localtime", *flags]
    async with make_app().running(argv) as proc, httpx.AsyncClient(timeout=5) as http:

        async def ready() -> bool:
            return (await http.get(f"http://{addr}/readyz")).status_code == 200

        await until(ready, what="the node to be ready")
        yield proc, addr


async def test_every_route_of_a_node_is_described_and_every_description_served(
    tmp_path: Path,
) -> None:
    async with (
        webticket_node(tmp_path, "--auth", SECRET) as (proc, addr),
        httpx.AsyncClient(base_url=f"http://{addr}", timeout=10) as http,
    ):
        r = await http.get("/openapi.json")  # open, even with --auth
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json"
        spec = r.json()
    validate(spec)
    routes = served(proc.asgi.routes)
    assert routes == described(spec), (
        f"routes not described: {sorted(routes - described(spec))}; "
        f"described but not served: {sorted(described(spec) - routes)}"
    )
    # The application's route came in as a generic operation behind the secret.
    for method in ("get", "post"):
        op = spec["paths"]["/next"][method]
        assert op["tags"] == ["app"] and "security" not in op
        assert op["responses"]["401"] == {"$ref": "#/components/responses/Unauthorized"}
    assert spec["security"] == [{"bearer": []}]
    assert spec["info"]["title"] == "webticket (uhaha node)"
    assert spec["info"]["version"] == "1.0.0"
    # What the file says of the built-in routes is served as it is.
    static = load_description()
    for path, item in static["paths"].items():
        assert spec["paths"][path] == item, path


async def test_head_left_implied_by_get_changes_nothing_either(tmp_path: Path) -> None:
    # The description leaves HEAD implied by GET (Starlette answers HEAD on
    # every GET route): HEAD /cmd/{name} must refuse writes as GET does.
    async with (
        webticket_node(tmp_path) as (_, addr),
        httpx.AsyncClient(base_url=f"http://{addr}", timeout=10) as http,
    ):
        r = await http.head("/cmd/ticket")
        assert (r.status_code, r.headers["allow"]) == (405, "POST")
        assert (await http.head("/cmd/ping")).status_code == 200
        assert (await http.post("/cmd/ticket")).json() == {"result": 1}


async def test_a_node_without_auth_describes_no_security(tmp_path: Path) -> None:
    async with (
        webticket_node(tmp_path) as (_, addr),
        httpx.AsyncClient(base_url=f"http://{addr}", timeout=10) as http,
    ):
        spec = (await http.get("/openapi.json")).json()
    validate(spec)
    assert "security" not in spec
    for path, method in described(spec):
        assert spec["paths"][path][method].get("security", []) == [], (path, method)


async def _asgi(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("mounted")(scope, receive, send)


async def _items(request: Request) -> PlainTextResponse:
    """Replace item n."""
    return PlainTextResponse("ok")


def test_describe_turns_app_routes_into_generic_operations() -> None:
    public = Route("/hello/{who}", _items, methods=["GET"])
    routes: list[BaseRoute] = [
        Route("/items/{n:int}", _items, methods=["PUT", "DELETE"]),
        public,
        Mount("/files", app=_asgi),
        Mount("/v2", routes=[Route("/ping/{t:float}", _items, methods=["GET"])]),
        Route("/status", _items, methods=["GET"]),  # the built-in route answers it
    ]
    base = load_description()
    spec = describe(base, routes, title="t", version="9", public={id(public)})
    validate(spec)
    assert spec["paths"]["/status"] == base["paths"]["/status"]
    put = spec["paths"]["/items/{n}"]["put"]
    assert put["summary"] == "Replace item n."
    assert put["parameters"] == [
        {"name": "n", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}
    ]
    assert "requestBody" in put and "requestBody" not in spec["paths"]["/items/{n}"]["delete"]
    assert spec["paths"]["/hello/{who}"]["get"]["security"] == []
    assert set(spec["paths"]["/files/{path}"]) == {"get", "post", "put", "patch", "delete"}
    ping = spec["paths"]["/v2/ping/{t}"]["get"]
    assert ping["parameters"][0]["schema"] == {"type": "number", "minimum": 0}
    assert described(spec) - described(base) == {
        ("/items/{n}", "put"),
        ("/items/{n}", "delete"),
        ("/hello/{who}", "get"),
        *(("/files/{path}", m) for m in ("get", "post", "put", "patch", "delete")),
        ("/v2/ping/{t}", "get"),
    }
    assert base == load_description()  # describe() works on a copy


def run_schemathesis(base: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    config = workdir / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_CONFIG)
    cmd = [
        sys.executable, "-m", "schemathesis.cli",
        "--config-file", str(config),
        "run", f"{base}/openapi.json",
        "--header", f"Authorization: Bearer {SECRET}",
        "--max-examples", str(SCHEMATHESIS_EXAMPLES),
        "--exclude-checks", "positive_data_acceptance",
        "--request-timeout", "10",
        "--max-redirects", "0",
        "--no-color",
    ]  # fmt: skip
    return subprocess.run(
        cmd, cwd=workdir, capture_output=True, text=True, timeout=SCHEMATHESIS_TIMEOUT, check=False
    )


def test_schemathesis_finds_no_nonconformance_on_a_leader_and_a_follower(
    tmp_path: Path,
) -> None:
    with kvdb_cluster(tmp_path / "cluster") as cluster:
        leader, follower = cluster.leader, cluster.followers[0]
        for p in (leader, follower):  # a snapshot for GET /snapshots/{id} to find
            with client(p) as http:
                r = http.post("/cmd/raft", json=["snapshot", "now"])
                assert r.status_code == 200, r.text
        # A follower's redirect keeps the path and query as the client sent them.
        with client(follower) as http:
            r = http.get("/cmd/get", params=[("arg", "a b/ü")])
        assert r.status_code == 307
        assert r.headers["location"] == f"http://{leader.address}/cmd/get?arg=a+b%2F%C3%BC"
        assert r.json() == {"error": f"MOVED 0 {leader.address}"}
        for p in (leader, follower):
            work = tmp_path / f"schemathesis-{p.node_id}"
            work.mkdir()
            out = run_schemathesis(f"http://{p.address}", work)
            assert out.returncode == 0, f"on node {p.node_id}:\n{out.stdout}\n{out.stderr}"
            # Every operation was tested (none filtered out or unusable).
            counts = re.search(r"Operations: +(\d+) selected / (\d+) total", out.stdout)
            tested = re.search(r"Tested: (\d+)\n", out.stdout)
            assert counts is not None and tested is not None, out.stdout
            assert counts.group(1) == counts.group(2) == tested.group(1), out.stdout
