"""Real node processes on loopback, started through the real command line.

A :class:`ProcCluster` owns its processes (killed by PID, never by name),
gives each node a free port and its own data directory, and offers waits that
poll with a deadline. Used by the multi-process tests and the benchmarks.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parents[2]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(cond: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    """Poll ``cond`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = cond()
            if value:
                return value
        except (redis.RedisError, OSError) as e:
            last_error = e
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or cond} ({last_error})")


def holds_for(cond: Callable[[], Any], seconds: float) -> None:
    """Check that ``cond`` stays true for ``seconds`` (to show something does NOT happen)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert cond(), "the condition stopped holding"
        time.sleep(0.05)


@dataclass
class Proc:
    node_id: str
    port: int
    data_dir: Path
    log_path: Path
    args: list[str]
    host: str = "127.0.0.1"
    popen: subprocess.Popen[bytes] | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1", **self.extra_env)
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env
        )
        log.close()

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        if self.alive:
            assert self.popen is not None
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def stop(self) -> int:
        """SIGTERM, then wait: a clean shutdown."""
        assert self.popen is not None
        if self.alive:
            self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(20)

    def client(self, **kw: Any) -> redis.Redis:
        return redis.Redis(
            host=self.host, port=self.port, socket_timeout=5, decode_responses=True, **kw
        )

    def call(self, *args: str) -> Any:
        with self.client() as c:
            return c.execute_command(*args)

    def info(self) -> dict[str, Any]:
        raw = self.call("RAFT", "INFO")
        if isinstance(raw, dict):
            return raw
        return dict(zip(raw[::2], raw[1::2], strict=True))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


class ProcCluster:
    def __init__(self, workdir: Path, program: list[str] | None = None) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.program = program or [sys.executable, "-m", "uhaha"]
        self.procs: dict[str, Proc] = {}

    def add(
        self,
        node_id: str,
        *,
        join: str | None = None,
        extra: list[str] | None = None,
        host: str = "127.0.0.1",
        start: bool = True,
    ) -> Proc:
        port = free_port(host)
        data = self.workdir / f"data-{node_id}"
        args = [*self.program, "-n", node_id, "-a", f"{host}:{port}", "-d", str(data)]
        if join:
            args += ["-j", join]
        args += extra or []
        proc = Proc(node_id, port, data, self.workdir / f"node-{node_id}.log", args, host)
        self.procs[node_id] = proc
        if start:
            proc.start()
        return proc

    def start(self, n: int, extra: list[str] | None = None) -> Proc:
        first = self.add("1", extra=extra)
        self.wait_leader([first])
        for i in range(2, n + 1):
            self.add(str(i), join=first.address, extra=extra)
        self.wait_members(n)
        return first

    def live(self) -> list[Proc]:
        return [p for p in self.procs.values() if p.alive]

    def leader(self, among: list[Proc] | None = None) -> Proc | None:
        """The one live node that says it is the leader and that all live nodes agree on."""
        procs = among if among is not None else self.live()
        leaders = []
        for p in procs:
            try:
                if p.info().get("state") == "leader":
                    leaders.append(p)
            except (redis.RedisError, OSError):
                continue
        return leaders[0] if len(leaders) == 1 else None

    def wait_leader(self, among: list[Proc] | None = None, timeout: float = 20.0) -> Proc:
        leader: Proc = wait_for(lambda: self.leader(among), timeout, "a single leader")
        return leader

    def wait_members(self, n: int, timeout: float = 30.0) -> None:
        def ok() -> bool:
            leader = self.leader()
            return leader is not None and len(leader.call("RAFT", "SERVER", "LIST")) == n

        wait_for(ok, timeout, f"{n} members")

    def close(self) -> None:
        for p in self.procs.values():
            if p.alive:
                p.kill()

    def logs(self) -> str:
        return "\n".join(f"--- node {p.node_id} ---\n{p.log()}" for p in self.procs.values())


@contextmanager
def running(
    workdir: Path, n: int = 3, program: list[str] | None = None, extra: list[str] | None = None
) -> Iterator[ProcCluster]:
    """A started n-node cluster, killed afterwards; its logs are printed (pytest
    shows them only when a test failed)."""
    c = ProcCluster(workdir, program)
    try:
        c.start(n, extra=extra)
        yield c
    finally:
        print(c.logs())
        c.close()
