"""Prometheus metrics of one node, served at ``GET /metrics``.

Each node has a registry of its own (never prometheus-client's global one:
tests and embedding programs run several nodes in one process). Most of what
it reports is read at scrape time by :class:`_NodeCollector` from the node's
own state (``Node.info()``, the transport's per-peer counters, the front
door's connections), so it costs nothing between scrapes. The rest are a
few histograms updated once per batch, never once per command:

- ``uhaha_storage_save_seconds``: once per Ready written (the append and its fsync),
- ``uhaha_apply_seconds``: once per applied log entry (an entry carries up to 256 writes),
- ``uhaha_peer_heartbeat_seconds``: once per heartbeat answered by a peer,
- ``uhaha_snapshot_seconds``: once per snapshot written or restored.

They are measured by thin wrappers around the storage, the state machine
and the transport (:meth:`NodeMetrics.storage`, :meth:`NodeMetrics.machine`,
:meth:`NodeMetrics.transport`), so the node itself knows nothing of
Prometheus. The metric names are listed in :data:`FAMILIES`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from time import perf_counter
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .frontdoor import FrontDoor
from .node import Machine, Node, ProposalFailed
from .raft import Entry, HardState, Heartbeat, HeartbeatResponse, Message, Role
from .storage import (
    LoadedState,
    LoadProgress,
    SnapshotHeader,
    SnapshotInfo,
    SnapshotStore,
    Storage,
)
from .transport.base import Deliver, PeerStats, Transport

__all__ = ["CONTENT_TYPE", "FAMILIES", "NodeMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The media type of :meth:`NodeMetrics.render` (Prometheus text format 0.0.4)."""

FAMILIES = (
    "uhaha_info",
    "uhaha_up",
    "uhaha_raft_state",
    "uhaha_raft_term",
    "uhaha_raft_first_index",
    "uhaha_raft_last_index",
    "uhaha_raft_commit_index",
    "uhaha_raft_applied_index",
    "uhaha_raft_snapshot_index",
    "uhaha_raft_voter",
    "uhaha_raft_members",
    "uhaha_raft_voters",
    "uhaha_raft_logs_loaded",
    "uhaha_raft_proposals",
    "uhaha_raft_commits",
    "uhaha_loop_lag_max_seconds",
    "uhaha_apply_seconds",
    "uhaha_storage_save_seconds",
    "uhaha_snapshot_seconds",
    "uhaha_peer_heartbeat_seconds",
    "uhaha_peer_connected",
    "uhaha_peer_messages_sent",
    "uhaha_peer_messages_dropped",
    "uhaha_peer_errors",
    "uhaha_peer_queued_messages",
    "uhaha_connections",
    "uhaha_connections_accepted",
)
"""Every uhaha metric family (counters are exposed with a ``_total`` suffix,
histograms as ``_bucket``, ``_sum`` and ``_count``), besides the standard
``process_*``, ``python_gc_*`` and ``python_info`` families."""

