"""Names that become paths and addresses: node ids, app names, ``host:port``.

One rule for each, shared by the command line, the data directory and
``RAFT SERVER ADD`` (whose arguments reach every server's log and peer table,
so a name no server could start with must be refused there, not later).
"""

from __future__ import annotations

import re

__all__ = ["check_name", "split_address"]

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def check_name(kind: str, name: str) -> None:
    """Raise ValueError unless ``name`` can be one path component: 1 to 128 of
    ASCII letters, digits, ``_``, ``-`` and ``.``, not starting with ``.`` or ``-``."""
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"invalid {kind} {name!r}: use letters, digits, '_', '-' and '.' (not first)"
        )


def split_address(text: str, default_host: str | None = "127.0.0.1") -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` as (host, port); ``:port`` means
    ``default_host``, or is refused when that is None. Raises ValueError."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isascii() or not port_text.isdigit():
        raise ValueError(f"invalid address {text!r}: expected host:port")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"invalid address {text!r}: the port must be 1 to 65535")
    host = host.strip("[]")
    if not host:
        if default_host is None:
            raise ValueError(f"invalid address {text!r}: expected host:port")
        host = default_host
    return host, port
