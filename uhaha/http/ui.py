"""The web dashboard: ``/ui/`` serves the page from ``web/``, ``/ui/events``
streams the cluster as server-sent events, ``/ui/cmd`` runs a command.

- ``GET /ui/`` (and ``/ui/app.js``, ``/ui/style.css``): the static page. It
  needs no secret, so that it can ask for one.
- ``GET /ui/events``: ``text/event-stream`` of ``event: view`` messages, one
  about every second and one as soon as this node sees the leader or term
  change. A view is this node's ``RAFT INFO`` plus every member's facts,
  gathered here from their ``GET /status`` (short timeout, the cluster secret,
  the peer TLS context), with reachability and lag (the leader's commit index
  minus the member's applied index), this node's snapshots and, when the
  owner supplies a counter, the total of requests served.
- ``POST /ui/cmd``: body ``{"args": ["TICKET"], "node": "host:port"}``
  (``node`` optional: this node). Runs the command on that node as
  ``redis-cli -c`` would: this node runs it through the dispatcher, another
  member through its own ``POST /cmd/{name}``, and a follower's redirect to
  the leader is followed here, on the server. Answers ``{"result": ...}`` or
  ``{"error": ...}`` with the status of the node that answered, plus
  ``"node"``: the address of that node.

With ``--auth``, the events and commands need ``Authorization: Bearer
<secret>``. The page sends it with ``fetch`` (an ``EventSource`` cannot send
headers) and reads the event stream from the response body.

Both dynamic routes answer cross-origin requests from the cluster's own
members' origins (and from no other): when the node that served the page
goes down, the page follows the cluster through another member.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import ssl as ssl_module
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from ..builtins import snapshot_json
from ..dispatch import Dispatcher
from ..errors import CommandError, Moved
from ..node import Node, NotLeaderError, OutcomeUnknown, ProposalFailed
from ..raft import Member
from ..security import bearer_checker
from ..storage import StorageError
from .api import jsonable

__all__ = ["PERIOD", "ui_routes", "web_dir"]

log = logging.getLogger("uhaha.ui")

PERIOD = 1.0
"""Seconds between two views of the event stream (when nothing changes)."""

STATUS_TIMEOUT = 1.5
"""Seconds a member gets to answer ``GET /status`` before it counts as unreachable."""

COMMAND_TIMEOUT = 30.0
"""Seconds a forwarded command may take (membership changes wait for a commit)."""

MAX_COMMAND_BODY = 1 << 20
"""Largest ``POST /ui/cmd`` body (bytes): the console is for people typing."""

MAX_HOPS = 3
"""Redirects to the leader followed for one command (the leader may move meanwhile)."""

MAX_SNAPSHOTS = 10
"""Snapshots listed in a view (the newest)."""

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}

_PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Scripts and styles only from the node; connections also to the other
    # members (the page follows the cluster when its own node is down).
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self' http: https:; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'none'"
    ),
}

# The facts of each member a view carries (from its RAFT INFO).
_FACTS = (
    "state",
    "term",
    "leader_id",
    "voter",
    "first_index",
    "last_index",
    "commit_index",
    "applied_index",
    "snapshot_index",
    "logs_loaded_percent",
    "receiving_snapshot_percent",
    "uptime_s",
    "loop_lag_max_ms",
)


def web_dir() -> Path | None:
    """Where the page's files are: inside the installed package (a wheel puts
    ``web/`` at ``uhaha/web``), else at the root of a source checkout (an
    editable install, or running from the repository)."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "web", here.parent / "web"):
        if (candidate / "index.html").is_file():
            return candidate
    return None


class _Unauthorized(Exception):
    pass


