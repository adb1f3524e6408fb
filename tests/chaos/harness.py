"""Real node processes, one per network namespace, for the chaos runs.

A :class:`ChaosCluster` starts every node through the real command line of an
example program (``python examples/kvdb.py -n 3 -a 10.214.0.3:11001 -d ... -j
...``) inside its own namespace of a :class:`~tests.chaos.netfault.ChaosNet`,
owns the ``Popen`` objects and signals them by PID (SIGKILL, SIGSTOP/SIGCONT,
SIGTERM), and talks to the nodes with redis-py from the clients' namespace
(the caller must be inside :meth:`ChaosNet.clients`). Node ids and host
numbers are never reused: a node added after a removal is a fresh node with a
new id, a new address and an empty data directory.

Waits poll with a deadline; nothing here sleeps to wait for a condition.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .netfault import PORT, ChaosNet

__all__ = [
    "APPS",
    "CONNECTION",
    "ROOT",
    "ChaosCluster",
    "ClusterError",
    "Node",
    "as_dict",
    "poll",
    "resp_call",
]

ROOT = Path(__file__).resolve().parents[2]
APPS = {"kv": "examples/kvdb.py", "ticket": "examples/ticket.py"}
"""The example program each workload drives."""

T = TypeVar("T")

CONNECTION: Any = redis.Connection
"""redis-py's single connection (its methods carry no annotations)."""


class ClusterError(RuntimeError):
    """The cluster did not do something in time (e.g. elect a leader)."""


