"""A small LAN of network namespaces for running real nodes on distinct IPs.

Topology (nothing is added to the root namespace)::

    <tag>br:  bridge br0 (+ lo)
                |-- v1 ====veth==== eth0 in <tag>n1  10.213.7.1/24
                |-- v2 ====veth==== eth0 in <tag>n2  10.213.7.2/24
                '-- v3 ====veth==== eth0 in <tag>n3  10.213.7.3/24

Each veth pair is created inside the bridge namespace with its peer end sent
straight into the host namespace, so the root namespace never sees an
interface. ``<tag>`` holds the test process's PID and a counter, so parallel
runs (pytest-xdist) and consecutive tests never share a namespace. Processes
are started with ``ip netns exec`` (which execs, so the Popen PID is the
node's PID) and killed by that PID; :meth:`NetLab.close` kills them and then
deletes every namespace it created, also after a failure.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import TracebackType

from tests.cluster.harness import Proc

SUBNET = "10.213.7"
PORT = 11001
_counter = itertools.count()


def require_tools() -> None:
    """Fail (never install, never skip) with one clear line if a tool is missing."""
    missing = [t for t in ("ip", "redis-cli") if shutil.which(t) is None]
    if missing:
        pkgs = {"ip": "iproute2", "redis-cli": "redis-tools"}
        raise RuntimeError(
            f"network-namespace tests need {', '.join(missing)} "
            f"on PATH: apt-get install {' '.join(pkgs[m] for m in missing)}"
        )
    if os.geteuid() != 0:
        raise RuntimeError("network-namespace tests must run as root (ip netns add)")


def ip(*args: str, timeout: float = 10.0) -> None:
    out = subprocess.run(
        ["ip", *args], check=False, capture_output=True, text=True, timeout=timeout
    )
    if out.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {out.stderr.strip()}")


class NetLab:
    def __init__(self, workdir: Path, hosts: int = 3) -> None:
        self.workdir = workdir
        self.tag = f"uhnt{os.getpid()}x{next(_counter)}"
        self.bridge_ns = f"{self.tag}br"
        self.host_ns = [f"{self.tag}n{i}" for i in range(1, hosts + 1)]
        self.created: list[str] = []
        self.procs: list[Proc] = []

    # -- the network ---------------------------------------------------------

    def ip_of(self, i: int) -> str:
        """The address of host ``i`` (1-based)."""
        return f"{SUBNET}.{i}"

    def ns_of(self, i: int) -> str:
        return self.host_ns[i - 1]

    def _add_ns(self, name: str) -> None:
        ip("netns", "add", name)
        self.created.append(name)

    def build(self) -> None:
        br = self.bridge_ns
        self._add_ns(br)
        ip("-n", br, "link", "set", "lo", "up")
        ip("-n", br, "link", "add", "br0", "type", "bridge")
        ip("-n", br, "link", "set", "br0", "up")
        for i, ns in enumerate(self.host_ns, start=1):
            self._add_ns(ns)
            ip(
                "-n",
                br,
                "link",
                "add",
                f"v{i}",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                ns,
            )
            ip("-n", br, "link", "set", f"v{i}", "master", "br0", "up")
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "addr", "add", f"{self.ip_of(i)}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")

    def __enter__(self) -> NetLab:
        try:
            self.build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        errors: list[str] = []
        for p in self.procs:
            try:
                p.kill()
            except Exception as e:  # keep cleaning up
                errors.append(f"kill node {p.node_id}: {e!r}")
        # Safety net: anything still inside one of *our* namespaces was
        # started by this lab (e.g. a child a node forked); kill it by PID.
        for ns in self.created:
            out = subprocess.run(
                ["ip", "netns", "pids", ns], check=False, capture_output=True, text=True, timeout=10
            )
            for pid in out.stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                    errors.append(f"process {pid} was left in {ns}")
                except ProcessLookupError:
                    pass
        for ns in reversed(self.created):
            try:
                ip("netns", "del", ns)
            except Exception as e:
                errors.append(repr(e))
        self.created.clear()
        if errors:
            raise RuntimeError("; ".join(errors))

    # -- processes and clients ----------------------------------------------

    def exec(self, ns: str, *args: str, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", ns, *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start_node(
        self, i: int, *, bind: str, advertise: str | None = None, extra: list[str] | None = None
    ) -> Proc:
        """Start node ``i`` in namespace ``i`` through the real command line."""
        data = self.workdir / f"data-{i}"
        args = ["ip", "netns", "exec", self.ns_of(i), sys.executable, "-m", "uhaha"]
        args += ["-n", str(i), "-a", bind, "-d", str(data)]
        if advertise:
            args += ["--advertise", advertise]
        args += extra or []
        proc = Proc(str(i), PORT, data, self.workdir / f"node-{i}.log", args, host=self.ip_of(i))
        self.procs.append(proc)
        proc.start()
        return proc

    def redis_cli(
        self, from_ns: str, host: str, *args: str, auth: str | None = None, timeout: float = 5.0
    ) -> str:
        """Run Debian's redis-cli inside ``from_ns``; stdout and stderr, stripped."""
        cmd = ["redis-cli", "-h", host, "-p", str(PORT)]
        if auth is not None:
            cmd += ["-a", auth, "--no-auth-warning"]
        out = self.exec(from_ns, *cmd, *args, timeout=timeout)
        return (out.stdout + out.stderr).strip()

    def logs(self) -> str:
        parts = []
        for p in self.procs:
            text = p.log_path.read_text(errors="replace") if p.log_path.exists() else "(none)"
            parts.append(f"--- node {p.node_id} ({' '.join(p.args)}) ---\n{text}")
        return "\n".join(parts)
