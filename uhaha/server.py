"""Runs one node as a process: data directory, storage, transport, front door.

This is what ``python -m uhaha`` and ``App.main()`` call. Start-up problems
(a port in use, an unwritable or locked data directory, a corrupt log) end
with one clear line and a non-zero exit status; SIGINT and SIGTERM stop the
node cleanly (the Ready being written finishes, files are closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import signal
import ssl as ssl_module
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from . import __version__
from .app import App, Applier, make_machine
from .builtins import Builtins, _Ok
from .cli import Options, UsageError
from .dispatch import Dispatcher
from .entries import encode_tick
from .errors import CommandError
from .frontdoor import FrontDoor, StartupError
from .http.api import api_routes
from .http.openapi import describe, load_description
from .http.ui import ui_routes
from .limits import parse_limits
from .log import error_line, setup_logging
from .metrics import NodeMetrics
from .node import Node, NodeOptions, NullMachine
from .raft import Configuration, HardState, Member, SnapshotMeta
from .resp import Connection, Error, RespHandler, ServerInfo, SimpleString, secret_checker
from .respclient import ReplyError, RespClientError, call
from .security import AuthFailures, client_context, require_bearer, server_context
from .snapshotter import backup, restore_file
from .storage import (
    DataDir,
    MemoryStorage,
    SnapshotInfo,
    SnapshotStore,
    SQLiteStorage,
    Storage,
    StorageError,
)
from .timesync import TimeSource
from .transport import HttpTransport
from .transport.base import Transport

__all__ = ["NodeProcess", "RespAdapter", "run"]

log = logging.getLogger("uhaha.server")


def _ignore_outcome(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # a lost tick is harmless: the next one follows


class RespAdapter:
    """The dispatcher as the RESP front end sees it: uhaha errors become
    RESP error replies and status strings become ``+OK``-style replies."""

    def __init__(self, dispatcher: Dispatcher, app: App | None = None) -> None:
        self.dispatcher = dispatcher
        self.app = app

    def submit(self, conn: Connection, args: list[bytes]) -> Any:
        try:
            result = self.dispatcher.submit(conn, args)
        except CommandError as e:
            return Error(e.message)
        if isinstance(result, asyncio.Future):
            return result  # finished through convert_future: no Task per command
        if isinstance(result, Awaitable):
            return self._finish(result)
        return self._convert(result)

    def convert_future(self, future: asyncio.Future[Any]) -> Any:
        """The reply of a finished future returned by :meth:`submit`."""
        exc = future.exception()
        if exc is None:
            return self._convert(future.result())
        if isinstance(exc, CommandError):
            return Error(exc.message)
        return Error(f"ERR {exc}")

    async def _finish(self, result: Awaitable[Any]) -> Any:
        try:
            return self._convert(await result)
        except CommandError as e:
            return Error(e.message)

    def _convert(self, value: Any) -> Any:
        if isinstance(value, _Ok):
            return SimpleString(value)
        return value

    def opened(self, conn: Connection) -> None:
        if self.app is not None and self.app.connected_fn is not None:
            self.app.connected_fn(conn)

    def closed(self, conn: Connection) -> None:
        self.dispatcher.closed(conn)
        if self.app is not None and self.app.disconnected_fn is not None:
            self.app.disconnected_fn(conn)


@dataclass
class NodeProcess:
    """Everything one running node owns, built from the command-line options.

    Without ``app`` the node answers only the built-in commands."""

    opts: Options
    app: App | None = None
    datadir: DataDir | None = None
    node: Node | None = None
    door: FrontDoor | None = None
    join_task: asyncio.Task[None] | None = None
    tick_task: asyncio.Task[None] | None = None
    dispatcher: Dispatcher | None = None
    time_source: TimeSource | None = None
    _backups: set[asyncio.Task[None]] = field(default_factory=set)
    storage: Storage | None = None
    metrics: NodeMetrics | None = None
    asgi: Starlette | None = None

    @property
    def app_name(self) -> str:
        return self.app.name if self.app is not None else "uhaha"

    @property
    def version(self) -> str:
        return self.app.version if self.app is not None else __version__

    def role(self) -> str:
        node = self.node
        if node is None or node.core is None:
            return "N"
        if not node.core.config.get(node.id):
            return "N"
        return {"leader": "L", "follower": "F"}.get(node.core.role.value, "C")

    async def start(self) -> None:
        opts = self.opts
        self.datadir = DataDir.open(opts.data_dir, self.app_name, opts.node_id)
        storage: Storage
        if opts.backend == "memory":
            storage = MemoryStorage()
        else:
            storage = await SQLiteStorage.open(self.datadir.db_path, nosync=opts.nosync)
        self.storage = storage
        snapshots = SnapshotStore(self.datadir.snapshot_path)
        if opts.restore:
            await self._restore(storage, snapshots)
        client_ssl = client_context(opts)
        limits = parse_limits(opts.limits)
        auth_failures = AuthFailures()
        http_auth_failed = functools.partial(auth_failures.failed, "HTTP")
        transports: list[HttpTransport] = []
        metrics = self.metrics = NodeMetrics(
            app=self.app_name, version=self.version, tls=bool(opts.tls_cert)
        )

        def make_transport(deliver: Callable[[Any], None]) -> Transport:
            t = HttpTransport(
                opts.node_id, metrics.deliver(deliver), auth=opts.auth or None, ssl=client_ssl
            )
            transports.append(t)
            return metrics.transport(t)

        app = self.app
        machine = make_machine(app) if app is not None else None
        node = self.node = Node(
            NodeOptions(
                opts.node_id,
                opts.advertised,
                nonvoter=opts.nonvoter,
                snapshot_every=opts.snapshot_every,
            ),
            metrics.storage(storage),
            snapshots,
            make_transport,
            metrics.machine(
                Applier(app, machine) if app is not None and machine is not None else NullMachine()
            ),
        )
        builtins = Builtins(node, version=self.version, try_errors=opts.try_errors, machine=machine)
        dispatcher = self.dispatcher = Dispatcher(
            builtins, app, machine, openreads=opts.openreads, status=SimpleString
        )
        asgi = Starlette(
            routes=[
                *transports[0].routes(),
                *api_routes(
                    node,
                    dispatcher,
                    opts.auth,
                    max_body=limits.http_body,
                    body_timeout=limits.http_body_timeout,
                    on_auth_failure=http_auth_failed,
                    metrics=metrics.render,
                    openapi=self._openapi,
                ),
                *ui_routes(
                    node,
                    dispatcher,
                    opts.auth,
                    ssl=client_ssl,
                    title=self.app_name,
                    requests=lambda: dispatcher.submitted,
                    on_auth_failure=http_auth_failed,
                ),
                *(self._app_routes(http_auth_failed) if app is not None else []),
            ]
        )
        adapter = RespAdapter(dispatcher, app)
        resp = RespHandler(
            adapter,
            convert=adapter.convert_future,
            check_auth=secret_checker(opts.auth) if opts.auth else None,
            on_auth_failure=lambda conn: auth_failures.failed("RESP", conn.remote),
            limits=limits.parser,
            max_pending=limits.max_pending,
            request_timeout=limits.resp_request_timeout,
            idle_timeout=limits.resp_idle_timeout,
            info=ServerInfo(server=self.app_name, version=self.version),
        )
        self.asgi = asgi
        self.door = FrontDoor(
            asgi,
            resp,
            ssl=server_context(opts),
            limits=limits.door,
            services=app.services if app is not None else (),
        )
        metrics.attach(node, self.door)
        if opts.backup_dir:
            node.snapshot_listeners.append(self._backup)
        if app is not None:
            app._runtime = self
            if app.state_change_fn is not None:
                node.role_listeners.append(app.state_change_fn)
            servers = opts.ntp_servers
            self.time_source = (
                TimeSource(servers, localtime=opts.localtime)
                if servers
                else TimeSource(localtime=opts.localtime)
            )
            clock = self.time_source
            dispatcher.first_tick = lambda: encode_tick(clock.now_ns(), secrets.randbits(64))
        host, port = opts.bind
        await self.door.start(host, port)
        log.info(
            "server started on %s (node %s, advertised as %s)",
            opts.addr,
            opts.node_id,
            opts.advertised,
        )
        loaded = await storage.load()
        fresh = loaded.last_index == 0 and loaded.hard_state.term == 0
        if opts.join and not fresh:
            log.warning("ignoring -j %s: this node is already a member of a cluster", opts.join)
        await node.start(bootstrap=not opts.join)
        if self.time_source is not None:
            await self.time_source.start()
            self.tick_task = asyncio.create_task(self._ticks(), name="uhaha-ticks")
        if opts.join and fresh:
            self.join_task = asyncio.create_task(
                self._join(opts.join, client_ssl), name="uhaha-join"
            )

    def _app_routes(self, on_auth_failure: Callable[[str], None]) -> list[Any]:
        """The app's own routes, each behind ``--auth`` unless it was made public."""
        app, secret = self.app, self.opts.auth
        assert app is not None
        if secret:
            for route in app.routes:
                if id(route) not in app.public_routes and not getattr(route, "_guarded", False):
                    route.app = require_bearer(  # type: ignore[attr-defined]
                        route.app,  # type: ignore[attr-defined]
                        secret,
                        on_auth_failure,
                    )
                    route._guarded = True  # type: ignore[attr-defined]
        return app.routes

    def _openapi(self) -> dict[str, Any]:
        """The API's description with the application's routes (``GET /openapi.json``)."""
        app = self.app
        return describe(
            load_description(),
            app.routes if app is not None else (),
            title=f"{self.app_name} (uhaha node)",
            version=self.version,
            auth=bool(self.opts.auth),
            public=app.public_routes if app is not None else (),
        )

    async def _restore(self, storage: Storage, snapshots: SnapshotStore) -> None:
        """``--restore path``: a brand-new single-node cluster holding the snapshot."""
        opts = self.opts
        loaded = await storage.load()
        if loaded.last_index or loaded.hard_state.term or snapshots.latest() is not None:
            log.warning("ignoring --restore %s: the data directory already has data", opts.restore)
            return
        me = Member(opts.node_id, opts.advertised, True)
        meta = SnapshotMeta(1, 1, Configuration((me,)))
        shown = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if total > 16 << 20 and now - shown[0] >= 1.0:
                shown[0] = now
                log.info("restoring snapshot: %d%% of %d MB", done * 100 // total, total >> 20)

        info = await asyncio.to_thread(restore_file, snapshots, opts.restore, meta, progress)
        await storage.save(HardState(1, "", 1), [])
        await storage.compact(1, 1)
        log.info("restored snapshot %s from %s", info.id, opts.restore)

    def _backup(self, info: SnapshotInfo) -> None:
        opts, node = self.opts, self.node
        assert node is not None
        prefix = f"{self.app_name}-{opts.node_id}"

        async def copy() -> None:
            try:
                path = await asyncio.to_thread(
                    backup, node.snapshots, info, Path(opts.backup_dir), opts.backups, prefix
                )
                log.info("backed up snapshot %s to %s", info.id, path)
            except (OSError, StorageError) as e:
                log.warning("backup of snapshot %s failed: %s", info.id, e)

        self._backups.add(task := asyncio.create_task(copy()))
        task.add_done_callback(self._backups.discard)

    async def _join(self, target: str, client_ssl: ssl_module.SSLContext | None) -> None:
        """Ask the cluster at ``target`` to add this node, following MOVED to the
        leader, retrying with backoff until it works (as the Go uhaha does)."""
        node = self.node
        assert node is not None
        opts = self.opts
        add = ["RAFT", "SERVER", "ADD", opts.node_id, opts.advertised]
        if opts.nonvoter:
            add.append("NONVOTER")
        address = target
        delay = 0.1
        while not node.stopped.is_set():
            try:
                # Learn the members' addresses first: once added, this node
                # must answer the leader before the change can commit.
                (members,) = await call(
                    address, ["RAFT", "SERVER", "LIST"], auth=opts.auth, ssl=client_ssl
                )
                if isinstance(members, list):
                    node.add_seed_peers(_member_addresses(members))
                (added,) = await call(address, add, auth=opts.auth, ssl=client_ssl, timeout=30)
                if isinstance(added, ReplyError):
                    text = str(added)
                    if text.startswith(("MOVED ", "TRY ")):
                        address = text.rsplit(maxsplit=1)[-1]
                        continue
                    if "already a member" in text:
                        log.info("already a member of the cluster at %s", address)
                        return
                    raise RespClientError(text)
                log.info("joined the cluster at %s", address)
                return
            except RespClientError as e:
                log.warning("cannot join through %s yet: %s", address, e)
                address = target
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _ticks(self) -> None:
        """On the leader, propose the replicated time and seed every tick interval."""
        node, app, clock = self.node, self.app, self.time_source
        assert node is not None and app is not None and clock is not None
        while True:
            await asyncio.sleep(app.tick_interval)
            if node.is_leader():
                data = encode_tick(clock.now_ns(), secrets.randbits(64))
                task = asyncio.ensure_future(node.propose(data))
                task.add_done_callback(_ignore_outcome)

    async def execute(self, args: list[str]) -> Any:
        """Run a command as a client would (``App.execute``)."""
        assert self.dispatcher is not None
        result = self.dispatcher.submit(None, args)
        if isinstance(result, Awaitable):
            result = await result
        return result

    async def stop(self) -> None:
        for task in (self.join_task, self.tick_task):
            if task is not None:
                task.cancel()
        if self.time_source is not None:
            await self.time_source.close()
        # The node first: its transport ends the peers' inbound streams, which
        # the front door would otherwise wait for until its close deadline.
        if self.node is not None and self.node.core is not None:
            await self.node.stop()  # closes the storage too
        elif self.storage is not None:
            await self.storage.close()  # start-up failed before the node ran
        for task in list(self._backups):
            with contextlib.suppress(Exception):
                await task
        if self.door is not None:
            await self.door.close()
        if self.datadir is not None:
            self.datadir.close()


def _member_addresses(members: list[Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in members:
        fields = m
        if isinstance(m, list):
            fields = {_text(m[i]): _text(m[i + 1]) for i in range(0, len(m) - 1, 2)}
        if isinstance(fields, dict):
            f = {_text(k): _text(v) for k, v in fields.items()}
            if "id" in f and "address" in f:
                out[f["id"]] = f["address"]
    return out


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


async def _serve(proc: NodeProcess) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await proc.start()
    except (StartupError, StorageError) as e:
        await _quietly(proc.stop())
        print_error(str(e))
        return 1
    node = proc.node
    assert node is not None
    waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(node.stopped.wait())]
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for w in waiters:
        w.cancel()
    failed = node.failed
    log.info("shutting down")
    await proc.stop()
    if failed is not None:
        print_error(f"stopped: {failed}")
        return 1
    return 0


async def _quietly(aw: Awaitable[Any]) -> None:
    with contextlib.suppress(Exception):
        await aw


_prog = "uhaha"


def print_error(message: str) -> None:
    print(error_line(_prog, message), file=sys.stderr)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (it is a dependency on CPython
    for Linux and macOS), else asyncio's. ``UHAHA_LOOP=asyncio`` or ``uvloop``
    insists on one; anything else is a usage error."""
    choice = os.environ.get("UHAHA_LOOP", "")
    if choice not in ("", "asyncio", "uvloop"):
        raise UsageError(f"UHAHA_LOOP={choice!r}: expected asyncio or uvloop")
    if choice == "asyncio":
        return None
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:
        if choice:
            raise UsageError("UHAHA_LOOP=uvloop, but uvloop is not installed") from None
        return None
    return uvloop.new_event_loop


def run(opts: Options, *, app: App | None = None, prog: str = "uhaha") -> int:
    """Run a node until SIGINT/SIGTERM; returns the process exit status."""
    global _prog
    _prog = prog
    try:
        loop_factory = _loop_factory()
    except UsageError as e:
        print_error(str(e))
        return 2
    proc = NodeProcess(opts, app)
    setup_logging(opts.log_level, proc.role, fmt=opts.log_format)
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(_serve(proc))
    except KeyboardInterrupt:
        return 130