def poll(cond: Callable[[], T | None], timeout: float, what: str, every: float = 0.05) -> T:
    """Call ``cond`` until it returns something other than None/False; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = cond()
            if value is not None and value is not False:
                return value
        except (redis.RedisError, OSError) as e:
            last = e
        if time.monotonic() >= deadline:
            raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what} ({last})")
        time.sleep(every)


def resp_call(address: str, *args: str, timeout: float = 2.0) -> Any:
    """One command on a fresh redis-py connection (no retries); error replies raise."""
    host, port = address.rsplit(":", 1)
    conn = CONNECTION(
        host=host,
        port=int(port),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )
    try:
        conn.send_command(*args)
        return conn.read_response()
    finally:
        conn.disconnect()


def _proc_state(pid: int) -> str:
    """``pid: state wchan threads=[state/wchan of each thread]`` from /proc."""
    proc = Path(f"/proc/{pid}")
    try:
        status = (proc / "status").read_text().splitlines()
        state = next(line.split(":", 1)[1].strip() for line in status if line.startswith("State:"))
        threads = []
        for task in sorted((proc / "task").iterdir()):
            task_state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
            threads.append(f"{task_state}/{(task / 'wchan').read_text()}")
        wchan = (proc / "wchan").read_text()
    except (OSError, StopIteration) as e:
        return f"{pid}: {e}"
    return f"{pid}: {state} wchan={wchan} threads={threads}"


def as_dict(raw: Any) -> dict[str, Any]:
    """A RESP3 map, or its RESP2 form (a flat list), as a dict."""
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, list):
        return dict(zip(raw[::2], raw[1::2], strict=True))
    raise TypeError(f"not a map: {raw!r}")


@dataclass
class Node:
    node_id: int
    host: int
    address: str
    data_dir: Path
    log_path: Path
    args: list[str]
    popen: subprocess.Popen[bytes] | None = None
    paused: bool = False
    expected_exit: bool = False
    """Set when the harness stopped it: an exit without it is a crash."""

    def start(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with self.log_path.open("ab") as log:
            log.write(f"=== start {time.strftime('%H:%M:%S')}: {' '.join(self.args)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                self.args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        self.paused = False
        self.expected_exit = False

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def send(self, sig: signal.Signals) -> None:
        if self.alive:
            assert self.popen is not None
            self.popen.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL (works on a stopped process too), then reap it."""
        self.expected_exit = True
        if self.popen is not None:
            self.send(signal.SIGKILL)
            self.popen.wait(20)
        self.paused = False

    def pause(self) -> None:
        self.send(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.send(signal.SIGCONT)
        self.paused = False

    def terminate(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait; SIGKILL if it has not exited after ``timeout`` s."""
        if self.popen is None:
            return None
        self.expected_exit = True
        self.resume()
        self.send(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None


class ChaosCluster:
    """The nodes of one run. ``members`` is what the harness made the membership."""

    def __init__(self, net: ChaosNet, workdir: Path, app: str, extra: list[str] | None = None):
        self.net = net
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.app = app
        self.extra = extra or []
        self.nodes: dict[int, Node] = {}
        self.members: list[int] = []
        self.crashes: list[str] = []
        """Members that exited without the harness stopping them."""
        self._next_id = 1

    # --- processes -------------------------------------------------------------------

    def _new_node(self, join: str | None) -> Node:
        node_id = self._next_id
        self._next_id += 1
        host = node_id  # ids and hosts are never reused, so they can be the same number
        self.net.add_host(host)
        address = f"{self.net.ip_of(host)}:{PORT}"
        data = self.workdir / f"data-{node_id}"
        args = [*self.net.exec_args(host), sys.executable, APPS[self.app]]
        args += ["-n", str(node_id), "-a", address, "-d", str(data), "--localtime", *self.extra]
        if join:
            args += ["-j", join]
        node = Node(node_id, host, address, data, self.workdir / f"node-{node_id}.log", args)
        self.nodes[node_id] = node
        return node

    def start(self, n: int, timeout: float = 60.0) -> None:
        """Node 1 alone, then nodes 2..n joining it; returns once all are members."""
        first = self._new_node(None)
        first.start()
        self.members = [first.node_id]
        self.wait_leader(timeout)
        for _ in range(n - 1):
            node = self._new_node(first.address)
            node.start()
            self.members.append(node.node_id)
        self.wait_members(timeout)

    def add_fresh(self, timeout: float = 30.0) -> Node:
        """Start a new node that joins through a current member; wait until it is one."""
        via = self.nodes[self.members[0]].address
        node = self._new_node(via)
        node.start()
        self.members.append(node.node_id)
        self.wait_members(timeout)
        return node

    def restart(self, node_id: int) -> None:
        self.check_exits()
        node = self.nodes[node_id]
        if node.alive:
            raise ClusterError(f"node {node_id} is still running")
        node.start()

    def check_exits(self) -> list[str]:
        """Note (once each) members that exited on their own: a crash of the framework."""
        found = []
        for i in self.members:
            node = self.nodes[i]
            if node.popen is not None and not node.alive and not node.expected_exit:
                node.expected_exit = True  # reported now
                found.append(f"node {i} exited on its own with status {node.popen.returncode}")
        self.crashes += found
        return found

    def crash_all(self) -> list[int]:
        """SIGKILL every running node at once (before reaping any); their ids."""
        running = [n for n in self.nodes.values() if n.alive]
        for n in running:
            n.expected_exit = True
        for n in running:
            n.send(signal.SIGKILL)
        for n in running:
            n.kill()
        return [n.node_id for n in running]

    def close(self) -> None:
        for node in self.nodes.values():
            # On a timeout ChaosNet.close kills what is left in the namespaces.
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.kill()

    # --- asking the nodes ------------------------------------------------------------

    def addresses(self) -> list[str]:
        return [self.nodes[i].address for i in self.members]

    def call(self, node_id: int, *args: str, timeout: float = 2.0) -> Any:
        return resp_call(self.nodes[node_id].address, *args, timeout=timeout)

    def info(self, node_id: int, timeout: float = 1.0) -> dict[str, Any]:
        return as_dict(self.call(node_id, "RAFT", "INFO", timeout=timeout))

    def reachable(self) -> list[int]:
        """Members that are running and not paused."""
        return [i for i in self.members if self.nodes[i].alive and not self.nodes[i].paused]

    def claimed_leader(self) -> int | None:
        """The member that says it leads in the highest term (a deposed leader that
        has not noticed yet may still claim an older term)."""
        best: tuple[int, int] | None = None
        for i in self.reachable():
            try:
                info = self.info(i, timeout=0.5)
            except (redis.RedisError, OSError):
                continue
            if info.get("state") == "leader":
                term = int(info.get("term", 0))
                if best is None or term > best[0]:
                    best = (term, i)
        return best[1] if best else None

    def agreed_leader(self) -> int | None:
        """The leader every reachable member names, if they all agree."""
        ids: set[str] = set()
        live = self.reachable()
        if not live:
            return None
        for i in live:
            info = self.info(i, timeout=1.0)
            ids.add(str(info.get("leader_id") or ""))
        if len(ids) != 1:
            return None
        (lead,) = ids
        if not lead.isdigit() or int(lead) not in live:
            return None
        return int(lead)

    def wait_leader(self, timeout: float = 30.0) -> int:
        return poll(self.agreed_leader, timeout, "a leader all members agree on")

    def member_ids(self, via: int) -> list[int]:
        raw = self.call(via, "RAFT", "SERVER", "LIST")
        return sorted(int(as_dict(m)["id"]) for m in raw)

    def wait_members(self, timeout: float = 30.0) -> None:
        want = sorted(self.members)

        def done() -> bool:
            lead = self.agreed_leader()
            return lead is not None and self.member_ids(lead) == want

        poll(done, timeout, f"members {want}")

    def remove(self, node_id: int, timeout: float = 20.0) -> None:
        """``RAFT SERVER REMOVE id`` on the leader (following MOVED), until it is gone."""

        def removed() -> bool:
            lead = self.claimed_leader()
            if lead is None:
                return False
            if node_id not in self.member_ids(lead):
                return True
            try:
                self.call(lead, "RAFT", "SERVER", "REMOVE", str(node_id), timeout=10.0)
            except redis.ResponseError:
                return False  # MOVED, CLUSTERDOWN, a change still pending: ask again
            return False

        poll(removed, timeout, f"node {node_id} removed", every=0.2)
        self.members.remove(node_id)

    def diagnose(self) -> str:
        """Each node's process state (``/proc``) and what else runs in its namespace."""
        lines = []
        for i, node in sorted(self.nodes.items()):
            pid = node.pid
            member = i in self.members
            lines.append(f"node {i} pid={pid} alive={node.alive} paused={node.paused} {member=}")
            if pid is None or not node.alive:
                continue
            try:
                ns_pids = self.net.pids(node.host)
            except RuntimeError as e:
                ns_pids = []
                lines.append(f"  (pids: {e})")
            for p in ns_pids:
                lines.append(f"  {_proc_state(p)}")
            try:
                lines.append(f"  RAFT INFO: {self.info(i, timeout=3.0)}")
            except (redis.RedisError, OSError) as e:
                lines.append(f"  RAFT INFO: {type(e).__name__}: {e}")
            lines.append(self.net.show(node.host))
        return "\n".join(lines) + "\n"

    def stuck_nodes(self) -> list[int]:
        """Running members that no longer take connections from their listen queue
        (queued connections, not fewer a second later): a blocked or spinning
        event loop."""
        first = self._listen_queues()
        time.sleep(1.0)  # pacing: the second sample of the queues
        second = self._listen_queues()
        return [i for i, n in second.items() if n > 0 and first.get(i, 0) and n >= first[i]]

    def _listen_queues(self) -> dict[int, int]:
        out = {}
        for i in self.members:
            node = self.nodes[i]
            if not node.alive or node.paused:
                continue
            try:
                listen = self.net.listen_queue(node.host, PORT)
            except RuntimeError:
                continue
            if listen is not None:
                out[i] = listen[0]
        return out

    def logs(self) -> dict[int, str]:
        out = {}
        for i, node in self.nodes.items():
            out[i] = node.log_path.read_text(errors="replace") if node.log_path.exists() else ""
        return out
