"""Log output in uhaha's (and Redis's) style: quiet by default, one line per event.

    4242:L 27 Nov 2026 09:41:07.123 * logs loaded: ready for commands

The fields are the process id, the node's role (``L`` leader, ``F`` follower,
``C`` candidate, ``N`` not yet part of a cluster), the time, and a level mark:
``.`` debug, ``-`` verbose, ``*`` info, ``#`` warning. Levels are uhaha's:
``debug``, ``verb``, ``info`` (the default), ``warn`` and ``silent``.

With ``--log-format json`` every line is instead a JSON object, for log
collectors::

    {"time": "2026-11-27T09:41:07.123Z", "level": "info", "pid": 4242,
     "role": "leader", "msg": "logs loaded: ready for commands"}

``time`` is RFC 3339 in UTC with milliseconds; ``level`` is ``debug``,
``verb``, ``info``, ``warn``, ``error`` or ``critical``; ``role`` is
``leader``, ``follower``, ``candidate`` or ``none``; an ``exception`` field
holds the traceback when there is one. In that format the warnings of the
libraries underneath (uvicorn, Hypercorn, asyncio) and start-up failures are
JSON lines too, so that every line on stderr is one.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = [
    "FORMATS",
    "LEVELS",
    "VERBOSE",
    "JsonFormatter",
    "UhahaFormatter",
    "error_line",
    "setup_logging",
]

VERBOSE = 15
logging.addLevelName(VERBOSE, "VERB")

LEVELS = {
    "debug": logging.DEBUG,
    "verb": VERBOSE,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "silent": logging.CRITICAL + 10,
}

FORMATS = ("text", "json")

_MARKS = {logging.DEBUG: ".", VERBOSE: "-", logging.INFO: "*"}
_LEVEL_NAMES = {
    logging.DEBUG: "debug",
    VERBOSE: "verb",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
    logging.CRITICAL: "critical",
}
_ROLES = {"L": "leader", "F": "follower", "C": "candidate", "N": "none"}


class UhahaFormatter(logging.Formatter):
    """Formats records as ``pid:role date time mark message``."""

    def __init__(self, role: Callable[[], str]) -> None:
        super().__init__()
        self._role = role
        self._pid = os.getpid()

    def format(self, record: logging.LogRecord) -> str:
        mark = _MARKS.get(record.levelno, "#")
        stamp = time.strftime("%d %b %Y %H:%M:%S", time.localtime(record.created))
        millis = int(record.msecs)
        text = record.getMessage()
        if record.exc_info and record.levelno >= logging.ERROR:
            text += "\n" + self.formatException(record.exc_info)
        return f"{self._pid}:{self._role()} {stamp}.{millis:03d} {mark} {text}"


class JsonFormatter(logging.Formatter):
    """Formats records as one JSON object per line (``--log-format json``)."""

    def __init__(self, role: Callable[[], str]) -> None:
        super().__init__()
        self._role = role
        self._pid = os.getpid()

    def format(self, record: logging.LogRecord) -> str:
        level = _LEVEL_NAMES.get(record.levelno, record.levelname.lower())
        fields = self.fields(level, record.getMessage(), record.created)
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            fields["exception"] = record.exc_text
        return json.dumps(fields)  # ASCII only: one line, whatever the message holds

    def fields(self, level: str, msg: str, created: float) -> dict[str, Any]:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
        millis = int(created * 1000) % 1000
        role = self._role()
        return {
            "time": f"{stamp}.{millis:03d}Z",
            "level": level,
            "pid": self._pid,
            "role": _ROLES.get(role, role),
            "msg": msg,
        }


_json: JsonFormatter | None = None
_others: logging.Handler | None = None  # the handler we gave the root logger (JSON only)


def setup_logging(
    level: str, role: Callable[[], str], stream: object = None, fmt: str = "text"
) -> None:
    """Send the ``uhaha`` loggers to stderr at ``level``, in uhaha's format
    (``fmt="text"``) or as JSON lines (``fmt="json"``; then every other
    logger's warnings and errors, and Python's warnings, too)."""
    global _json, _others
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}: one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    _json = JsonFormatter(role) if fmt == "json" else None
    handler.setFormatter(_json or UhahaFormatter(role))
    root = logging.getLogger("uhaha")
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])
    root.propagate = False
    others = logging.getLogger()
    if _others is not None:  # set up again: undo what the last JSON setup did
        others.removeHandler(_others)
        logging.captureWarnings(False)
        _others = None
    if _json is not None:
        _others = logging.StreamHandler(handler.stream)
        _others.setFormatter(_json)
        _others.setLevel(max(logging.WARNING, LEVELS[level]))
        others.addHandler(_others)
        logging.captureWarnings(True)


def error_line(prog: str, message: str) -> str:
    """The line a fatal error is reported with: ``prog: message``, or a JSON
    object (level ``critical``) when the logs are JSON."""
    if _json is None:
        return f"{prog}: {message}"
    return json.dumps(_json.fields("critical", message, time.time()))
