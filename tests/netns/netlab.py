"""A small LAN of network namespaces for running real nodes on distinct IPs:
three hosts ``<tag>n1..3`` at 10.213.7.1-3 on one bridge (see
:mod:`tests.netns.bridge`). Processes are started with ``ip netns exec``
(which execs, so the Popen PID is the node's PID) and killed by that PID;
:meth:`NetLab.close` kills them, then anything else left in its namespaces
(reported as an error: a leak), and deletes every namespace.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.cluster.harness import Proc

from .bridge import Bridged

SUBNET = "10.213.7"
PORT = 11001


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


class NetLab(Bridged):
    leftovers_are_errors = True

    def __init__(self, workdir: Path, hosts: int = 3) -> None:
        super().__init__("uhnt", SUBNET)
        self.workdir = workdir
        self.host_count = hosts
        self.procs: list[Proc] = []

    def build(self) -> None:
        super().build()
        for i in range(1, self.host_count + 1):
            self.attach(i)

    def close(self) -> None:
        errors: list[str] = []
        for p in self.procs:
            try:
                p.kill()
            except Exception as e:  # keep cleaning up
                errors.append(f"kill node {p.node_id}: {e!r}")
        # Then the safety net: anything still inside one of *our* namespaces
        # was started by this lab (e.g. a child a node forked).
        self._close(errors)

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
        args = [*self.exec_args(i), sys.executable, "-m", "uhaha"]
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
