"""Connection-level commands, answered by the RESP layer before the dispatcher.

These change or describe the connection itself (protocol version, auth,
name) or are what client libraries send on connect (`HELLO 3`, `CLIENT
SETINFO`, redis-cli's `COMMAND DOCS`), so they never reach the cluster.
Replies and error texts follow Redis, which clients recognize.
"""

from __future__ import annotations

import fnmatch
import hmac
from collections.abc import Callable
from dataclasses import dataclass

from uhaha import __version__
from uhaha.resp.connection import Connection
from uhaha.resp.types import Error, Reply, SimpleString

__all__ = ["COMMANDS", "PRE_AUTH", "ServerInfo", "Session", "secret_checker"]

OK = SimpleString("OK")
NOAUTH = Error("NOAUTH Authentication required.")
WRONGPASS = Error("WRONGPASS invalid username-password pair or user is disabled.")
_HELLO_NOAUTH = Error(
    "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
    "HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and "
    "select the RESP protocol version at the same time"
)
_NO_PASSWORD = Error(
    "ERR AUTH <password> called without any password configured for the default user. "
    "Are you sure your configuration is correct?"
)


@dataclass(frozen=True)
class ServerInfo:
    """What HELLO tells clients about the server."""

    server: str = "uhaha"
    version: str = __version__
    mode: str = "standalone"
    role: str = "master"


@dataclass(frozen=True)
class Session:
    """What the connection commands need from the server."""

    check_auth: Callable[[bytes], bool] | None
    info: ServerInfo
    #: Told of each wrong password (for logging: it gets the connection, not the password).
    on_failure: Callable[[Connection], None] | None = None

    def authenticate(self, conn: Connection, password: bytes) -> bool:
        """Check a password; a success authenticates the connection."""
        if self.check_auth is None or self.check_auth(password):
            conn.authenticated = True
            return True
        if self.on_failure is not None:
            self.on_failure(conn)
        return False


def secret_checker(secret: str | bytes) -> Callable[[bytes], bool]:
    """A `check_auth` callback comparing passwords with `secret` in constant time."""
    expected = secret.encode() if isinstance(secret, str) else bytes(secret)

    def check(password: bytes) -> bool:
        return hmac.compare_digest(password, expected)

    return check


def _arity(name: str) -> Error:
    return Error(f"ERR wrong number of arguments for '{name}' command")


def _unknown_subcommand(sub: bytes, command: str) -> Error:
    text = sub.decode("utf-8", "replace")
    return Error(f"ERR unknown subcommand '{text}'. Try {command} HELP.")


def _valid_name(name: bytes) -> bool:
    # Redis allows only printable ASCII without spaces in client names.
    return all(33 <= ch <= 126 for ch in name)


def auth(session: Session, conn: Connection, args: list[bytes]) -> Reply:
    """AUTH [username] password. The username is accepted and ignored:
    uhaha has one shared secret (like Redis's default user)."""
    if len(args) not in (2, 3):
        return _arity("auth")
    if session.check_auth is None and len(args) == 2:
        return _NO_PASSWORD
    return OK if session.authenticate(conn, args[-1]) else WRONGPASS


def hello(session: Session, conn: Connection, args: list[bytes]) -> Reply:
    """HELLO [protover [AUTH username password] [SETNAME clientname]]."""
    proto = conn.protocol
    if len(args) >= 2:
        try:
            proto = int(args[1])
        except ValueError:
            return Error("ERR Protocol version is not an integer or out of range")
        if proto not in (2, 3):
            return Error("NOPROTO unsupported protocol version")
    password: bytes | None = None
    name: bytes | None = None
    pos = 2
    while pos < len(args):
        option, more = args[pos].upper(), len(args) - pos - 1
        if option == b"AUTH" and more >= 2:
            password, pos = args[pos + 2], pos + 3
        elif option == b"SETNAME" and more >= 1:
            name, pos = args[pos + 1], pos + 2
        else:
            text = args[pos].decode("utf-8", "replace")
            return Error(f"ERR Syntax error in HELLO option '{text}'")
    if password is not None:
        if not session.authenticate(conn, password):
            return WRONGPASS
    elif not conn.authenticated:
        return _HELLO_NOAUTH
    if name is not None:
        if not _valid_name(name):
            return Error("ERR Client names cannot contain spaces, newlines or special characters.")
        conn.name = name.decode() or None
    conn.protocol = proto
    info = session.info
    return {
        "server": info.server,
        "version": info.version,
        "proto": proto,
        "id": conn.id,
        "mode": info.mode,
        "role": info.role,
        "modules": [],
    }


