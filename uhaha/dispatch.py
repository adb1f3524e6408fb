"""One place that executes a command for every front end.

Front ends hand over the raw arguments in arrival order; the dispatcher finds
the command (built-in or the application's), decodes arguments, and returns
either the reply value or an awaitable of it. Errors are raised as
:class:`~uhaha.errors.CommandError` with uhaha's wording.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from .builtins import Builtins
from .errors import CommandError, unknown_command

__all__ = ["Dispatcher"]

Handler = Callable[[list[str]], Any]


def decode_arg(raw: bytes | str) -> str:
    """Arguments are UTF-8; undecodable bytes survive as surrogate escapes."""
    if isinstance(raw, str):
        return raw
    return raw.decode("utf-8", "surrogateescape")


class Dispatcher:
    def __init__(self, builtins: Builtins) -> None:
        self.builtins = builtins
        self.commands: dict[str, Handler] = dict(builtins.table())

    def submit(self, conn: object, args: list[bytes] | list[str]) -> Any | Awaitable[Any]:
        """Run one command. Called in each connection's arrival order."""
        if not args:
            raise CommandError("ERR empty command")
        name = decode_arg(args[0])
        fn = self.commands.get(name.lower())
        if fn is None:
            raise unknown_command(name)
        result = fn([decode_arg(a) for a in args[1:]])
        if inspect.isawaitable(result):
            return result
        return result
