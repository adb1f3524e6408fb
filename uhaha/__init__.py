"""uhaha for Python: highly available, Raft-replicated data applications.

Write a few decorated functions (the state machine), run the same program on
3, 5 or 7 machines, and get a fault-tolerant service that speaks the Redis
protocol and a JSON HTTP API. See :class:`App`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["OK", "App", "CommandError", "Machine", "__version__"]

if TYPE_CHECKING:
    from .app import App
    from .builtins import OK
    from .errors import CommandError
    from .machine import Machine


def __getattr__(name: str) -> Any:
    # Imported on first use, so that `python -m uhaha -h` and the pure core
    # do not pay for the whole framework.
    if name == "App":
        from .app import App  # noqa: PLC0415

        return App
    if name == "CommandError":
        from .errors import CommandError  # noqa: PLC0415

        return CommandError
    if name == "Machine":
        from .machine import Machine  # noqa: PLC0415

        return Machine
    if name == "OK":
        from .builtins import OK  # noqa: PLC0415

        return OK
    raise AttributeError(name)