# Seconds. Applying one entry is microseconds to milliseconds; a save is one
# fsync (sub-millisecond to tens of milliseconds on a slow disk); a heartbeat
# round trip is a loopback or LAN hop plus the peer's loop; a snapshot of a
# large state takes seconds to minutes.
_APPLY_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.1)
_SAVE_BUCKETS = (1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_RTT_BUCKETS = (2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_SNAPSHOT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

_MAX_HEARTBEATS = 64
"""Heartbeats remembered per peer while their answers are outstanding."""


class NodeMetrics:
    """The metrics of one node: a registry, its histograms, and the wrappers
    that feed them. Give it the node and the front door once they exist
    (:meth:`attach`); until then it reports only what it has measured."""

    def __init__(self, *, app: str = "uhaha", version: str = "", tls: bool = False) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.node: Node | None = None
        self.door: FrontDoor | None = None
        self.app = app
        self.version = version
        self.tls = tls
        reg = self.registry
        self.apply_seconds = Histogram(
            "uhaha_apply_seconds",
            "Time the state machine took to apply one committed log entry (a batch of writes).",
            buckets=_APPLY_BUCKETS,
            registry=reg,
        )
        self.save_seconds = Histogram(
            "uhaha_storage_save_seconds",
            "Time to append entries and the hard state to the log, including the fsync.",
            buckets=_SAVE_BUCKETS,
            registry=reg,
        )
        self.snapshot_seconds = Histogram(
            "uhaha_snapshot_seconds",
            "Time to write a snapshot of the state (write) or load one into it (restore).",
            ["operation"],
            buckets=_SNAPSHOT_BUCKETS,
            registry=reg,
        )
        self.heartbeat_seconds = Histogram(
            "uhaha_peer_heartbeat_seconds",
            "Round trip of a leader's heartbeat to a peer and its answer (leader only).",
            ["peer"],
            buckets=_RTT_BUCKETS,
            registry=reg,
        )
        self._heartbeats: dict[str, dict[int, float]] = {}
        self._rtt: dict[str, Callable[[float], None]] = {}
        reg.register(_NodeCollector(self))
        ProcessCollector(registry=reg)
        PlatformCollector(registry=reg)
        GCCollector(registry=reg)

    def attach(self, node: Node, door: FrontDoor | None = None) -> None:
        """Start reporting ``node``'s state (and ``door``'s connections)."""
        self.node = node
        self.door = door
        written = self.snapshot_seconds.labels("write").observe

        def snapshot_written(info: SnapshotInfo) -> None:
            written(node.last_snapshot_seconds)

        node.snapshot_listeners.append(snapshot_written)

    def render(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)

    # --- wrappers ------------------------------------------------------------------

    def storage(self, inner: Storage) -> Storage:
        """``inner``, with each :meth:`~Storage.save` timed."""
        return _TimedStorage(inner, self.save_seconds.observe)

    def machine(self, inner: Machine) -> Machine:
        """``inner``, with each applied entry and each restore timed."""
        return _TimedMachine(inner, self.apply_seconds.observe, self.snapshot_seconds)

    def deliver(self, inner: Deliver) -> Deliver:
        """``inner`` (the node's ``deliver``), noticing heartbeat answers."""
        pending = self._heartbeats

        def deliver(msg: Message) -> None:
            if type(msg) is HeartbeatResponse:
                self._answered(msg, pending.get(msg.frm))
            inner(msg)

        return deliver

    def transport(self, inner: Transport) -> Transport:
        """``inner``, noting when each heartbeat is sent."""
        return _TimedTransport(inner, self._heartbeats)

    def _answered(self, msg: HeartbeatResponse, sent: dict[int, float] | None) -> None:
        if not sent:
            return
        started = sent.pop(msg.seq, None)
        if started is None:
            return
        # Older heartbeats still unanswered were lost (the stream keeps order).
        for seq in [s for s in sent if s < msg.seq]:
            del sent[seq]
        observe = self._rtt.get(msg.frm)
        if observe is None:
            observe = self._rtt[msg.frm] = self.heartbeat_seconds.labels(msg.frm).observe
        observe(perf_counter() - started)


class _TimedStorage:
    """A :class:`Storage` that times :meth:`save`; everything else goes straight through."""

    def __init__(self, inner: Storage, observe: Callable[[float], None]) -> None:
        self.inner = inner
        self._observe = observe

    async def save(self, hard_state: HardState | None, entries: Sequence[Entry]) -> None:
        started = perf_counter()
        await self.inner.save(hard_state, entries)
        self._observe(perf_counter() - started)

    async def load(self, progress: LoadProgress | None = None) -> LoadedState:
        return await self.inner.load(progress)

    async def close(self) -> None:
        await self.inner.close()

    async def first_index(self) -> int:
        return await self.inner.first_index()

    async def last_index(self) -> int:
        return await self.inner.last_index()

    async def get_entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        return await self.inner.get_entries(lo, hi, max_bytes)

    async def append(self, entries: Sequence[Entry]) -> None:
        await self.inner.append(entries)

    async def truncate_suffix(self, index: int) -> None:
        await self.inner.truncate_suffix(index)

    async def compact(self, index: int, term: int | None = None) -> None:
        await self.inner.compact(index, term)

    async def get_hard_state(self) -> HardState:
        return await self.inner.get_hard_state()

    async def set_hard_state(self, hard_state: HardState) -> None:
        await self.inner.set_hard_state(hard_state)

    async def get_meta(self, key: str) -> bytes | None:
        return await self.inner.get_meta(key)

    async def set_meta(self, key: str, value: bytes) -> None:
        await self.inner.set_meta(key, value)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)  # whatever else the storage offers


class _TimedMachine:
    """A node :class:`Machine` whose applies and restores are timed."""

    def __init__(
        self, inner: Machine, observe: Callable[[float], None], snapshots: Histogram
    ) -> None:
        self.inner = inner
        self._observe = observe
        self._restored = snapshots.labels("restore").observe

    def apply(self, entry: Entry) -> Any:
        started = perf_counter()
        try:
            return self.inner.apply(entry)
        finally:
            self._observe(perf_counter() - started)

    def restore(self, store: SnapshotStore, snapshot_id: str) -> None:
        started = perf_counter()
        self.inner.restore(store, snapshot_id)
        self._restored(perf_counter() - started)

    def dump(self) -> tuple[SnapshotHeader, bytes]:
        return self.inner.dump()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _TimedTransport:
    """A :class:`Transport` that notes the time each heartbeat leaves."""

    def __init__(self, inner: Transport, pending: dict[str, dict[int, float]]) -> None:
        self.inner = inner
        self._pending = pending

    def send(self, msgs: Iterable[Message]) -> None:
        if not isinstance(msgs, list | tuple):
            msgs = list(msgs)
        now = 0.0
        for msg in msgs:
            if type(msg) is Heartbeat:
                now = now or perf_counter()
                sent = self._pending.get(msg.to)
                if sent is None:
                    sent = self._pending[msg.to] = {}
                elif len(sent) >= _MAX_HEARTBEATS:
                    del sent[next(iter(sent))]  # the oldest: its answer is not coming
                sent[msg.seq] = now
        self.inner.send(msgs)

    def set_peers(self, peers: Mapping[str, str]) -> None:
        for gone in set(self._pending) - set(peers):
            del self._pending[gone]
        self.inner.set_peers(peers)

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    def stats(self) -> dict[str, PeerStats]:
        return self.inner.stats()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _loop_name() -> str:
    """``uvloop`` or ``asyncio``: whose event loop runs this node."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return ""
    return type(loop).__module__.partition(".")[0]


class _NodeCollector(Collector):
    """Reads the node's state at scrape time."""

    def __init__(self, metrics: NodeMetrics) -> None:
        self._m = metrics

    def describe(self) -> Iterable[Metric]:
        return []  # families depend on the node's state: no up-front description

    def collect(self) -> Iterable[Metric]:
        m = self._m
        info = GaugeMetricFamily(
            "uhaha_info",
            "The application and node this is, and its event loop (always 1).",
            labels=["app", "version", "id", "loop"],
        )
        node = m.node
        info.add_metric([m.app, m.version, node.id if node is not None else "", _loop_name()], 1)
        yield info
        yield from _connections(m.door, m.tls)
        try:
            facts = node.info() if node is not None else None
        except ProposalFailed:  # not running (starting, stopping or stopped)
            facts = None
        yield GaugeMetricFamily(
            "uhaha_up", "1 while the node runs its Raft loop, else 0.", value=int(facts is not None)
        )
        if node is None or facts is None:
            return
        yield from _raft(node, facts)
        yield from _peers(node.transport.stats())


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _raft(node: Node, facts: dict[str, Any]) -> Iterable[Metric]:
    state = GaugeMetricFamily(
        "uhaha_raft_state", "1 for this node's Raft role, 0 for the others.", labels=["state"]
    )
    for role in Role:
        state.add_metric([role.value], int(facts["state"] == role.value))
    yield state
    yield _gauge("uhaha_raft_term", "The current term.", facts["term"])
    for key in ("first_index", "last_index", "commit_index", "applied_index", "snapshot_index"):
        what = key.replace("_index", "")
        yield _gauge(f"uhaha_raft_{key}", f"The {what} index of this node's log.", facts[key])
    yield _gauge("uhaha_raft_voter", "1 if this node is a voting member.", int(facts["voter"]))
    yield _gauge(
        "uhaha_raft_members", "Servers in the cluster's configuration.", facts["num_peers"] + 1
    )
    yield _gauge("uhaha_raft_voters", "Voting servers in the configuration.", facts["num_voters"])
    yield _gauge(
        "uhaha_raft_logs_loaded",
        "1 once this node has applied the log it started with (ready for commands).",
        int(node.logs_loaded),
    )
    yield CounterMetricFamily(
        "uhaha_raft_proposals",
        "Log entries this node proposed as leader (write batches, ticks).",
        value=node.proposals,
    )
    yield CounterMetricFamily(
        "uhaha_raft_commits",
        "Log entries this node learned were committed since it started.",
        value=max(0, facts["commit_index"] - node.loaded_commit),
    )
    yield _gauge(
        "uhaha_loop_lag_max_seconds",
        "The longest the event loop ran late for a timer since the node started.",
        node.loop_lag_max,
    )


def _peers(stats: Mapping[str, PeerStats]) -> Iterable[Metric]:
    connected = GaugeMetricFamily(
        "uhaha_peer_connected", "1 while the stream to the peer is up.", labels=["peer"]
    )
    sent = CounterMetricFamily(
        "uhaha_peer_messages_sent", "Raft messages handed to the network.", labels=["peer"]
    )
    dropped = CounterMetricFamily(
        "uhaha_peer_messages_dropped",
        "Raft messages discarded (queue full, link down or replaced).",
        labels=["peer"],
    )
    errors = CounterMetricFamily(
        "uhaha_peer_errors",
        "Failed connections, broken streams and failed requests to the peer.",
        labels=["peer"],
    )
    queued = GaugeMetricFamily(
        "uhaha_peer_queued_messages", "Raft messages waiting to be sent.", labels=["peer"]
    )
    for peer in sorted(stats):
        s = stats[peer]
        connected.add_metric([peer], int(s.connected))
        sent.add_metric([peer], s.sent)
        dropped.add_metric([peer], s.dropped)
        errors.add_metric([peer], s.errors)
        queued.add_metric([peer], s.queued)
    yield from (connected, sent, dropped, errors, queued)


def _connections(door: FrontDoor | None, tls: bool) -> Iterable[Metric]:
    if door is None:
        return
    flag = "true" if tls else "false"
    now = GaugeMetricFamily(
        "uhaha_connections",
        "Client connections open on the node's port, by protocol (pending: not yet known).",
        labels=["protocol", "tls"],
    )
    for protocol, count in sorted(door.open_connections().items()):
        now.add_metric([protocol, flag], count)
    yield now
    accepted = CounterMetricFamily(
        "uhaha_connections_accepted",
        "Connections handed to each protocol since the node started.",
        labels=["protocol", "tls"],
    )
    for protocol, count in sorted(door.accepted.items()):
        accepted.add_metric([protocol, flag], count)
    yield accepted
