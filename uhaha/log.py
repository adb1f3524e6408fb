"""Log output in uhaha's (and Redis's) style: quiet by default, one line per event.

    4242:L 27 Nov 2026 09:41:07.123 * logs loaded: ready for commands

The fields are the process id, the node's role (``L`` leader, ``F`` follower,
``C`` candidate, ``N`` not yet part of a cluster), the time, and a level mark:
``.`` debug, ``-`` verbose, ``*`` info, ``#`` warning. Levels are uhaha's:
``debug``, ``verb``, ``info`` (the default), ``warn`` and ``silent``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable

__all__ = ["LEVELS", "VERBOSE", "UhahaFormatter", "setup_logging"]

VERBOSE = 15
logging.addLevelName(VERBOSE, "VERB")

LEVELS = {
    "debug": logging.DEBUG,
    "verb": VERBOSE,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "silent": logging.CRITICAL + 10,
}

_MARKS = {logging.DEBUG: ".", VERBOSE: "-", logging.INFO: "*"}


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


def setup_logging(level: str, role: Callable[[], str], stream: object = None) -> None:
    """Send the ``uhaha`` loggers to stderr in uhaha's format at ``level``."""
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(UhahaFormatter(role))
    root = logging.getLogger("uhaha")
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])
    root.propagate = False
