"""One place that executes a command for every front end.

Front ends hand over raw arguments in each connection's arrival order; the
dispatcher finds the command (built-in or the application's) and returns
the reply value or an awaitable of it. Errors are raised as
:class:`~uhaha.errors.CommandError` with uhaha's wording.

- Writes are batched: every write submitted before the event loop next gets
  a chance to run (a pipelined burst, many concurrent clients) goes into
  one log entry, up to 256 per entry, with no waiting when idle. A write is
  answered once committed and applied on this node.
- Reads run on the leader after a ReadIndex confirmation (linearizable), or
  with ``--openreads`` on any node whose log is loaded (possibly stale).
- One connection's commands take effect in the order it sent them, as in
  Redis: its read waits for its earlier writes (so a pipelined read sees the
  writes before it), and its write waits for its earlier reads to be served
  (so a read never sees a write sent after it).
- Intermediate commands run locally with the connection's context.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .builtins import Builtins
from .entries import encode_batch
from .errors import CommandError, unknown_command
from .node import NotLeaderError, OutcomeUnknown, ProposalFailed

if TYPE_CHECKING:
    from .app import App, Command

__all__ = ["MAX_BATCH", "Dispatcher"]

MAX_BATCH = 256
Handler = Callable[[list[str]], Any]


def decode_arg(raw: bytes | str) -> str:
    """Arguments are UTF-8; undecodable bytes survive as surrogate escapes."""
    if isinstance(raw, str):
        return raw
    return raw.decode("utf-8", "surrogateescape")


def encode_arg(arg: bytes | str) -> bytes:
    if isinstance(arg, bytes):
        return arg
    return arg.encode("utf-8", "surrogateescape")


class Dispatcher:
    def __init__(
        self,
        builtins: Builtins,
        app: App | None = None,
        machine: Any = None,
        *,
        openreads: bool = False,
        status: Callable[[str], Any] = str,
    ) -> None:
        self.builtins = builtins
        self.node = builtins.node
        self.app = app
        self.machine = machine
        """The application's :class:`~uhaha.machine.Machine` (reads and intermediates)."""
        self.openreads = openreads
        self.commands: dict[str, Handler] = dict(builtins.table())
        self._pending: list[tuple[list[bytes], asyncio.Future[Any]]] = []
        self._flush_scheduled = False
        self._pending_reads: list[tuple[Command, list[str], asyncio.Future[Any]]] = []
        self._reads_scheduled = False
        self._last_write: dict[int, asyncio.Future[Any]] = {}
        self._last_read: dict[int, asyncio.Future[Any]] = {}
        self._monitors: dict[int, Any] = {}
        self._status = status
        """Makes a status reply (RESP ``+text``) for MONITOR's feed."""
        self.submitted = 0
        """Commands submitted so far (the dashboard's request rate)."""
        self.first_tick: Callable[[], bytes] | None = None
        """Makes a tick entry (the node sets it for apps): writes proposed before the
        machine's first tick go after one, so they never see time 0 (1970)."""

    # --- entry point ------------------------------------------------------------------

    def submit(self, conn: Any, args: list[bytes] | list[str]) -> Any | Awaitable[Any]:
        """Run one command. Called in each connection's arrival order."""
        self.submitted += 1
        if not args:
            raise CommandError("ERR empty command")
        name = decode_arg(args[0])
        key = name.lower()
        if self._monitors:
            self._feed(conn, args)
        if key == "monitor":
            return self._monitor(conn, args)
        cmd = self.app.commands.get(key) if self.app is not None else None
        if cmd is None:
            fn = self.commands.get(key)
            if fn is not None:
                return fn([decode_arg(a) for a in args[1:]])
            cmd = self.app.catchall if self.app is not None else None
            if cmd is None:
                raise unknown_command(name)
        result = self._run_app(conn, cmd, args)
        if self.app is not None and self.app.response_filter_fn is not None:
            return self._filtered(args, result)
        return result

    def _run_app(self, conn: Any, cmd: Command, args: list[bytes] | list[str]) -> Any:
        if cmd.kind == "write":
            return self._write(conn, [encode_arg(a) for a in args])
        given = args if self.app is not None and cmd is self.app.catchall else args[1:]
        str_args = [decode_arg(a) for a in given]
        if cmd.kind == "read":
            conn_id = getattr(conn, "id", -1)
            prev = self._last_write.get(conn_id)
            settled = prev is None or prev.done()
            if settled and self.openreads:
                return self._read_now(cmd, str_args)  # answered before anything else runs
            if settled:
                fut = self._read_batched(cmd, str_args)
            else:
                assert prev is not None
                fut = asyncio.ensure_future(self._read(prev, cmd, str_args))
            if conn_id != -1:
                self._last_read[conn_id] = fut  # a later write of conn waits for it
            return fut
        return self._intermediate(conn, cmd, str_args)

    async def _filtered(self, args: list[bytes] | list[str], result: Any) -> Any:
        assert self.app is not None and self.app.response_filter_fn is not None
        if inspect.isawaitable(result):
            result = await result
        return self.app.response_filter_fn([decode_arg(a) for a in args], result)

    def readonly(self, args: list[str]) -> bool:
        """Whether a command changes nothing (so HTTP GET may run it)."""
        if not args:
            return False
        key = args[0].lower()
        cmd = self.app.commands.get(key) if self.app is not None else None
        if cmd is not None:
            return cmd.kind != "write"
        if key in self.commands:
            sub = " ".join(a.lower() for a in args[1:3])
            if key in ("ping", "echo", "version", "machine", "cluster"):
                return True
            if key == "raft":
                return sub.split(" ")[0] in ("leader", "info", "help") or sub in (
                    "server list",
                    "snapshot list",
                    "snapshot file",
                    "snapshot read",
                )
            return False
        return (
            self.app is not None
            and self.app.catchall is not None
            and (self.app.catchall.kind != "write")
        )

    # --- writes ---------------------------------------------------------------------------

    def _write(self, conn: Any, args: list[bytes]) -> Awaitable[Any]:
        if not self.node.is_leader():
            raise self.builtins.moved()
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        conn_id = getattr(conn, "id", None)
        if conn_id is not None:
            self._last_write[conn_id] = fut  # dropped in closed(); checked with done()
            read = self._last_read.get(conn_id)
            if read is not None and not read.done():
                # Not before this connection's earlier read was served.
                read.add_done_callback(lambda _: self._enqueue(args, fut))
                return fut
        self._enqueue(args, fut)
        return fut

    def _enqueue(self, args: list[bytes], fut: asyncio.Future[Any]) -> None:
        if fut.done():
            return
        self._pending.append((args, fut))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), MAX_BATCH):
            batch = pending[start : start + MAX_BATCH]
            task = asyncio.ensure_future(self._propose(batch))
            task.add_done_callback(_consume)

    async def _propose(self, batch: list[tuple[list[bytes], asyncio.Future[Any]]]) -> None:
        try:
            if self.first_tick is not None and self.machine is not None and not self.machine.start:
                await self.node.propose(self.first_tick())
            results = await self.node.propose(encode_batch([args for args, _ in batch]))
        except (NotLeaderError, ProposalFailed, OutcomeUnknown) as e:
            error: CommandError = self.builtins.node_error(e)
        except CommandError as e:
            error = e
        else:
            for (_, fut), r in zip(batch, results, strict=True):
                if fut.done():
                    continue
                if isinstance(r, CommandError):
                    fut.set_exception(r)
                else:
                    fut.set_result(r)
            return
        for _, fut in batch:
            if not fut.done():
                fut.set_exception(error)

    # --- reads and intermediates ------------------------------------------------------------

    def _read_batched(self, cmd: Command, args: list[str]) -> asyncio.Future[Any]:
        """A linearizable read, sharing one ReadIndex confirmation with every
        read submitted in the same loop iteration (the confirmation starts
        after all of them arrived, so each is still linearizable)."""
        if not self.node.is_leader():
            raise self.builtins.moved()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending_reads.append((cmd, args, fut))
        if not self._reads_scheduled:
            self._reads_scheduled = True
            loop.call_soon(self._flush_reads)
        return fut

    def _flush_reads(self) -> None:
        self._reads_scheduled = False
        batch, self._pending_reads = self._pending_reads, []
        asyncio.ensure_future(self._serve_reads(batch)).add_done_callback(_consume)

    async def _serve_reads(
        self, batch: list[tuple[Command, list[str], asyncio.Future[Any]]]
    ) -> None:
        try:
            await self.node.read_barrier()
        except (NotLeaderError, ProposalFailed, OutcomeUnknown) as e:
            error = self.builtins.node_error(e)
        else:
            with self.machine.reading(None) as m:
                for cmd, args, fut in batch:
                    if fut.done():
                        continue
                    try:
                        fut.set_result(_run_read(m, cmd, args))
                    except CommandError as e:
                        fut.set_exception(e)
            return
        for _, _, fut in batch:
            if not fut.done():
                fut.set_exception(error)

    async def _read(self, prev: asyncio.Future[Any], cmd: Command, args: list[str]) -> Any:
        """A read after ``prev``, its connection's last write before it (read-your-writes)."""
        if not prev.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(prev)
        if not self.openreads:
            return await self._read_batched(cmd, args)
        return self._read_now(cmd, args)

    def _read_now(self, cmd: Command, args: list[str]) -> Any:
        """A local read (``--openreads``): this node's state as it is."""
        if not self.node.logs_loaded:
            raise CommandError("ERR the log is still loading")
        with self.machine.reading(None) as m:
            return _run_read(m, cmd, args)

    def _intermediate(self, conn: Any, cmd: Command, args: list[str]) -> Any:
        context = getattr(conn, "context", None)
        if context is None:
            context = {}
        view = self.machine.intermediate(context)
        try:
            result = cmd.fn(view, args)
        except CommandError:
            raise
        except Exception as e:
            raise CommandError(f"ERR {e}") from e
        if inspect.isawaitable(result):
            return _guard(result)
        return result

    def closed(self, conn: Any) -> None:
        conn_id = getattr(conn, "id", -1)
        self._last_write.pop(conn_id, None)
        self._last_read.pop(conn_id, None)
        self._monitors.pop(conn_id, None)

    # --- MONITOR ----------------------------------------------------------------------------

    def _monitor(self, conn: Any, args: list[bytes] | list[str]) -> Any:
        """MONITOR: stream every command this node receives to the connection."""
        if len(args) != 1:
            raise CommandError("ERR wrong number of arguments")
        if not hasattr(conn, "push"):
            raise CommandError("ERR MONITOR needs a RESP connection")
        self._monitors[conn.id] = conn
        conn.feed = True  # exempt from the idle timeout, as in Redis
        return self._status("OK")

    def _feed(self, conn: Any, args: list[bytes] | list[str]) -> None:
        where = getattr(conn, "remote", "http")
        quoted = " ".join(_quote(decode_arg(a)) for a in args)
        line = self._status(f"{time.time():.6f} [0 {where}] {quoted}")
        for monitor in list(self._monitors.values()):
            if monitor is not conn:
                monitor.push(line)


def _run_read(m: Any, cmd: Command, args: list[str]) -> Any:
    """Run a read command; any exception it raises becomes its error reply."""
    try:
        return cmd.fn(m, args)
    except CommandError:
        raise
    except Exception as e:
        raise CommandError(f"ERR {e}") from e


def _quote(arg: str) -> str:
    """An argument as Redis's MONITOR shows it: quoted, with escapes."""
    out = []
    for ch in arg:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append("".join(f"\\x{b:02x}" for b in ch.encode("utf-8", "surrogateescape")))
    return '"' + "".join(out) + '"'


async def _guard(aw: Awaitable[Any]) -> Any:
    try:
        return await aw
    except CommandError:
        raise
    except Exception as e:
        raise CommandError(f"ERR {e}") from e


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
