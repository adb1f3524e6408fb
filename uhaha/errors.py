"""Errors a command answers with, worded as uhaha (and Redis) word them.

A :class:`CommandError`'s text is the whole error line a RESP client sees
(``ERR unknown command 'x'``, ``MOVED 0 10.0.0.1:11001``); the HTTP front
end turns the same errors into JSON with a fitting status code.
"""

from __future__ import annotations

__all__ = [
    "ClusterDown",
    "CommandError",
    "Moved",
    "NotRunning",
    "OutcomeUnknownError",
    "syntax_error",
    "unknown_command",
    "wrong_args",
]


class CommandError(Exception):
    """An error reply. ``str(e)`` starts with its code (``ERR``, ``MOVED`` ...)."""

    status = 400
    """The HTTP status the JSON front end answers with."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def code(self) -> str:
        return self.message.split(" ", 1)[0]


class Moved(CommandError):
    """Only the leader can do this: uhaha's ``MOVED 0 <addr>`` (or ``TRY <addr>``),
    which ``redis-cli -c`` and cluster-aware clients follow."""

    status = 307

    def __init__(self, leader: str, try_errors: bool = False) -> None:
        super().__init__(f"TRY {leader}" if try_errors else f"MOVED 0 {leader}")
        self.leader = leader


class ClusterDown(CommandError):
    """No leader is known right now."""

    status = 503

    def __init__(self) -> None:
        super().__init__("CLUSTERDOWN The cluster is down")


class NotRunning(CommandError):
    """The node is starting or stopping: try again, or another member (503)."""

    status = 503


class OutcomeUnknownError(CommandError):
    """The command may or may not have been applied (a timeout, a crash)."""

    status = 504


def wrong_args() -> CommandError:
    return CommandError("ERR wrong number of arguments")


def syntax_error() -> CommandError:
    return CommandError("ERR syntax error")


def unknown_command(name: str) -> CommandError:
    return CommandError(f"ERR unknown command '{name}'")
