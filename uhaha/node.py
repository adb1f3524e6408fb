"""The asyncio driver of one Raft server.

It owns the core, the storage and the transport, and runs the Ready loop of
:mod:`uhaha.raft.ready`: persist (durably, unless ``nosync``), then send, then
advance. Two things go ahead of the write: a leader's appends are sent first,
so that followers write them while the leader does (thesis 10.2.1), and
entries already committed (durable on a majority) are applied first. While one
Ready is being written, new proposals and messages keep arriving and are
stepped into the core, so the next Ready carries all of them: that is where
write batching comes from.

Front ends never touch the core: they call :meth:`Node.propose`,
:meth:`Node.read_barrier`, :meth:`Node.change_membership` and friends, which
resolve once the outcome is known (committed and applied, or definitely not).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .raft import (
    ConfChange,
    ConfChangePending,
    Configuration,
    Entry,
    EntryKind,
    Member,
    Message,
    NotLeader,
    RaftConfig,
    RaftCore,
    RaftError,
    RaftState,
    Ready,
    Role,
    SnapshotMeta,
)
from .snapshotter import write_snapshot
from .storage import (
    SnapshotHeader,
    SnapshotInfo,
    SnapshotReceiver,
    SnapshotStore,
    Storage,
    StorageError,
)
from .transport.base import Transport

__all__ = [
    "Machine",
    "Node",
    "NodeOptions",
    "NotLeaderError",
    "OutcomeUnknown",
    "ProposalFailed",
]

log = logging.getLogger("uhaha.node")


class Machine(Protocol):
    """What the node applies committed entries to (the application's state)."""

    def apply(self, entry: Entry) -> Any:
        """Apply one committed NORMAL entry with data; the result goes to its proposer."""

    def restore(self, store: SnapshotStore, snapshot_id: str) -> None:
        """Replace the whole state with the snapshot ``snapshot_id``."""

    def dump(self) -> tuple[SnapshotHeader, bytes]:
        """The state now: the machine's header and the application's bytes.
        Runs in a forked child (see :mod:`uhaha.snapshotter`): no I/O, no loop."""


class NullMachine:
    """A machine with no state: the node runs with the built-in commands only."""

    def apply(self, entry: Entry) -> Any:
        return None

    def restore(self, store: SnapshotStore, snapshot_id: str) -> None:
        return None

    def dump(self) -> tuple[SnapshotHeader, bytes]:
        return SnapshotHeader(), b""


class NotLeaderError(Exception):
    """This node cannot do that; ``leader`` is the address of the leader, or ""."""

    def __init__(self, leader: str) -> None:
        super().__init__(f"not the leader (leader: {leader or 'unknown'})")
        self.leader = leader


class ProposalFailed(Exception):
    """The operation was definitely not applied."""


class OutcomeUnknown(Exception):
    """The operation may or may not have been applied (e.g. timed out)."""


@dataclass
class NodeOptions:
    node_id: str
    advertise: str
    """The address peers and clients use to reach this node ("host:port")."""
    tick_ms: float = 50.0
    election_tick: int = 10
    heartbeat_tick: int = 2
    nonvoter: bool = False
    request_timeout: float = 10.0
    snapshot_every: int = 10_000
    """Take a snapshot after this many applied entries (0: only on demand)."""
    trailing_logs: int = 1_000
    """Entries kept before a snapshot, for followers slightly behind."""
    fork_snapshots: bool = True
    raft: dict[str, Any] = field(default_factory=dict)
    """Extra :class:`RaftConfig` settings."""


@dataclass
class _Waiter:
    term: int
    future: asyncio.Future[Any]


class Node:
    """One Raft server: see the module documentation."""

    def __init__(
        self,
        options: NodeOptions,
        storage: Storage,
        snapshots: SnapshotStore,
        transport_factory: Callable[[Callable[[Message], None]], Transport],
        machine: Machine | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.options = options
        self.id = options.node_id
        self.storage = storage
        self.snapshots = snapshots
        self.transport = transport_factory(self.deliver)
        self.machine: Machine = machine or NullMachine()
        self.rng = rng or random.Random()
        self.core: RaftCore | None = None
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._waiters: dict[int, _Waiter] = {}
        self._reads: dict[bytes, asyncio.Future[int]] = {}
        self._read_ids = itertools.count(1)
        self._applied_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._receiver: SnapshotReceiver | None = None
        self._peers: dict[str, str] = {}
        self._seeds: dict[str, str] = {}
        self._config_index = -1
        self._stopping = False
        self._failed: BaseException | None = None
        self.stopped = asyncio.Event()
        self.loaded_commit = 0
        """The commit index known at start-up: "logs loaded" once applied up to it."""
        self.logs_loaded = False
        self._replay_from = 0
        self._replay_shown = 0.0
        self.started_at = time.time()
        self.role_listeners: list[Callable[[str], None]] = []
        """Called with the new role ("leader", "follower", ...) when it changes."""
        self.snapshot_listeners: list[Callable[[SnapshotInfo], None]] = []
        """Called with each snapshot this node writes (backups)."""
        self._snapshot_task: asyncio.Task[SnapshotInfo] | None = None
        self._snapshot_index = 0
        #: The last entry the state machine applied (the machine's own snapshot
        #: restores it too, through the core's applied index at start-up).
        self.machine_index = 0
        self._receive_shown = 0.0
        self.loop_lag_max = 0.0
        """The longest the event loop was late for a timer, in seconds."""
        self.proposals = 0
        """Entries proposed through :meth:`propose` (a counter for /metrics)."""
        self.last_snapshot_seconds = 0.0
        """How long writing the newest snapshot took (set before the listeners run)."""

    # --- lifecycle -------------------------------------------------------------

    async def start(self, *, bootstrap: bool) -> None:
        """Load state and start ticking. ``bootstrap``: when the storage is empty,
        start a new single-node cluster (otherwise wait to be added by a leader)."""
        loaded = await self.storage.load(self._load_progress)
        info = self.snapshots.latest()
        snap = info.meta if info else None
        after = snap.index if snap else 0
        if loaded.compacted_index > after:
            raise StorageError(
                f"the log was compacted up to {loaded.compacted_index} but the newest "
                f"snapshot only covers {after}: the data directory is inconsistent"
            )
        entries = [e for e in loaded.entries if e.index > after]
        if entries and entries[0].index != after + 1:
            raise StorageError(
                f"the log starts at {entries[0].index} but the snapshot ends at {after}"
            )
        cfg = RaftConfig(
            self.id,
            election_tick=self.options.election_tick,
            heartbeat_tick=self.options.heartbeat_tick,
            **self.options.raft,
        )
        state = RaftState(loaded.hard_state, snap, entries)
        if info is not None:
            self.machine.restore(self.snapshots, info.id)
        self.core = RaftCore(
            cfg,
            state,
            rng=random.Random(self.rng.random()),
            snapshot_reader=self._read_snapshot,
            applied=after,
        )
        fresh = not entries and snap is None and loaded.hard_state.term == 0
        if fresh and bootstrap:
            me = Member(self.id, self.options.advertise, True)
            self.core.bootstrap(Configuration((me,)))
            log.info("bootstrapped a new cluster")
        if self.core.config.voters() == {self.id}:
            self.core.campaign()  # alone: no one to wait for
        self._snapshot_index = after
        self.loaded_commit = self.core.log.committed
        self._replay_from = self.core.log.applied
        self.machine_index = self.core.log.applied
        self._replay_shown = 0.0
        self._check_loaded(self.core)
        self._sync_peers()
        await self.transport.start()
        self._tasks = [
            asyncio.create_task(self._ticker(), name="uhaha-tick"),
            asyncio.create_task(self._ready_loop(), name="uhaha-ready"),
            asyncio.create_task(self._watch_lag(), name="uhaha-lag"),
        ]
        self._wake.set()

    def _load_progress(self, loaded: int, total: int) -> None:
        if total >= 10_000:
            log.info("loading logs: %d of %d (%d%%)", loaded, total, loaded * 100 // total)

    def _replay_progress(self, core: RaftCore) -> None:
        """Show progress while a long log is replayed at start-up (every ~2 s)."""
        target = max(self.loaded_commit, core.log.committed)
        if target - self._replay_from < 10_000:
            return
        now = time.monotonic()
        if now - self._replay_shown >= 2.0:
            self._replay_shown = now
            done = core.log.applied - self._replay_from
            total = target - self._replay_from
            log.info("replaying logs: %d of %d (%d%%)", done, total, done * 100 // total)

    def _check_loaded(self, core: RaftCore) -> None:
        """Say "logs loaded" once this node is a member and has applied what
        was committed when it started (or, joining, what the leader told it)."""
        if self.logs_loaded or core.config.get(self.id) is None:
            return
        if core.log.applied >= max(self.loaded_commit, core.log.committed):
            self.logs_loaded = True
            log.info("logs loaded: ready for commands")

    async def stop(self) -> None:
        """Stop cleanly: finish the Ready being written, then close the transport
        and the storage. Acknowledged writes are already durable."""
        if self._stopping:
            await self.stopped.wait()
            return
        self._stopping = True
        self._wake.set()
        if self._snapshot_task is not None and not self._snapshot_task.done():
            with contextlib.suppress(Exception):
                await self._snapshot_task
        for t in self._tasks:
            if t.get_name() != "uhaha-ready":  # the Ready loop finishes its batch
                t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await self.transport.close()
        # A write already in the log may still commit under the next leader:
        # its client must not be told that it failed.
        self._fail_all(
            ProposalFailed("ERR node is shutting down"),
            writes=OutcomeUnknown("ERR node shut down before the write's outcome was known"),
        )
        await self.storage.close()
        if self._receiver is not None:
            self._receiver.abort()
        self.stopped.set()

    @property
    def failed(self) -> BaseException | None:
        """Set when the node stopped on its own (a storage failure); the process should exit."""
        return self._failed

    # --- inputs -------------------------------------------------------------------

    def deliver(self, msg: Message) -> None:
        """A message from a peer (called by the transport on the loop)."""
        core = self.core
        if core is None or self._stopping or msg.to != self.id:
            return
        core.step(msg)
        self._wake.set()

    async def _ticker(self) -> None:
        period = self.options.tick_ms / 1000
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while True:
            deadline += period
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            if self.core is not None:
                self.core.tick()
                self._wake.set()

    async def _watch_lag(self) -> None:
        """Measure how late the event loop runs a 10 ms timer: the longest stall
        (a blocking call, a big serialization) shows in RAFT INFO."""
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + 0.01
            await asyncio.sleep(0.01)
            lag = max(0.0, loop.time() - expected)
            self.loop_lag_max = max(self.loop_lag_max, lag)

    # --- the Ready loop -------------------------------------------------------------

    async def _ready_loop(self) -> None:
        core = self.core
        assert core is not None
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while core.has_ready():
                    rd = core.ready()
                    if rd.empty:  # never expected; spinning here would freeze the node
                        log.error("internal: the core has an empty Ready: %r", core)
                        core.advance(rd)
                        break
                    await self._handle(core, rd)
                if self._stopping:
                    return
        except StorageError as e:
            # After a failed write nothing written since the last sync can be
            # trusted (fsyncgate): stop, do not retry.
            log.warning("storage failure, stopping: %s", e)
            self._failed = e
            self._fail_all(OutcomeUnknown("ERR node stopped after a storage failure"))
            self.stopped.set()
        except Exception as e:
            log.exception("internal error, stopping")
            self._failed = e
            self._fail_all(OutcomeUnknown("ERR node stopped after an internal error"))
            self.stopped.set()

    async def _handle(self, core: RaftCore, rd: Ready) -> None:
        if rd.early:  # the leader's appends go out while its own disk write runs
            self.transport.send(rd.early)
        if rd.snapshot_chunks or rd.snapshot:
            self._write_snapshot(rd)
            if rd.snapshot is not None:
                await self.storage.compact(rd.snapshot.index, rd.snapshot.term)
        # Committed entries are durable on a majority already: apply them (and
        # answer their clients) while this Ready's own write runs, not after it.
        # Only a snapshot being installed must come first.
        apply_first = rd.snapshot is None
        if apply_first:
            for e in rd.committed:
                self._apply(e)
        if rd.entries or (rd.hard_state is not None and not rd.commit_only):
            await self.storage.save(rd.hard_state, rd.entries)
        if rd.messages:
            self.transport.send(rd.messages)
        if rd.soft_state is not None:
            self._role_changed(core, rd)
        if not apply_first:
            for e in rd.committed:
                self._apply(e)
        for rs in rd.read_states:
            fut = self._reads.pop(rs.ctx, None)
            if fut is not None and not fut.done():
                fut.set_result(rs.index)
        for ctx in rd.dropped_reads:
            fut = self._reads.pop(ctx, None)
            if fut is not None and not fut.done():
                fut.set_exception(ProposalFailed("ERR leadership changed during the read"))
        core.advance(rd)
        if rd.committed:
            self._release_applied(core.log.applied)
            every = self.options.snapshot_every
            if every and core.log.applied - self._snapshot_index >= every:
                self._start_snapshot()
        if not self.logs_loaded:
            self._replay_progress(core)
            self._check_loaded(core)
        if core.confs.index != self._config_index:
            self._sync_peers()

    def _write_snapshot(self, rd: Ready) -> None:
        for chunk in rd.snapshot_chunks:
            rec = self._receiver
            if rec is None or rec.meta != chunk.meta:
                if rec is not None:
                    rec.abort()
                rec = self._receiver = self.snapshots.receive(chunk.meta)
                log.info("receiving snapshot %d (%d bytes)", chunk.meta.index, chunk.meta.size)
            rec.write(chunk.offset, chunk.data)
            now = time.monotonic()
            if rec.meta.size > 16 << 20 and now - self._receive_shown >= 2.0:
                self._receive_shown = now
                log.info(
                    "receiving snapshot %d: %d%%",
                    rec.meta.index,
                    rec.received * 100 // rec.meta.size,
                )
        if rd.snapshot is not None:
            rec = self._receiver
            if rec is None or rec.meta != rd.snapshot:
                raise StorageError("snapshot to install was not received")
            info = rec.finish()
            self._receiver = None
            self.machine.restore(self.snapshots, info.id)
            self.machine_index = info.index
            log.info("installed snapshot %d", info.index)

    # --- snapshots -------------------------------------------------------------------

    def _start_snapshot(self) -> asyncio.Task[SnapshotInfo]:
        task = self._snapshot_task
        if task is None or task.done():
            task = self._snapshot_task = asyncio.create_task(self._snapshot())
            task.add_done_callback(_log_snapshot_failure)
        return task

    async def take_snapshot(self) -> SnapshotInfo:
        """Snapshot the applied state now (RAFT SNAPSHOT NOW) and compact the log."""
        self._core()
        return await asyncio.shield(self._start_snapshot())

    async def _snapshot(self) -> SnapshotInfo:
        core = self._core()
        while core.installing:  # a leader's snapshot is about to replace our state
            await self._next_apply(0.05)
        # The machine's state, which may be ahead of core.log.applied while a
        # Ready's write is in flight (its entries were applied first).
        index = self.machine_index
        latest = self.snapshots.latest()
        if latest is not None and latest.index >= index:
            return latest
        meta = core.snapshot_meta(index)
        started = time.monotonic()
        try:
            info = await write_snapshot(
                self.snapshots, meta, self.machine.dump, fork=self.options.fork_snapshots
            )
        except Exception:
            # Try again only after another ``snapshot_every`` entries.
            self._snapshot_index = index
            raise
        self._snapshot_index = info.index
        self.last_snapshot_seconds = time.monotonic() - started
        # The log before the snapshot can go, but for the trailing entries,
        # once the core counts the snapshot's entries as applied.
        while core.log.applied < info.index:
            await self._next_apply(0.05)
        core.compact(info.meta, self.options.trailing_logs)
        if core.log.offset > 0:
            await self.storage.compact(core.log.offset, core.log.offset_term)
        log.info(
            "snapshot %s written: index %d, %d bytes, %.2f s",
            info.id, info.index, info.size, time.monotonic() - started,
        )  # fmt: skip
        for listener in self.snapshot_listeners:
            try:
                listener(info)
            except Exception:
                log.exception("snapshot listener failed")
        return info

    def _read_snapshot(self, meta: SnapshotMeta, offset: int, size: int) -> bytes:
        info = self.snapshots.find(meta.index, meta.term)
        if info is None:
            raise LookupError(f"snapshot {meta.index} is gone")
        return self.snapshots.read(info.id, offset, size)

    def _apply(self, e: Entry) -> None:
        self.machine_index = e.index
        result: Any = None
        error: BaseException | None = None
        if e.kind is EntryKind.NORMAL and e.data:
            try:
                result = self.machine.apply(e)
            except Exception as exc:  # the machine reports errors per command
                error = exc
        w = self._waiters.pop(e.index, None)
        if w is None or w.future.done():
            return
        if w.term != e.term:
            w.future.set_exception(ProposalFailed("ERR leadership changed, write not applied"))
        elif error is not None:
            w.future.set_exception(error)
        else:
            w.future.set_result(result)

    def _role_changed(self, core: RaftCore, rd: Ready) -> None:
        ss = rd.soft_state
        assert ss is not None
        for listener in self.role_listeners:
            try:
                listener(ss.role.value)
            except Exception:
                log.exception("state-change hook failed")
        if ss.role is Role.LEADER:
            log.info("became leader (term %d)", ss.term)
        elif ss.role is Role.FOLLOWER and ss.leader:
            log.log(15, "following %s (term %d)", ss.leader, ss.term)
        # Proposals whose entry our log no longer holds were overwritten by a
        # new leader: they can never be committed (section 5.4), fail them now.
        lg = core.log
        for index, w in list(self._waiters.items()):
            if index > lg.last_index() or (index > lg.offset and lg.term(index) != w.term):
                del self._waiters[index]
                if not w.future.done():
                    w.future.set_exception(
                        ProposalFailed("ERR leadership changed, write not applied")
                    )

    def add_seed_peers(self, peers: dict[str, str]) -> None:
        """Addresses to use until our own log names the members: a joining node
        must be able to answer the leader before it has received any entry."""
        self._seeds.update({k: v for k, v in peers.items() if k != self.id})
        if self.core is not None:
            self._sync_peers()

    def _sync_peers(self) -> None:
        core = self.core
        assert core is not None
        self._config_index = core.confs.index
        if core.config.get(self.id) is not None:
            self._seeds.clear()  # we are a member: the configuration is complete
        peers = dict(self._seeds)
        peers.update({m.id: m.address for m in core.config.members if m.id != self.id})
        if peers != self._peers:
            self._peers = peers
            self.transport.set_peers(peers)

    def _fail_all(self, exc: Exception, *, writes: Exception | None = None) -> None:
        """Fail everything waiting: proposed writes with ``writes`` (or ``exc``)."""
        for w in self._waiters.values():
            if not w.future.done():
                w.future.set_exception(writes if writes is not None else exc)
        self._waiters.clear()
        for fut in self._reads.values():
            if not fut.done():
                fut.set_exception(exc)
        self._reads.clear()
        for _, f in self._applied_waiters:
            if not f.done():
                f.set_exception(exc)
        self._applied_waiters.clear()

    def _release_applied(self, applied: int) -> None:
        still = []
        for index, fut in self._applied_waiters:
            if applied >= index:
                if not fut.done():
                    fut.set_result(None)
            else:
                still.append((index, fut))
        self._applied_waiters = still

    # --- what front ends call ---------------------------------------------------------

    def _core(self) -> RaftCore:
        if self.core is None or self._stopping or self._failed is not None:
            raise ProposalFailed("ERR node is not running")
        return self.core

    def leader_address(self) -> str:
        """The address of the leader this node knows of, or ""."""
        core = self._core()
        if core.role is Role.LEADER:
            return self.options.advertise
        m = core.config.get(core.lead) if core.lead else None
        return m.address if m else ""

    def is_leader(self) -> bool:
        return self.core is not None and self.core.role is Role.LEADER

    async def _await(self, fut: asyncio.Future[Any], what: str) -> Any:
        try:
            return await asyncio.wait_for(asyncio.shield(fut), self.options.request_timeout)
        except TimeoutError:
            raise OutcomeUnknown(f"ERR timeout waiting for {what}") from None

    async def propose(self, data: bytes) -> Any:
        """Append ``data`` to the log; returns the machine's result once applied here."""
        core = self._core()
        try:
            index, term = core.propose(data)
            self.proposals += 1
        except NotLeader:
            raise NotLeaderError(self.leader_address()) from None
        except RaftError as e:
            raise ProposalFailed(f"ERR {e}") from None
        return await self._wait_index(index, term, "the write")

    async def _wait_index(self, index: int, term: int, what: str) -> Any:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters[index] = _Waiter(term, fut)
        self._wake.set()
        return await self._await(fut, what)

    async def barrier(self) -> int:
        """Commit and apply an empty entry (uhaha's BARRIER); returns its index."""
        core = self._core()
        try:
            index, term = core.propose(b"")
        except NotLeader:
            raise NotLeaderError(self.leader_address()) from None
        except RaftError as e:
            raise ProposalFailed(f"ERR {e}") from None
        await self._wait_index(index, term, "the barrier")
        return index

    async def read_barrier(self) -> int:
        """Wait until this node may serve a linearizable read (ReadIndex, thesis
        6.4): returns the index its state machine has applied up to. Works on
        followers too (they ask the leader)."""
        core = self._core()
        ctx = next(self._read_ids).to_bytes(8, "big")
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if not core.read_index(ctx):
            raise NotLeaderError("")
        self._reads[ctx] = fut
        self._wake.set()
        try:
            index: int = await self._await(fut, "a read index")
        finally:
            self._reads.pop(ctx, None)
        await self.wait_applied(index)
        return index

    async def wait_applied(self, index: int) -> None:
        core = self._core()
        if core.log.applied >= index:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._applied_waiters.append((index, fut))
        await self._await(fut, "the log to be applied")

    async def change_membership(self, change: ConfChange) -> int:
        """Propose a single-server membership change; returns once committed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.request_timeout
        while True:
            core = self._core()
            try:
                index, term = core.propose_conf_change(change)
                break
            except NotLeader:
                raise NotLeaderError(self.leader_address()) from None
            except ConfChangePending as e:
                # A new leader's first commit, or the previous change, is
                # still in flight: both finish shortly, so wait rather than
                # refuse an operator's command.
                if loop.time() > deadline:
                    raise ProposalFailed(f"ERR {e}") from None
                await self._next_apply(min(0.05, max(0.0, deadline - loop.time())))
            except RaftError as e:
                raise ProposalFailed(f"ERR {e}") from None
        await self._wait_index(index, term, "the membership change")
        return index

    async def _next_apply(self, timeout: float) -> None:
        """Wait until something more is applied, or ``timeout`` seconds."""
        core = self._core()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._applied_waiters.append((core.log.applied + 1, fut))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(fut), timeout)

    def transfer_leadership(self, target: str) -> None:
        core = self._core()
        try:
            core.transfer_leadership(target)
        except NotLeader:
            raise NotLeaderError(self.leader_address()) from None
        except RaftError as e:
            raise ProposalFailed(f"ERR {e}") from None
        self._wake.set()

    def best_transfer_target(self) -> str:
        """The most caught-up other voter (for RAFT TRANSFER without an id)."""
        core = self._core()
        best = ""
        best_match = -1
        for m in core.config.members:
            pr = core.progress.get(m.id)
            if m.voter and m.id != self.id and pr is not None and pr.match > best_match:
                best, best_match = m.id, pr.match
        return best

    def info(self) -> dict[str, Any]:
        """The facts RAFT INFO reports."""
        core = self._core()
        lg = core.log
        leader = self.leader_address()
        me = core.config.get(self.id)
        total = max(self.loaded_commit, lg.committed, 1)
        return {
            "id": self.id,
            "address": self.options.advertise,
            "state": core.role.value,
            "term": core.term,
            "leader_id": core.lead,
            "leader": leader,
            "voter": bool(me and me.voter),
            "member": me is not None,
            "first_index": lg.first_index(),
            "last_index": lg.last_index(),
            "last_term": lg.last_term(),
            "commit_index": lg.committed,
            "applied_index": lg.applied,
            "logs_behind": max(0, lg.committed - lg.applied),
            "logs_loaded_percent": 100 if self.logs_loaded else min(100, lg.applied * 100 // total),
            "snapshot_index": lg.snapshot.index if lg.snapshot else 0,
            "receiving_snapshot_percent": (
                self._receiver.received * 100 // max(self._receiver.meta.size, 1)
                if self._receiver is not None
                else 100
            ),
            "num_peers": len(core.config.members) - (1 if me else 0),
            "num_voters": len(core.config.voters()),
            "uptime_s": round(time.time() - self.started_at, 3),
            "loop_lag_max_ms": round(self.loop_lag_max * 1000, 1),
        }

    def members(self) -> list[Member]:
        return list(self._core().config.members)


def _log_snapshot_failure(task: asyncio.Task[SnapshotInfo]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("snapshot failed: %s", task.exception())
