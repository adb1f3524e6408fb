"""The JSON HTTP API (Starlette), a thin front end over the dispatcher.

- ``POST /cmd/{name}``: body a JSON array of string arguments, or
  ``{"args": [...]}``, or empty. ``GET /cmd/{name}?arg=..&arg=..`` for
  commands that change nothing (reads, intermediates, informational
  built-ins); 405 for the others.
  200 ``{"result": ...}``; errors ``{"error": "ERR ..."}`` with a fitting
  status; a follower answers leader-only commands with 307 and ``Location``
  on the leader (so ``curl -L`` follows it).
- ``POST /cmd``: a pipeline, body ``[["set","a","1"],["get","a"]]``; one
  ``{"result"}`` or ``{"error"}`` per command, in order.
- ``GET /status``: this node's Raft facts (RAFT INFO) and the members.
- ``GET /snapshots``: this node's snapshots; ``GET /snapshots/{id}`` downloads
  one (the same bytes as ``RAFT SNAPSHOT READ id``; ``--restore`` takes it).
- ``GET /healthz``: the process is alive. ``GET /readyz``: a leader is known
  and this node's log is loaded (503 otherwise). Neither needs auth.

With ``--auth``, every other route needs ``Authorization: Bearer <secret>``.
"""

from __future__ import annotations

import hmac
import inspect
import json
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..builtins import snapshot_json
from ..dispatch import Dispatcher
from ..errors import CommandError, Moved
from ..node import Node
from ..storage import SnapshotNotFoundError

__all__ = ["MAX_BODY", "api_routes", "jsonable"]

MAX_BODY = 64 << 20
"""Largest request body accepted (bytes)."""


def jsonable(value: Any) -> Any:
    """A command's result as JSON: bytes become text, sets and tuples lists."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return {str(jsonable(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return value


class _BadRequest(Exception):
    status = 400


class _TooLarge(_BadRequest):
    status = 413


def _error(e: CommandError, scheme: str, path: str) -> Response:
    headers = {}
    if isinstance(e, Moved):
        headers["Location"] = f"{scheme}://{e.leader}{path}"
    return JSONResponse({"error": e.message}, status_code=e.status, headers=headers)


def api_routes(node: Node, dispatcher: Dispatcher, auth: str = "") -> list[BaseRoute]:
    secret = auth.encode()

    def authorized(request: Request) -> bool:
        if not secret:
            return True
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), secret)

    def guarded(fn: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            if not authorized(request):
                return JSONResponse(
                    {"error": "NOAUTH Authentication required."},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
            try:
                result: Response = await fn(request)
            except _BadRequest as e:
                return JSONResponse({"error": f"ERR {e}"}, status_code=e.status)
            return result

        return endpoint

    async def run(args: list[str]) -> Any:
        result = dispatcher.submit(None, args)
        if inspect.isawaitable(result):
            result = await result
        return jsonable(result)

    async def read_json(request: Request) -> Any:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            raise _TooLarge(f"request body too large (limit {MAX_BODY} bytes)")
        body = bytearray()  # bytes += bytes would copy the whole body per chunk
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                raise _TooLarge(f"request body too large (limit {MAX_BODY} bytes)")
        if not body.strip():
            return None
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise _BadRequest(f"invalid JSON body: {e}") from None

    def as_args(value: Any) -> list[str]:
        if value is None:
            return []
        if isinstance(value, dict):
            value = value.get("args", [])
        if not isinstance(value, list):
            raise _BadRequest('the body must be a JSON array of arguments or {"args": [...]}')
        out = []
        for v in value:
            if isinstance(v, str):
                out.append(v)
            elif isinstance(v, int | float) and not isinstance(v, bool):
                out.append(json.dumps(v))
            else:
                raise _BadRequest("arguments must be strings or numbers")
        return out

    async def command(request: Request) -> Response:
        name = request.path_params["name"]
        if request.method == "GET":
            args = request.query_params.getlist("arg")
            if not dispatcher.readonly([name, *args]):
                # GET must not change anything (caches, crawlers, prefetchers).
                return JSONResponse(
                    {"error": f"ERR {name} changes data: use POST"},
                    status_code=405,
                    headers={"Allow": "POST"},
                )
        else:
            args = as_args(await read_json(request))
        try:
            result = await run([name, *args])
        except CommandError as e:
            return _error(e, request.url.scheme, request.url.path)
        return JSONResponse({"result": result})

    async def pipeline(request: Request) -> Response:
        body = await read_json(request)
        if not isinstance(body, list):
            raise _BadRequest("the body must be a JSON array of commands")
        commands = [as_args(c) for c in body]
        replies: list[dict[str, Any]] = []
        for args in commands:
            if not args:
                replies.append({"error": "ERR empty command"})
                continue
            try:
                replies.append({"result": await run(args)})
            except CommandError as e:
                replies.append({"error": e.message})
        return JSONResponse(replies)

    async def status(request: Request) -> Response:
        info = node.info()
        info["members"] = [
            {"id": m.id, "address": m.address, "voter": m.voter} for m in node.members()
        ]
        return JSONResponse(info)

    async def snapshots(request: Request) -> Response:
        return JSONResponse([snapshot_json(i) for i in node.snapshots.list()])

    async def snapshot_file(request: Request) -> Response:
        snapshot_id = request.path_params["id"]
        try:
            path = node.snapshots.path(snapshot_id)  # validates the id: only real snapshots
        except SnapshotNotFoundError:
            return JSONResponse({"error": "ERR snapshot not found"}, status_code=404)
        return FileResponse(path, media_type="application/gzip", filename=f"{snapshot_id}.snap")

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def readyz(request: Request) -> Response:
        try:
            ready = bool(node.leader_address()) and node.logs_loaded
        except Exception:
            ready = False
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    return [
        Route("/cmd/{name}", guarded(command), methods=["GET", "POST"]),
        Route("/cmd", guarded(pipeline), methods=["POST"]),
        Route("/status", guarded(status), methods=["GET"]),
        Route("/snapshots", guarded(snapshots), methods=["GET"]),
        Route("/snapshots/{id}", guarded(snapshot_file), methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