class _Collector:
    """Gathers the cluster view, at most once per period however many pages
    watch it, and tells every watcher when the leader or term changes here.

    Its HTTP client lives while someone watches: the last watcher to leave
    closes it, so an idle node holds no connections to its peers."""

    def __init__(
        self,
        node: Node,
        secret: str,
        ssl: ssl_module.SSLContext | None,
        requests: Callable[[], int] | None,
        title: str,
    ) -> None:
        self.node = node
        self.secret = secret
        self.ssl = ssl
        self.scheme = "https" if ssl is not None else "http"
        self.requests = requests
        self.title = title
        self._client: httpx.AsyncClient | None = None
        self._watchers: set[asyncio.Event] = set()
        self._lock = asyncio.Lock()
        self._view: dict[str, Any] | None = None
        self._view_at = 0.0
        node.role_listeners.append(self._changed)

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                verify=self.ssl if self.ssl is not None else True,
                timeout=STATUS_TIMEOUT,
                trust_env=False,  # peers are reached directly, never through a proxy
                headers={"Authorization": f"Bearer {self.secret}"} if self.secret else None,
            )
        return self._client

    def _changed(self, role: str) -> None:
        """A role listener of the node: its role, leader or term changed."""
        for event in self._watchers:
            event.set()

    @contextlib.asynccontextmanager
    async def watch(self) -> AsyncIterator[asyncio.Event]:
        """An event set on every change here, for as long as the block runs."""
        event = asyncio.Event()
        self._watchers.add(event)
        try:
            yield event
        finally:
            self._watchers.discard(event)
            if not self._watchers and self._client is not None:
                client, self._client = self._client, None
                await client.aclose()

    async def view(self, newer_than: float) -> dict[str, Any]:
        """A view gathered after ``newer_than`` (a ``time.monotonic()`` value):
        the last one if it is recent enough, else a new one."""
        async with self._lock:
            if self._view is None or self._view_at <= newer_than:
                started = time.monotonic()
                self._view = await self._gather()
                self._view_at = started
            return self._view

    async def _status(self, address: str) -> dict[str, Any]:
        """A member's ``GET /status``, or why it could not be had."""
        try:
            reply = await self.client().get(f"{self.scheme}://{address}/status")
        except httpx.HTTPError as e:
            return {"reachable": False, "error": _reason(e)}
        if reply.status_code != 200:
            return {"reachable": False, "error": f"HTTP {reply.status_code}"}
        try:
            status = reply.json()
        except ValueError:
            return {"reachable": False, "error": "not a JSON answer"}
        if not isinstance(status, dict):
            return {"reachable": False, "error": "not a status"}
        return {"reachable": True, **{k: status.get(k) for k in _FACTS}}

    async def _gather(self) -> dict[str, Any]:
        node = self.node
        info = node.info()  # raises ProposalFailed once the node stops
        members = node.members()
        others = [m for m in members if m.id != node.id]
        answers = await asyncio.gather(*(self._status(m.address) for m in others))
        info = node.info()  # again: it may have changed while the others answered
        blank = dict.fromkeys(_FACTS)  # an unreachable member's facts are unknown (null)
        facts = {m.id: {**blank, **a} for m, a in zip(others, answers, strict=True)}
        facts[node.id] = {"reachable": True, **{k: info.get(k) for k in _FACTS}}
        listed = list(members)
        if all(m.id != node.id for m in members):  # joining, or removed
            listed.append(Member(node.id, info["address"], False))
        nodes = []
        for m in listed:
            entry: dict[str, Any] = {
                "id": m.id,
                "address": m.address,
                "member": any(x.id == m.id for x in members),
                "self": m.id == node.id,
                **facts[m.id],
            }
            entry["voter"] = m.voter
            nodes.append(entry)
        leader = _leader(nodes, info)
        reachable = [n for n in nodes if n["reachable"]]
        top = next((n for n in reachable if n["id"] == leader), None)
        if top is not None and top.get("state") == "leader":
            commit = top.get("commit_index")
        else:  # no reachable leader: the furthest commit anyone reports
            commit = max((n.get("commit_index") or 0 for n in reachable), default=0)
        for n in nodes:
            applied = n.get("applied_index")
            n["lag"] = (
                max(0, commit - applied)
                if n["reachable"] and isinstance(commit, int) and isinstance(applied, int)
                else None
            )
            n["leader"] = n["id"] == leader
        return {
            "time": time.time(),
            "title": self.title,
            "self": info,
            "node": {"id": node.id, "address": info["address"]},
            "leader": leader,
            "term": max((n.get("term") or 0 for n in reachable), default=0),
            "commit_index": commit,
            "nodes": nodes,
            "snapshots": self._snapshots(),
            "requests_total": self._requests(),
        }

    def _snapshots(self) -> list[dict[str, Any]]:
        try:
            return [snapshot_json(s) for s in self.node.snapshots.list()[:MAX_SNAPSHOTS]]
        except StorageError as e:  # the view goes on without them
            log.warning("dashboard: cannot list the snapshots: %s", e)
            return []

    def _requests(self) -> int | None:
        if self.requests is None:
            return None
        try:
            return int(self.requests())
        except Exception:
            log.exception("dashboard: the request counter failed")
            return None


def _leader(nodes: list[dict[str, Any]], info: dict[str, Any]) -> str:
    """The leader's id: a reachable node that says it leads (the highest term
    wins over a deposed leader that has not heard yet), else whom this node
    follows, else ""."""
    leading = [n for n in nodes if n["reachable"] and n.get("state") == "leader"]
    if leading:
        best: str = max(leading, key=lambda n: n.get("term") or 0)["id"]
        return best
    return str(info.get("leader_id") or "")


