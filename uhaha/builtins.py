"""The built-in commands every uhaha node answers (uhaha's README, "Built-in Commands").

Each takes the node and the arguments after the command name (as ``str``)
and returns a plain Python value (or raises :class:`~uhaha.errors.CommandError`);
the front ends encode it. Commands that only the leader can run answer
``MOVED 0 <leader>`` elsewhere, so ``redis-cli -c`` and cluster-aware
clients follow them to the leader.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .errors import (
    ClusterDown,
    CommandError,
    Moved,
    NotRunning,
    OutcomeUnknownError,
    syntax_error,
    wrong_args,
)
from .names import check_name, split_address
from .node import Node, NotLeaderError, OutcomeUnknown, ProposalFailed
from .raft import ConfChange, ConfChangeOp
from .storage import SnapshotInfo, SnapshotNotFoundError, StorageError

__all__ = ["OK", "Builtins"]


class _Ok(str):
    """A status reply (RESP ``+OK``), not a bulk string: return ``uhaha.OK``."""


OK = _Ok("OK")

RAFT_HELP = [
    "RAFT LEADER                             # show the address of the current raft leader",
    "RAFT INFO [pattern ...]                 # show information about the raft server and cluster",
    "RAFT SERVER LIST                        # show all servers in cluster",
    "RAFT SERVER ADD id address [NONVOTER]   # add a server to cluster",
    "RAFT SERVER REMOVE id                   # remove a server from the cluster",
    "RAFT SERVER PROMOTE id                  # make a non-voter a voter",
    "RAFT SERVER DEMOTE id                   # make a voter a non-voter",
    "RAFT TRANSFER [id]                      # hand leadership to another voter",
    "RAFT SNAPSHOT NOW                       # make a snapshot of the data",
    "RAFT SNAPSHOT LIST                      # show a list of all snapshots on server",
    "RAFT SNAPSHOT FILE id                   # show the file path of a snapshot on server",
    "RAFT SNAPSHOT READ id [RANGE start end] # download all or part of a snapshot",
    "RAFT HELP                               # show this help",
]

CLUSTER_HELP = [
    "CLUSTER INFO                            # cluster state, for cluster-aware clients",
    "CLUSTER NODES                           # the servers, in Redis Cluster's format",
    "CLUSTER SLOTS                           # all slots are served by the leader",
    "CLUSTER HELP                            # show this help",
]


def _human_time(ns: int) -> str:
    if not ns:
        return "-"
    when = datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC)
    return f"{when:%Y-%m-%dT%H:%M:%S}.{ns % 1_000_000_000:09d}Z"


MAX_READ = 64 << 20
"""Largest RAFT SNAPSHOT READ answer; bigger files are read in RANGEs."""


def snapshot_json(info: SnapshotInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "index": info.index,
        "term": info.term,
        "size": info.size,
        "timestamp": info.timestamp,
    }


@dataclass
class Builtins:
    node: Node
    version: str = "0.0.0"
    try_errors: bool = False
    machine: Any = None
    """The application's machine, for MACHINE (None: built-ins only)."""

    # --- helpers ---------------------------------------------------------------

    def moved(self) -> CommandError:
        """Where to go instead: MOVED to the leader, or CLUSTERDOWN without one."""
        try:
            leader = self.node.leader_address()
        except ProposalFailed as e:  # starting or stopping: not a server error
            return NotRunning(str(e))
        if not leader:
            return ClusterDown()
        return Moved(leader, self.try_errors)

    def node_error(self, exc: NotLeaderError | ProposalFailed | OutcomeUnknown) -> CommandError:
        """The error reply for a refusal of the node."""
        if isinstance(exc, NotLeaderError):
            return self.moved()
        if isinstance(exc, OutcomeUnknown):
            return OutcomeUnknownError(str(exc))
        return CommandError(str(exc))

    async def on_leader(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``fn`` (which must be leader-only) mapping the node's refusals."""
        if not self.node.is_leader():
            raise self.moved()
        try:
            return await fn()
        except (NotLeaderError, ProposalFailed, OutcomeUnknown) as e:
            raise self.node_error(e) from None

    def table(self) -> dict[str, Callable[[list[str]], Any]]:
        return {
            "ping": self.ping,
            "echo": self.echo,
            "version": self.cmd_version,
            "barrier": self.barrier,
            "machine": self.cmd_machine,
            "raft": self.raft,
            "cluster": self.cluster,
        }

    # --- client commands ----------------------------------------------------------

    def ping(self, args: list[str]) -> Any:
        if len(args) > 1:
            raise wrong_args()
        return args[0] if args else _Ok("PONG")

    def echo(self, args: list[str]) -> Any:
        if len(args) != 1:
            raise wrong_args()
        return args[0]

    def cmd_version(self, args: list[str]) -> Any:
        if args:
            raise wrong_args()
        return self.version

    def cmd_machine(self, args: list[str]) -> Any:
        """MACHINE [HUMAN]: the replicated clock of the state machine on this node."""
        if len(args) > 1 or (args and args[0].lower() != "human"):
            raise syntax_error() if args else wrong_args()
        m = self.machine
        info = self.node.info()
        out: dict[str, Any] = {
            "now": m.ts if m is not None else 0,
            "start": m.start if m is not None else 0,
            "applied_index": info["applied_index"],
        }
        if args:
            out["now"] = _human_time(out["now"])
            out["start"] = _human_time(out["start"])
        return out

    async def barrier(self, args: list[str]) -> Any:
        """Commit a no-op entry: everything before it is applied on the leader."""
        if args:
            raise wrong_args()
        await self.on_leader(self.node.barrier)
        return OK

    # --- RAFT ------------------------------------------------------------------------

    async def raft(self, args: list[str]) -> Any:
        if not args:
            raise wrong_args()
        sub = args[0].lower()
        rest = args[1:]
        if sub == "leader":
            if rest:
                raise wrong_args()
            leader = self.node.leader_address()
            if not leader:
                raise CommandError("ERR leader not known")
            return leader
        if sub == "info":
            return self.raft_info(rest)
        if sub == "server":
            return await self.raft_server(rest)
        if sub == "transfer":
            return await self.raft_transfer(rest)
        if sub == "snapshot":
            return await self.raft_snapshot(rest)
        if sub == "help":
            return RAFT_HELP
        raise syntax_error()

    def raft_info(self, patterns: list[str]) -> dict[str, Any]:
        info = self.node.info()
        if not patterns:
            return info
        return {k: v for k, v in info.items() if any(fnmatch.fnmatchcase(k, p) for p in patterns)}

    async def raft_server(self, args: list[str]) -> Any:
        if not args:
            raise wrong_args()
        sub = args[0].lower()
        if sub == "list":
            if len(args) != 1:
                raise wrong_args()
            leader = self.node.leader_address()
            return [
                {"id": m.id, "address": m.address, "leader": m.address == leader, "voter": m.voter}
                for m in self.node.members()
            ]
        if sub == "add":
            if len(args) not in (3, 4):
                raise wrong_args()
            op = ConfChangeOp.ADD_VOTER
            if len(args) == 4:
                if args[3].lower() != "nonvoter":
                    raise syntax_error()
                op = ConfChangeOp.ADD_NONVOTER
            _check_member(args[1], args[2])
            change = ConfChange(op, args[1], args[2])
        elif sub in ("remove", "promote", "demote"):
            if len(args) != 2:
                raise wrong_args()
            op = {
                "remove": ConfChangeOp.REMOVE,
                "promote": ConfChangeOp.PROMOTE,
                "demote": ConfChangeOp.DEMOTE,
            }[sub]
            change = ConfChange(op, args[1])
        else:
            raise syntax_error()

        async def run() -> Any:
            return await self.node.change_membership(change)

        await self.on_leader(run)
        return OK

    async def raft_snapshot(self, args: list[str]) -> Any:
        """RAFT SNAPSHOT NOW|LIST|FILE id|READ id [RANGE start end] (this node's)."""
        if not args:
            raise wrong_args()
        sub = args[0].lower()
        store = self.node.snapshots
        if sub == "now":
            if len(args) != 1:
                raise wrong_args()
            try:
                info = await self.node.take_snapshot()
            except (StorageError, ProposalFailed) as e:
                raise CommandError(f"ERR snapshot failed: {e}") from None
            return info.id
        if sub == "list":
            if len(args) != 1:
                raise wrong_args()
            return [snapshot_json(info) for info in store.list()]
        if sub == "file":
            if len(args) != 2:
                raise wrong_args()
            return str(self._path(args[1]).resolve())
        if sub == "read":
            return self._read(args[1:])
        raise syntax_error()

    def _path(self, snapshot_id: str) -> Any:
        try:
            return self.node.snapshots.path(snapshot_id)
        except SnapshotNotFoundError:
            raise CommandError("ERR snapshot not found") from None

    def _read(self, args: list[str]) -> bytes:
        if len(args) not in (1, 4):
            raise wrong_args()
        path = self._path(args[0])
        size = path.stat().st_size
        start, end = 0, size
        if len(args) == 4:
            if args[1].lower() != "range":
                raise syntax_error()
            try:
                start, end = int(args[2]), int(args[3])
            except ValueError:
                raise CommandError("ERR invalid range") from None
            if start < 0 or end < start:
                raise CommandError("ERR invalid range")
            end = min(end, size)
            start = min(start, end)
        if end - start > MAX_READ:
            raise CommandError(
                f"ERR the snapshot is larger than {MAX_READ} bytes: read it with RANGE start end"
            )
        return self.node.snapshots.read(args[0], start, end - start)

    async def raft_transfer(self, args: list[str]) -> Any:
        if len(args) > 1:
            raise wrong_args()
        node = self.node

        async def run() -> Any:
            target = args[0] if args else node.best_transfer_target()
            if not target:
                raise CommandError("ERR no other voter to transfer leadership to")
            node.transfer_leadership(target)
            return None

        await self.on_leader(run)
        return OK

    # --- CLUSTER (for cluster-aware Redis clients) ---------------------------------------

    def cluster(self, args: list[str]) -> Any:
        if not args:
            raise wrong_args()
        sub = args[0].lower()
        if len(args) != 1:
            raise wrong_args()
        members = self.node.members()
        leader = self.node.leader_address()
        if sub == "info":
            state = "ok" if leader else "fail"
            return (
                f"cluster_state:{state}\r\ncluster_slots_assigned:16384\r\n"
                f"cluster_slots_ok:{16384 if leader else 0}\r\ncluster_slots_pfail:0\r\n"
                f"cluster_slots_fail:0\r\ncluster_known_nodes:{len(members)}\r\n"
                f"cluster_size:1\r\n"
            )
        if sub == "slots":
            if not leader:
                raise ClusterDown()
            entry: list[Any] = [0, 16383]
            ordered = sorted(members, key=lambda m: m.address != leader)
            for m in ordered:
                host, _, port = m.address.rpartition(":")
                entry.append([host, int(port), m.id])
            return [entry]
        if sub == "nodes":
            lines = []
            for m in members:
                role = "master" if m.address == leader else "slave"
                slots = " 0-16383" if m.address == leader else ""
                lines.append(
                    f"{m.id} {m.address}@{m.address.rpartition(':')[2]} {role} - 0 0 1 "
                    f"connected{slots}"
                )
            return "\n".join(lines) + "\n"
        if sub == "help":
            return CLUSTER_HELP
        raise syntax_error()


def _check_member(node_id: str, address: str) -> None:
    """A new member's id and address as its own command line would need them:
    a bad one would reach every server's log and peer table."""
    try:
        check_name("node id", node_id)
        split_address(address, default_host=None)
    except ValueError as e:
        raise CommandError(f"ERR {e}") from None
