"""The OpenAPI 3.1 description of a node's HTTP API, served at ``GET /openapi.json``.

The built-in API is described by hand in ``openapi/openapi.json`` at the root
of the repository (shipped inside the package as ``uhaha/openapi/openapi.json``).
At run time :func:`describe` adds the application's own routes (``@app.route``,
``app.mount``) to a copy of it as generic operations: their
path and path parameters, their methods, and whether they need the secret,
with responses left to the application. A node without ``--auth`` drops the
security requirement, so that the document says what the node does.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

from starlette.convertors import (
    Convertor,
    FloatConvertor,
    IntegerConvertor,
    UUIDConvertor,
)
from starlette.routing import BaseRoute, Mount, Route, compile_path

__all__ = ["describe", "description_path", "load_description", "operations"]

_IMPLIED = frozenset({"HEAD"})
"""Methods a route answers that the description leaves implied (HEAD goes with GET)."""

_ANY_METHOD = ("get", "post", "put", "patch", "delete")
"""How a mounted application that lists no routes is described: it may answer anything."""


def description_path() -> Path:
    """Where ``openapi.json`` is: inside the installed package (a wheel puts
    ``openapi/`` at ``uhaha/openapi``), else at the root of a source checkout
    (an editable install, or running from the repository)."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "openapi", here.parent / "openapi"):
        if (candidate / "openapi.json").is_file():
            return candidate / "openapi.json"
    raise FileNotFoundError("openapi/openapi.json is missing from the uhaha package")


@functools.cache
def _static() -> str:
    return description_path().read_text(encoding="utf-8")


def load_description() -> dict[str, Any]:
    """A fresh copy of the built-in API's description (``openapi/openapi.json``)."""
    description: dict[str, Any] = json.loads(_static())
    return description


def operations(
    routes: Sequence[BaseRoute], prefix: str = ""
) -> Iterator[tuple[str, tuple[str, ...], BaseRoute, dict[str, Convertor[Any]]]]:
    """Every route as (OpenAPI path, lower-case methods, its top-level route, its
    path parameters' convertors), mounts walked into. A mount whose application
    lists no routes gives ``{prefix}/{path}`` with every common method."""
    for route in routes:
        if isinstance(route, Route):
            params = dict(route.param_convertors)
            if route.methods is None:  # an ASGI application as the endpoint: any method
                yield prefix + route.path_format, _ANY_METHOD, route, params
                continue
            methods = tuple(m.lower() for m in sorted(route.methods - _IMPLIED))
            yield prefix + route.path_format, methods, route, params
        elif isinstance(route, Mount):
            inner = route.routes
            if inner:
                _, mounted_at, outer = compile_path(route.path)  # without the {path} remainder
                for path, verbs, _, params in operations(inner, prefix + mounted_at):
                    yield path, verbs, route, {**outer, **params}
            else:
                params = dict(route.param_convertors)
                yield prefix + route.path_format, _ANY_METHOD, route, params


def describe(
    base: dict[str, Any],
    app_routes: Sequence[BaseRoute] = (),
    *,
    title: str = "",
    version: str = "",
    auth: bool = True,
    public: Collection[int] = (),
) -> dict[str, Any]:
    """``base`` (see :func:`load_description`) plus the application's routes.

    ``public`` holds the ``id()`` of the application's routes served without
    the secret; ``auth`` says whether the node runs with ``--auth`` at all.
    Paths the built-in API already has are left as they are (the built-in
    route answers them)."""
    spec = copy.deepcopy(base)
    info = spec.setdefault("info", {})
    if title:
        info["title"] = title
    if version:
        info["version"] = version
    paths: dict[str, Any] = spec.setdefault("paths", {})
    builtin = set(paths)
    for path, methods, route, params in operations(app_routes):
        if path in builtin:
            continue
        item = paths.setdefault(path, {})
        for method in methods:
            item.setdefault(method, _generic(route, method, params, id(route) in public))
    if not auth:
        spec.pop("security", None)
        for item in paths.values():
            for op in item.values():
                if isinstance(op, dict) and op.get("security"):
                    op["security"] = []
    return spec


def _generic(
    route: BaseRoute, method: str, params: dict[str, Convertor[Any]], public: bool
) -> dict[str, Any]:
    name = getattr(route, "name", "") or ""
    endpoint = getattr(route, "endpoint", None)
    doc = (getattr(endpoint, "__doc__", None) or "").strip()
    op: dict[str, Any] = {
        "tags": ["app"],
        "summary": doc.splitlines()[0] if doc else f"The application's {name or 'route'}",
        "description": (doc + "\n\n" if doc else "")
        + "A route of the application: its requests and responses are the application's.",
        "responses": {"default": {"description": "Whatever the application answers."}},
    }
    if params:
        op["parameters"] = [
            {"name": p, "in": "path", "required": True, "schema": _schema(c)}
            for p, c in params.items()
        ]
    if public:
        op["security"] = []
    else:
        op["responses"]["401"] = {"$ref": "#/components/responses/Unauthorized"}
    if method in ("post", "put", "patch"):
        op["requestBody"] = {"required": False, "content": {"*/*": {"schema": {}}}}
    return op


def _schema(convertor: Convertor[Any]) -> dict[str, Any]:
    if isinstance(convertor, IntegerConvertor):
        return {"type": "integer", "minimum": 0}
    if isinstance(convertor, FloatConvertor):
        return {"type": "number", "minimum": 0}
    if isinstance(convertor, UUIDConvertor):
        return {"type": "string", "format": "uuid"}
    return {"type": "string"}