def _reason(e: Exception) -> str:
    if isinstance(e, httpx.TimeoutException):
        return "timed out"
    if isinstance(e, httpx.ConnectError):
        return "connection refused or unreachable"
    return type(e).__name__


class _EventStream(Response):
    """A ``text/event-stream`` response fed by ``source``. It ends when the
    source ends (the node stops) or the client goes away, whichever comes
    first; when the request itself is cancelled (the front door cutting
    connections) its tasks are cancelled and awaited too: nothing outlives it."""

    media_type = "text/event-stream"

    def __init__(self, source: AsyncIterator[bytes], headers: dict[str, str]) -> None:
        self.source = source
        self.status_code = 200
        self.background = None
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})

        async def pump() -> None:
            async for chunk in self.source:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})

        async def gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        tasks = [
            asyncio.create_task(pump(), name="uhaha-ui-pump"),
            asyncio.create_task(gone(), name="uhaha-ui-gone"),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            aclose = getattr(self.source, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        if tasks[0].cancelled():
            return  # the client left: nothing more to say
        error = tasks[0].exception()
        if error is not None:
            if not isinstance(error, OSError):  # not a broken connection: a bug
                log.error("dashboard: the event stream failed", exc_info=error)
            return
        with contextlib.suppress(OSError):
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def _sse(event: str, data: Any) -> bytes:
    text = json.dumps(data, separators=(",", ":"), default=str)
    return f"event: {event}\ndata: {text}\n\n".encode()


def ui_routes(
    node: Node,
    dispatcher: Dispatcher,
    auth: str = "",
    *,
    ssl: ssl_module.SSLContext | None = None,
    requests: Callable[[], int] | None = None,
    title: str = "uhaha",
    on_auth_failure: Callable[[str], None] | None = None,
) -> list[BaseRoute]:
    """The dashboard's routes for one node.

    ``auth``: the cluster secret (``--auth``), needed by the events and the
    commands, and sent to the other members for their status. ``ssl``: the
    client TLS context peers are reached with (None: plain HTTP). ``requests``:
    returns the total of requests this node has served, for the request-rate
    chart (None: the chart shows applied entries instead). ``title``: shown
    on the page (the application's name and version). ``on_auth_failure``
    hears the remote address of each wrong secret.
    """
    collector = _Collector(node, auth, ssl, requests, title)
    files = _files()

    check = bearer_checker(auth, on_auth_failure)

    def authorize(request: Request) -> None:
        if not check(request.scope):
            raise _Unauthorized

    def member_addresses() -> set[str]:
        try:
            found = {m.address for m in node.members()}
        except ProposalFailed:
            found = set()
        found.add(node.options.advertise)
        return found

    def cors(request: Request) -> dict[str, str]:
        """CORS headers for a member's origin (the page served by another node)."""
        origin = request.headers.get("origin")
        if not origin:
            return {}
        allowed = {f"{collector.scheme}://{a}" for a in member_addresses()}
        if origin not in allowed:
            return {"Vary": "Origin"}
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}

    def unauthorized(request: Request) -> Response:
        return JSONResponse(
            {"error": "NOAUTH Authentication required."},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer", **cors(request)},
        )

    async def redirect(request: Request) -> Response:
        return RedirectResponse("/ui/", status_code=308)

    async def page(request: Request) -> Response:
        name = request.path_params.get("name", "index.html")
        path = files.get(name)
        if path is None:
            return JSONResponse({"error": "ERR not found"}, status_code=404)
        return FileResponse(path, media_type=_TYPES[path.suffix], headers=_PAGE_HEADERS)

    async def preflight(request: Request) -> Response:
        headers = cors(request)
        if "Access-Control-Allow-Origin" in headers:
            headers.update(
                {
                    "Access-Control-Allow-Methods": "GET, POST",
                    "Access-Control-Allow-Headers": "authorization, content-type",
                    "Access-Control-Max-Age": "600",
                }
            )
        return Response(status_code=204, headers=headers)

    async def stream() -> AsyncIterator[bytes]:
        async with collector.watch() as changed:
            stop = asyncio.create_task(node.stopped.wait(), name="uhaha-ui-stop")
            stop.add_done_callback(lambda _: changed.set())
            try:
                asked = time.monotonic() - PERIOD / 2
                while not stop.done():
                    try:
                        view = await collector.view(asked)
                    except ProposalFailed:
                        return  # the node is stopping
                    yield _sse("view", view)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(), PERIOD)
                    if changed.is_set():
                        changed.clear()
                        asked = time.monotonic()  # a change: a view gathered after it
                    else:
                        asked = time.monotonic() - PERIOD / 2
            finally:
                stop.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stop

    async def events(request: Request) -> Response:
        try:
            authorize(request)
        except _Unauthorized:
            return unauthorized(request)
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no", **cors(request)}
        return _EventStream(stream(), headers)

    async def command(request: Request) -> Response:
        headers = cors(request)
        try:
            authorize(request)
            args, target = await _command_body(request)
        except _Unauthorized:
            return unauthorized(request)
        except ValueError as e:
            return JSONResponse({"error": f"ERR {e}"}, status_code=400, headers=headers)
        members = member_addresses()
        target = target or node.options.advertise
        if target not in members:
            return JSONResponse(
                {"error": f"ERR {target} is not a member of this cluster"},
                status_code=400,
                headers=headers,
            )
        auth_header = request.headers.get("authorization")
        for _ in range(MAX_HOPS + 1):
            if target == node.options.advertise:
                status, body, moved = await _run_here(dispatcher, args)
            else:
                status, body, moved = await _run_there(
                    collector, target, args, auth_header, members
                )
            if not moved:
                return JSONResponse({**body, "node": target}, status_code=status, headers=headers)
            target = moved
        return JSONResponse(
            {"error": "ERR the leader keeps moving: try again", "node": target},
            status_code=503,
            headers=headers,
        )

    return [
        Route("/ui", redirect, methods=["GET"]),
        Route("/ui/events", events, methods=["GET"]),
        Route("/ui/events", preflight, methods=["OPTIONS"]),
        Route("/ui/cmd", command, methods=["POST"]),
        Route("/ui/cmd", preflight, methods=["OPTIONS"]),
        Route("/ui/", page, methods=["GET"]),
        Route("/ui/{name}", page, methods=["GET"]),
    ]