def client(session: Session, conn: Connection, args: list[bytes]) -> Reply:
    """CLIENT SETINFO|SETNAME|GETNAME|ID: enough for what client libraries send."""
    if len(args) < 2:
        return _arity("client")
    sub = args[1].upper()
    if sub == b"SETINFO":
        return OK if len(args) == 4 else _arity("client|setinfo")
    if sub == b"SETNAME":
        if len(args) != 3:
            return _arity("client|setname")
        if not _valid_name(args[2]):
            return Error("ERR Client names cannot contain spaces, newlines or special characters.")
        conn.name = args[2].decode() or None
        return OK
    if sub == b"GETNAME":
        return conn.name
    if sub == b"ID":
        return conn.id
    return _unknown_subcommand(args[1], "CLIENT")


def command(session: Session, conn: Connection, args: list[bytes]) -> Reply:
    """COMMAND [COUNT|DOCS|INFO|LIST]: minimal answers (we publish no command table).

    redis-cli asks `COMMAND DOCS` when it starts, for its hints; an empty
    answer makes it go without them.
    """
    if len(args) == 1:
        return []
    sub = args[1].upper()
    if sub == b"COUNT":
        return 0
    if sub == b"DOCS":
        return {}
    if sub == b"INFO":
        return [None] * (len(args) - 2)
    if sub == b"LIST":
        return []
    return _unknown_subcommand(args[1], "COMMAND")


def select(session: Session, conn: Connection, args: list[bytes]) -> Reply:
    """SELECT 0 (there is only one database)."""
    if len(args) != 2:
        return _arity("select")
    try:
        index = int(args[1])
    except ValueError:
        return Error("ERR value is not an integer or out of range")
    return OK if index == 0 else Error("ERR DB index is out of range")


#: What CONFIG GET reports: Redis's two persistence settings, read-only, as
#: they hold for uhaha (no save points; every write is in a log synced before
#: it is acknowledged). redis-benchmark asks for both when it starts.
CONFIG = {b"save": b"", b"appendonly": b"yes"}


def config(session: Session, conn: Connection, args: list[bytes]) -> Reply:
    """CONFIG GET pattern ...: the settings in :data:`CONFIG` whose name
    matches a pattern (a glob, case-insensitive, as in Redis)."""
    if len(args) < 2:
        return _arity("config")
    if args[1].upper() == b"GET":
        if len(args) < 3:
            return _arity("config|get")
        patterns = [a.decode("latin-1").lower() for a in args[2:]]
        found = {
            name: value
            for name, value in CONFIG.items()
            if any(fnmatch.fnmatchcase(name.decode(), p) for p in patterns)
        }
        if conn.protocol == 3:
            return dict(found)
        return [x for pair in found.items() for x in pair]
    return Error("ERR CONFIG is not supported: uhaha is configured with flags")


def quit_(session: Session, conn: Connection, args: list[bytes]) -> Reply:
    """QUIT: reply +OK, then close once every earlier reply is written."""
    conn.close()
    return OK


Command = Callable[[Session, Connection, list[bytes]], Reply]

#: Connection-level commands by upper-cased name.
COMMANDS: dict[bytes, Command] = {
    b"AUTH": auth,
    b"HELLO": hello,
    b"CLIENT": client,
    b"COMMAND": command,
    b"SELECT": select,
    b"CONFIG": config,
    b"QUIT": quit_,
}

#: What an unauthenticated client may send (HELLO answers NOAUTH without AUTH itself).
PRE_AUTH = frozenset({b"AUTH", b"HELLO", b"QUIT"})
