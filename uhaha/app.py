"""The user API: an :class:`App` is a name, some data, and decorated commands.

    from uhaha import App, Machine

    app = App("ticket", version="1.0.0", initial_data={"ticket": 0})

    @app.write("ticket")
    def ticket(m: Machine, args: list[str]) -> int:
        m.data["ticket"] += 1
        return m.data["ticket"]

    if __name__ == "__main__":
        app.main()

Three kinds of command, as in uhaha:

- ``@app.write(name)``: goes through the Raft log and runs on every node, in
  the same order, with the same ``m.now()`` and ``m.rand``. It must be
  deterministic: no wall clock, no ``random``, no I/O, no iteration over
  sets of strings (their order varies between processes). Its return value
  (or its exception, as an error) is what the client gets.
- ``@app.read(name)``: runs on one node against its applied state; by
  default only on the leader after a ReadIndex check (linearizable); with
  ``--openreads`` on any node (possibly stale). Must not change ``m.data``.
- ``@app.command(name)``: intermediate, runs locally with the client's
  connection context in ``m.context``; may be ``async`` and may call
  ``await app.execute([...])`` to run other commands through the cluster.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

from starlette.routing import BaseRoute, Mount, Route

from .entries import decode
from .errors import CommandError, unknown_command
from .frontdoor import Service
from .machine import Machine
from .raft import Entry
from .resp import secret_checker
from .storage import SnapshotHeader, SnapshotStore

__all__ = ["App", "Command", "CommandFn"]

log = logging.getLogger("uhaha.app")

CommandFn = Callable[[Any, list[str]], Any]
Kind = Literal["write", "read", "command"]


@dataclass(frozen=True)
class Command:
    name: str
    kind: Kind
    fn: CommandFn
    help: str = ""


class App:
    """A replicated application: see the module documentation."""

    def __init__(
        self,
        name: str,
        *,
        version: str = "0.0.0",
        initial_data: Any = None,
        json_snapshots: bool = False,
        tick_interval: float = 0.2,
    ) -> None:
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"invalid app name {name!r}")
        self.name = name
        self.version = version
        self.initial_data = initial_data
        self.json_snapshots = json_snapshots
        self.tick_interval = tick_interval
        self.commands: dict[str, Command] = {}
        self.catchall: Command | None = None
        self.tick_handlers: list[Callable[[Any], None]] = []
        self.routes: list[BaseRoute] = []
        self.public_routes: set[int] = set()  # ids of routes served without --auth's secret
        self.services: list[Service] = []
        self.snapshot_fn: Callable[[Any], bytes] | None = None
        self.restore_fn: Callable[[bytes], Any] | None = None
        self.connected_fn: Callable[[Any], None] | None = None
        self.disconnected_fn: Callable[[Any], None] | None = None
        self.response_filter_fn: Callable[[list[str], Any], Any] | None = None
        self.state_change_fn: Callable[[str], None] | None = None
        self._runtime: Any = None

    # --- commands ------------------------------------------------------------------

    def _register(self, kind: Kind, name: str) -> Callable[[CommandFn], CommandFn]:
        key = name.lower()
        if not key or any(c.isspace() for c in key):
            raise ValueError(f"invalid command name {name!r}")

        def deco(fn: CommandFn) -> CommandFn:
            if key in self.commands:
                raise ValueError(f"command {name!r} is already defined")
            if kind != "command" and asyncio.iscoroutinefunction(fn):
                raise TypeError(f"{kind} command {name!r} must not be async")
            self.commands[key] = Command(key, kind, fn, (fn.__doc__ or "").strip())
            return fn

        return deco

    def write(self, name: str) -> Callable[[CommandFn], CommandFn]:
        """Register a write command (through the log, deterministic)."""
        return self._register("write", name)

    def read(self, name: str) -> Callable[[CommandFn], CommandFn]:
        """Register a read command (linearizable on the leader by default)."""
        return self._register("read", name)

    def command(self, name: str) -> Callable[[CommandFn], CommandFn]:
        """Register an intermediate command (local, gets the connection context)."""
        return self._register("command", name)

    def catch_all(self, kind: Kind = "write") -> Callable[[CommandFn], CommandFn]:
        """Register the command that runs for every name not otherwise known.

        Unlike other commands it gets the whole command, its name first
        (``args[0]``), as uhaha's catch-all does."""

        def deco(fn: CommandFn) -> CommandFn:
            if kind != "command" and asyncio.iscoroutinefunction(fn):
                raise TypeError("only an intermediate catch-all may be async")
            self.catchall = Command("*", kind, fn)
            return fn

        return deco

    def find(self, name: str) -> Command | None:
        return self.commands.get(name.lower()) or self.catchall

    # --- hooks -----------------------------------------------------------------------

    def on_tick(self, fn: Callable[[Any], None]) -> Callable[[Any], None]:
        """``fn(m)`` runs through the log at every tick (``tick_interval`` s), on
        every node, as a write: expire keys, roll up time series..."""
        self.tick_handlers.append(fn)
        return fn

    def snapshot(self, fn: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
        """``fn(data) -> bytes``: a custom snapshot format (else ``json_snapshots``).

        What it may do: read ``data`` and return bytes that :meth:`restore`
        turns back into an equal state. It sees the state after exactly one
        log index (it runs in a forked copy of the process, so writes keep
        being applied meanwhile, and nothing it does reaches the node). What
        it may not do: change ``data``, depend on anything but ``data`` (the
        clock, randomness, the environment), or expect to share memory with
        the node. The output must be deterministic: every node snapshots on
        its own, and a follower may restore a leader's snapshot instead of
        replaying the log, so equal states must give equal behaviour."""
        self.snapshot_fn = fn
        return fn

    def restore(self, fn: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
        """``fn(bytes) -> data``: read what :meth:`snapshot` wrote and return the
        data. Runs on the event loop when a node starts from a snapshot, installs
        one from the leader, or starts with ``--restore``; it must not block
        on I/O and must rebuild exactly the state that was saved (the
        replicated time and random stream are restored by the framework)."""
        self.restore_fn = fn
        return fn

    def on_connect(self, fn: Callable[[Any], None]) -> Callable[[Any], None]:
        self.connected_fn = fn
        return fn

    def on_disconnect(self, fn: Callable[[Any], None]) -> Callable[[Any], None]:
        self.disconnected_fn = fn
        return fn

    def response_filter(
        self, fn: Callable[[list[str], Any], Any]
    ) -> Callable[[list[str], Any], Any]:
        """``fn(args, result) -> result``: rewrite every command's result."""
        self.response_filter_fn = fn
        return fn

    def on_state_change(self, fn: Callable[[str], None]) -> Callable[[str], None]:
        """``fn(role)``: called with "leader", "follower" or "candidate" on changes."""
        self.state_change_fn = fn
        return fn

    # --- custom services -------------------------------------------------------------------

    def route(
        self, path: str, methods: list[str] | None = None, *, public: bool = False
    ) -> Callable[[Any], Any]:
        """Add a Starlette route to the node's HTTP server (a decorator).

        With ``--auth``, the route answers 401 unless the request carries
        ``Authorization: Bearer <secret>``, like the built-in API; ``public=True``
        serves it to anyone (the handler then does its own checks).
        """

        def deco(fn: Any) -> Any:
            self._add_route(Route(path, fn, methods=methods), public)
            return fn

        return deco

    def mount(self, path: str, asgi_app: Any, *, public: bool = False) -> None:
        """Serve a whole ASGI application under ``path`` (behind ``--auth`` unless public)."""
        self._add_route(Mount(path, app=asgi_app), public)

    def _add_route(self, route: BaseRoute, public: bool) -> None:
        self.routes.append(route)
        if public:
            self.public_routes.add(id(route))

    def add_service(
        self,
        name: str,
        sniff: Callable[[bytes], bool | None],
        handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    ) -> None:
        """Claim connections of your own protocol on the node's one port (uhaha's
        AddService): ``sniff(first_bytes)`` says True (mine), False, or None (more bytes).

        A service sees the raw connection: with ``--auth`` it must ask its
        clients for the secret itself, and check it with :meth:`check_secret`.
        """
        self.services.append(Service(name, sniff, handler))

    def check_secret(self, value: str | bytes) -> bool:
        """Whether ``value`` is the cluster's ``--auth`` secret (constant time;
        True for anything when the node runs without ``--auth``)."""
        if self._runtime is None:
            raise RuntimeError("the app is not running")
        secret: str = self._runtime.opts.auth
        if not secret:
            return True
        given = value.encode() if isinstance(value, str) else bytes(value)
        return secret_checker(secret)(given)

    async def execute(self, args: list[str]) -> Any:
        """Run a command through the cluster as a client would (from a custom
        route or service, or an intermediate command). Raises CommandError."""
        if self._runtime is None:
            raise RuntimeError("the app is not running")
        result: Any = await self._runtime.execute(args)
        return result

    # --- running -------------------------------------------------------------------------

    def main(self, argv: list[str] | None = None) -> None:
        """Parse uhaha's flags and run a node until SIGINT/SIGTERM (exits the process)."""
        from .cli import UsageError, parse_args, usage  # noqa: PLC0415
        from .server import run  # noqa: PLC0415

        prog = sys.argv[0].rsplit("/", 1)[-1] or self.name
        try:
            opts = parse_args(sys.argv[1:] if argv is None else argv)
        except UsageError as e:
            print(f"{prog}: {e}", file=sys.stderr)
            raise SystemExit(2) from None
        if opts.show_help:
            print(usage(prog), end="")
            raise SystemExit(0)
        if opts.show_version:
            print(f"{self.name} {self.version}")
            raise SystemExit(0)
        raise SystemExit(run(opts, app=self, prog=prog))

    async def start(self, argv: list[str]) -> Any:
        """Start a node inside a running asyncio program; returns a handle whose
        ``await stop()`` stops it. ``argv`` are uhaha's flags."""
        from .cli import parse_args  # noqa: PLC0415
        from .server import NodeProcess  # noqa: PLC0415

        proc = NodeProcess(parse_args(argv), app=self)
        await proc.start()
        return proc

    @asynccontextmanager
    async def running(self, argv: list[str]) -> AsyncIterator[Any]:
        """``async with app.running(["-n", "1", "-a", ":11001"]) as node: ...``"""
        proc = await self.start(argv)
        try:
            yield proc
        finally:
            await proc.stop()

    # --- state -------------------------------------------------------------------------------

    def fresh_data(self) -> Any:
        """A new copy of the initial data (each node starts from its own)."""
        data = self.initial_data
        return data() if callable(data) else copy.deepcopy(data)

    def dump(self, data: Any) -> bytes:
        """The snapshot bytes of ``data``."""
        if self.snapshot_fn is not None:
            return self.snapshot_fn(data)
        if self.json_snapshots:
            return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        raise CommandError("ERR this app has no snapshot format (json_snapshots or @app.snapshot)")

    def load(self, raw: bytes) -> Any:
        if self.restore_fn is not None:
            return self.restore_fn(raw)
        if self.json_snapshots:
            return json.loads(raw)
        raise CommandError("ERR this app has no snapshot format (json_snapshots or @app.restore)")


def run_write(app: App, m: Any, index: int, data: bytes) -> Any:
    """Apply one committed entry of ``app`` to machine ``m`` (on every node)."""
    decoded = decode(data)
    if isinstance(decoded, tuple):
        ts, seed = decoded
        m.apply_tick(ts, seed)
        for fn in app.tick_handlers:
            with m.writing(index):
                try:
                    fn(m)
                except Exception:
                    # Same code, same data, same error on every node: log it
                    # and go on, as a failing command does.
                    log.exception("tick handler failed at index %d", index)
        return None
    results: list[Any] = []
    append = results.append
    find = app.find
    catchall = app.catchall
    # begin_write/end_write rather than ``with m.writing()``: this loop runs
    # once per command of every batch, and the context manager costs as much
    # as a small command.
    for args in decoded:
        name = args[0].decode("utf-8", "surrogateescape")
        cmd = find(name)
        if cmd is None or cmd.kind != "write":
            append(unknown_command(name))
            continue
        # A catch-all needs to know what it was called as: it gets the name too.
        given = args if cmd is catchall else args[1:]
        str_args = [a.decode("utf-8", "surrogateescape") for a in given]
        m.begin_write(index)
        try:
            append(cmd.fn(m, str_args))
        except CommandError as e:
            append(e)
        except Exception as e:
            append(CommandError(f"ERR {e}"))
        finally:
            m.end_write()
    return results


def make_machine(app: App) -> Machine:
    """The machine one node applies ``app``'s log to, holding fresh initial data."""
    return Machine(app.fresh_data(), log=log)


class Applier:
    """Applies committed entries of an app to its machine (the node's Machine)."""

    def __init__(self, app: App, machine: Machine) -> None:
        self.app = app
        self.machine = machine

    def apply(self, entry: Entry) -> Any:
        return run_write(self.app, self.machine, entry.index, entry.data)

    def dump(self) -> tuple[SnapshotHeader, bytes]:
        """The machine's header and the app's bytes (runs in the forked child)."""
        st = self.machine.state()
        return SnapshotHeader(st.start, st.ts, st.seed), self.app.dump(self.machine.data)

    def restore(self, store: SnapshotStore, snapshot_id: str) -> None:
        reader = store.open(snapshot_id)
        try:
            header = reader.header
            raw = reader.read()
        finally:
            reader.close()
        self.machine.data = self.app.load(raw)
        self.machine.restore_header(header.ts, header.seed, header.start)
