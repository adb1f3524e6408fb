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
- ``GET /metrics``: Prometheus metrics (:mod:`uhaha.metrics`).
- ``GET /openapi.json``: the OpenAPI description of all this (no auth needed:
  it holds no data).

With ``--auth``, every other route needs ``Authorization: Bearer <secret>``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, Response
from starlette.responses import JSONResponse as _StarletteJSON
from starlette.routing import BaseRoute, Route

from ..builtins import snapshot_json
from ..dispatch import Dispatcher
from ..errors import CommandError, Moved
from ..limits import BODY_TIMEOUT, MAX_BODY
from ..node import Node, ProposalFailed
from ..security import bearer_checker
from ..storage import SnapshotNotFoundError

__all__ = ["MAX_BODY", "METRICS_TYPE", "api_routes", "jsonable"]

METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The media type of ``GET /metrics`` (the Prometheus text format)."""


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


class JSONResponse(_StarletteJSON):
    """Starlette's JSON response, which also renders text that holds surrogates.

    Arguments that were not UTF-8 live on as surrogate escapes (see
    ``uhaha.dispatch.decode_arg``), in data and in error messages; Starlette
    fails on them (a 500), so such a body is rendered with ``\\uXXXX`` escapes.
    """

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, allow_nan=False, separators=(",", ":")).encode()


class _BadRequest(Exception):
    status = 400


class _TooLarge(_BadRequest):
    status = 413


class _SlowBody(_BadRequest):
    status = 408


def _error(e: CommandError, request: Request) -> Response:
    headers = {}
    if isinstance(e, Moved):
        # The same target on the leader, as the client sent it (still
        # percent-encoded), query included: GET /cmd/get?arg=k must stay a get of k.
        scope = request.scope
        target = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        query = scope.get("query_string", b"").decode("latin-1")
        headers["Location"] = f"{request.url.scheme}://{e.leader}{target}"
        if query:
            headers["Location"] += f"?{query}"
    return JSONResponse({"error": e.message}, status_code=e.status, headers=headers)


def api_routes(
    node: Node,
    dispatcher: Dispatcher,
    auth: str = "",
    *,
    max_body: int = MAX_BODY,
    body_timeout: float = BODY_TIMEOUT,
    on_auth_failure: Callable[[str], None] | None = None,
    metrics: Callable[[], bytes] | None = None,
    openapi: Callable[[], dict[str, Any]] | None = None,
) -> list[BaseRoute]:
    """The API's routes. ``on_auth_failure(remote)`` hears of each wrong secret.
    ``metrics`` renders ``GET /metrics`` (Prometheus text, behind the secret like
    ``/status``); ``openapi`` gives the document ``GET /openapi.json`` serves (open)."""
    check = bearer_checker(auth, on_auth_failure)

    def authorized(request: Request) -> bool:
        return check(request.scope)

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
        if length is not None and (
            not length.isascii() or not length.isdigit() or int(length) > max_body
        ):
            raise _TooLarge(f"request body too large (limit {max_body} bytes)")
        body = bytearray()  # bytes += bytes would copy the whole body per chunk
        try:
            # From the first byte to the last, however it trickles (slowloris).
            async with asyncio.timeout(body_timeout):
                async for chunk in request.stream():
                    body += chunk
                    if len(body) > max_body:
                        raise _TooLarge(f"request body too large (limit {max_body} bytes)")
        except ClientDisconnect:  # gone before its body ended: nobody reads the answer
            raise _BadRequest("the client went away before the end of its body") from None
        except TimeoutError:
            raise _SlowBody(f"request body not received within {body_timeout:g} s") from None
        if not body.strip():
            return None
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise _BadRequest(f"invalid JSON body: {e}") from None
        except RecursionError:
            raise _BadRequest("invalid JSON body: nested too deeply") from None

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
                try:
                    v.encode("utf-8", "surrogateescape")  # as the log stores it
                except UnicodeEncodeError:  # a lone surrogate ("\ud800"): no bytes stand for it
                    raise _BadRequest("arguments must be valid Unicode text") from None
                out.append(v)
            elif isinstance(v, int | float) and not isinstance(v, bool):
                out.append(json.dumps(v))
            else:
                raise _BadRequest("arguments must be strings or numbers")
        return out

    async def command(request: Request) -> Response:
        name = request.path_params["name"]
        if request.method != "POST":  # GET, or HEAD (which Starlette adds to GET)
            args = request.query_params.getlist("arg")
            if not dispatcher.readonly([name, *args]):
                # GET and HEAD must not change anything (caches, crawlers, prefetchers).
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
            return _error(e, request)
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
        try:
            info = node.info()
        except ProposalFailed as e:  # starting or stopping
            return JSONResponse({"error": str(e)}, status_code=503)
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

    async def metrics_text(request: Request) -> Response:
        assert metrics is not None
        return Response(metrics(), media_type=METRICS_TYPE)

    described: list[bytes] = []  # the document, once made (the routes do not change)

    async def description(request: Request) -> Response:
        assert openapi is not None
        if not described:
            described.append(json.dumps(openapi(), separators=(",", ":")).encode())
        return Response(described[0], media_type="application/json")

    extra = []
    if metrics is not None:
        extra.append(Route("/metrics", guarded(metrics_text), methods=["GET"]))
    if openapi is not None:
        extra.append(Route("/openapi.json", description, methods=["GET"]))
    return [
        Route("/cmd/{name}", guarded(command), methods=["GET", "POST"]),
        Route("/cmd", guarded(pipeline), methods=["POST"]),
        Route("/status", guarded(status), methods=["GET"]),
        Route("/snapshots", guarded(snapshots), methods=["GET"]),
        Route("/snapshots/{id}", guarded(snapshot_file), methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        *extra,
    ]
