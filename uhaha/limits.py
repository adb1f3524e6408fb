"""Every limit on what a client may send or cost, under one name each (``--limit``).

The limits live in three layers (the front door's :class:`Limits`, the RESP
parser's :class:`ParserLimits` and the RESP handler's reply backlog, and the
HTTP API's body size); this module gives them the names the command line and
the README use, parses ``--limit name=value``, and builds each layer's
settings. Exceeding a limit closes (or refuses) only the offending connection
or request, with an error that names the limit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .frontdoor.config import Limits as DoorLimits
from .resp.parser import ParserLimits
from .resp.server import DEFAULT_MAX_PENDING, DEFAULT_REQUEST_TIMEOUT

__all__ = ["BODY_TIMEOUT", "LIMITS", "MAX_BODY", "NodeLimits", "parse_limits"]

MAX_BODY = 64 << 20
"""Largest HTTP request body accepted (bytes)."""

BODY_TIMEOUT = 60.0
"""Seconds an HTTP request body may take from its first byte to its last."""


@dataclass(frozen=True)
class _Spec:
    layer: str  # where it goes: "door", "parser", or one NodeLimits field
    attr: str
    kind: type  # int (bytes or counts) or float (seconds)
    help: str


#: name -> where it goes and what it means (the README's table is made from this).
LIMITS: dict[str, _Spec] = {
    "max-connections": _Spec("door", "max_connections", int, "connections served at once"),
    "sniff-timeout": _Spec(
        "door", "sniff_timeout", float, "seconds a new connection has to show its protocol"
    ),
    "sniff-bytes": _Spec(
        "door", "sniff_max_bytes", int, "bytes sent before a connection's protocol is known"
    ),
    "http-head-bytes": _Spec("door", "http_max_head", int, "largest HTTP/1.1 request head"),
    "http-head-timeout": _Spec(
        "door", "http_head_timeout", float, "seconds to receive an HTTP/1.1 request head"
    ),
    "http-keep-alive": _Spec(
        "door", "http_keep_alive", float, "seconds an idle HTTP connection is kept open"
    ),
    "http-body-bytes": _Spec("body", "", int, "largest HTTP request body"),
    "http-body-timeout": _Spec(
        "body-timeout", "", float, "seconds an HTTP request body may take to arrive"
    ),
    "resp-bulk-bytes": _Spec("parser", "max_bulk", int, "longest RESP bulk string (argument)"),
    "resp-array": _Spec("parser", "max_array", int, "most arguments in one RESP command"),
    "resp-inline-bytes": _Spec("parser", "max_inline", int, "longest inline command line"),
    "resp-request-bytes": _Spec("parser", "max_request", int, "largest whole RESP command"),
    "resp-request-timeout": _Spec(
        "request-timeout", "", float, "seconds a RESP command may take to arrive, once begun"
    ),
    "resp-idle-timeout": _Spec(
        "idle-timeout",
        "",
        float,
        "seconds a RESP client may sit idle (no command, no reply) before it is closed (0: never)",
    ),
    "resp-pending": _Spec(
        "pending", "", int, "replies owed to one client before it is read no further"
    ),
}


@dataclass(frozen=True)
class NodeLimits:
    """The settings of every layer, defaults unless ``--limit`` changed them."""

    door: DoorLimits = field(default_factory=DoorLimits)
    parser: ParserLimits = field(default_factory=ParserLimits)
    max_pending: int = DEFAULT_MAX_PENDING
    http_body: int = MAX_BODY
    http_body_timeout: float = BODY_TIMEOUT
    resp_request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    resp_idle_timeout: float = 0.0

    def value(self, name: str) -> int | float:
        """The current value of limit ``name``."""
        spec = LIMITS[name]
        if spec.layer == "pending":
            return self.max_pending
        if spec.layer == "body":
            return self.http_body
        if spec.layer == "body-timeout":
            return self.http_body_timeout
        if spec.layer == "request-timeout":
            return self.resp_request_timeout
        if spec.layer == "idle-timeout":
            return self.resp_idle_timeout
        owner = self.door if spec.layer == "door" else self.parser
        result: int | float = getattr(owner, spec.attr)
        return result


_SUFFIXES = {"k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "g": 1 << 30, "gb": 1 << 30}


def _number(name: str, text: str, kind: type, zero_ok: bool = False) -> int | float:
    raw = text.strip().lower()
    try:
        if kind is float:
            value: int | float = float(raw.removesuffix("s"))
            ok = math.isfinite(value) and (value > 0 or (zero_ok and value == 0))
        else:
            scale = 1
            for suffix in sorted(_SUFFIXES, key=len, reverse=True):
                if raw.endswith(suffix):
                    raw, scale = raw[: -len(suffix)], _SUFFIXES[suffix]
                    break
            value = int(raw) * scale
            ok = value > 0
    except ValueError:
        ok = False
    if not ok:
        unit = "a number of seconds" if kind is float else "a positive whole number"
        raise ValueError(f"--limit {name} needs {unit}, not {text!r}")
    return value


def parse_limits(values: Mapping[str, str]) -> NodeLimits:
    """``--limit`` values (name -> text) as :class:`NodeLimits`; ValueError names a bad one."""
    door: dict[str, Any] = {}
    parser: dict[str, Any] = {}
    out = NodeLimits()
    for name, text in values.items():
        spec = LIMITS.get(name)
        if spec is None:
            raise ValueError(f"unknown limit {name!r}: one of {', '.join(LIMITS)}")
        value = _number(name, text, spec.kind, zero_ok=spec.layer == "idle-timeout")
        if spec.layer == "door":
            door[spec.attr] = value
        elif spec.layer == "parser":
            parser[spec.attr] = value
        elif spec.layer == "pending":
            out = replace(out, max_pending=int(value))
        elif spec.layer == "body-timeout":
            out = replace(out, http_body_timeout=float(value))
        elif spec.layer == "request-timeout":
            out = replace(out, resp_request_timeout=float(value))
        elif spec.layer == "idle-timeout":
            out = replace(out, resp_idle_timeout=float(value))
        else:
            out = replace(out, http_body=int(value))
    return replace(out, door=replace(out.door, **door), parser=replace(out.parser, **parser))


def table() -> str:
    """The limits as a Markdown table (name, default, meaning), for the README."""
    defaults = NodeLimits()
    rows = ["| `--limit` name | default | what it bounds |", "|---|---|---|"]
    for name, spec in LIMITS.items():
        rows.append(f"| `{name}` | {_show(name, defaults.value(name), spec.kind)} | {spec.help} |")
    return "\n".join(rows)


def _show(name: str, value: int | float, kind: type) -> str:
    if kind is float:
        return f"{value:g} s" if value else "0 (never)"
    if not name.endswith("-bytes"):
        return f"{value:,}"
    for suffix, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= scale and value % scale == 0:
            return f"{value // scale:,} {suffix}"
    return f"{value:,}"