def _files() -> dict[str, Path]:
    """The page's files by name (only these are served: no paths from requests)."""
    where = web_dir()
    if where is None:
        log.warning("the dashboard's files (web/) are missing: /ui/ will answer 404")
        return {}
    return {p.name: p for p in sorted(where.iterdir()) if p.is_file() and p.suffix in _TYPES}


async def _command_body(request: Request) -> tuple[list[str], str]:
    """The arguments and target node of a ``POST /ui/cmd``."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_COMMAND_BODY:
            raise ValueError(f"request body too large (limit {MAX_COMMAND_BODY} bytes)")
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("invalid JSON body") from None
    if isinstance(value, list):
        value = {"args": value}
    if not isinstance(value, dict):
        raise ValueError('the body must be {"args": [...], "node": "host:port"}')
    args = value.get("args")
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        raise ValueError("args must be a non-empty array of strings")
    target = value.get("node", "")
    if target is None:
        target = ""
    if not isinstance(target, str):
        raise ValueError("node must be an address (a string)")
    return args, target


async def _run_here(dispatcher: Dispatcher, args: list[str]) -> tuple[int, dict[str, Any], str]:
    """Run a command on this node: (status, body, the leader's address when moved)."""
    try:
        result = dispatcher.submit(None, args)
        if inspect.isawaitable(result):
            result = await result
    except Moved as e:
        return e.status, {"error": e.message}, e.leader
    except CommandError as e:
        return e.status, {"error": e.message}, ""
    except (NotLeaderError, ProposalFailed, OutcomeUnknown) as e:
        err = dispatcher.builtins.node_error(e)
        return err.status, {"error": err.message}, ""
    return 200, {"result": jsonable(result)}, ""


async def _run_there(
    collector: _Collector,
    target: str,
    args: list[str],
    auth_header: str | None,
    members: set[str],
) -> tuple[int, dict[str, Any], str]:
    """Run a command on another member through its ``POST /cmd/{name}``."""
    url = f"{collector.scheme}://{target}/cmd/{quote(args[0], safe='')}"
    headers = {"Authorization": auth_header} if auth_header else {}
    try:
        async with httpx.AsyncClient(
            verify=collector.ssl if collector.ssl is not None else True,
            timeout=COMMAND_TIMEOUT,
            trust_env=False,
        ) as client:
            reply = await client.post(url, json=args[1:], headers=headers)
    except httpx.HTTPError as e:
        return 502, {"error": f"ERR cannot reach {target}: {_reason(e)}"}, ""
    try:
        body = reply.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return 502, {"error": f"ERR {target} answered HTTP {reply.status_code}"}, ""
    if reply.status_code in (307, 308):
        moved = urlsplit(reply.headers.get("location", "")).netloc
        if moved in members:
            return reply.status_code, body, moved
    return reply.status_code, body, ""
