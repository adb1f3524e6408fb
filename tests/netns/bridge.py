"""Network namespaces on one bridge: the shell that the walkthrough's LAN
(:mod:`tests.netns.netlab`) and the chaos harness (:mod:`tests.chaos.netfault`)
share.

Topology (nothing is added to the root namespace)::

    <tag>br:  bridge br0 (+ lo)
                |-- v1 ====veth==== eth0 in <tag>n1   <subnet>.1/24
                |-- v2 ====veth==== eth0 in <tag>n2   <subnet>.2/24
                '-- ...             (one namespace per host, attached on demand)

Each veth pair is created inside the bridge namespace with its peer end sent
straight into the host namespace, so the root namespace never sees an
interface. ``<tag>`` holds the test process's PID and a counter, so parallel
runs (pytest-xdist) and consecutive tests never share a namespace.
:meth:`Bridged.close` kills whatever is still inside one of its namespaces
(by PID: only processes this run started there) and deletes every namespace
it created, also after a failure.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
from types import TracebackType
from typing import Self

__all__ = ["Bridged", "run"]

_counter = itertools.count()


def run(
    args: list[str],
    stdin: str | None = None,
    timeout: float = 10.0,
    error: type[Exception] = RuntimeError,
) -> str:
    """Run a command; its stdout, or ``error`` with its stderr if it failed."""
    out = subprocess.run(
        args, input=stdin, check=False, capture_output=True, text=True, timeout=timeout
    )
    if out.returncode != 0:
        raise error(f"{' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout


class Bridged:
    """Host namespaces ``<tag>n<host>`` at ``<subnet>.<host>`` on one bridge."""

    error: type[Exception] = RuntimeError
    """What a failed ``ip`` command raises."""
    leftovers_are_errors = False
    """Whether a process still inside a namespace at close is reported (after
    being killed) as an error: a leak, where every process is killed first."""

    def __init__(self, prefix: str, subnet: str) -> None:
        self.tag = f"{prefix}{os.getpid()}x{next(_counter)}"
        self.subnet = subnet
        self.bridge_ns = f"{self.tag}br"
        self.hosts: dict[int, str] = {}
        self.created: list[str] = []

    def ip_of(self, host: int) -> str:
        return f"{self.subnet}.{host}"

    def ns_of(self, host: int) -> str:
        return self.hosts[host]

    def run(self, args: list[str], stdin: str | None = None, timeout: float = 10.0) -> str:
        return run(args, stdin, timeout, self.error)

    def exec_args(self, host: int) -> list[str]:
        """The prefix that runs a command inside ``host``'s namespace (``ip netns
        exec`` execs it, so the Popen PID is the command's own)."""
        return ["ip", "netns", "exec", self.ns_of(host)]

    # --- building -------------------------------------------------------------------

    def build(self) -> None:
        """The bridge namespace; subclasses attach their hosts after it."""
        br = self.bridge_ns
        self._add_ns(br)
        self.run(["ip", "-n", br, "link", "set", "lo", "up"])
        self.run(["ip", "-n", br, "link", "add", "br0", "type", "bridge"])
        self.run(["ip", "-n", br, "link", "set", "br0", "up"])

    def attach(self, host: int, ns: str | None = None) -> str:
        """Create namespace ``ns`` (default ``<tag>n<host>``) on the bridge at
        ``<subnet>.<host>``; its name."""
        ns = ns or f"{self.tag}n{host}"
        self._add_ns(ns)
        self.hosts[host] = ns
        br, veth = self.bridge_ns, f"v{host}"
        peer = ["peer", "name", "eth0", "netns", ns]
        self.run(["ip", "-n", br, "link", "add", veth, "type", "veth", *peer])
        self.run(["ip", "-n", br, "link", "set", veth, "master", "br0", "up"])
        self.run(["ip", "-n", ns, "link", "set", "lo", "up"])
        self.run(["ip", "-n", ns, "addr", "add", f"{self.ip_of(host)}/24", "dev", "eth0"])
        self.run(["ip", "-n", ns, "link", "set", "eth0", "up"])
        return ns

    def _add_ns(self, name: str) -> None:
        self.run(["ip", "netns", "add", name])
        self.created.append(name)

    def __enter__(self) -> Self:
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

    # --- clean-up -----------------------------------------------------------------------

    def close(self) -> None:
        """Kill what is left in our namespaces (by PID) and delete them all."""
        self._close([])

    def _close(self, errors: list[str]) -> None:
        for ns in self.created:
            try:
                pids = self.run(["ip", "netns", "pids", ns]).split()
            except (self.error, subprocess.TimeoutExpired) as e:
                errors.append(repr(e))
                continue
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
                    if self.leftovers_are_errors:
                        errors.append(f"process {pid} was left in {ns}")
        for ns in reversed(self.created):
            try:
                self.run(["ip", "netns", "del", ns])
            except (self.error, subprocess.TimeoutExpired) as e:
                errors.append(repr(e))
        self.created.clear()
        self.hosts.clear()
        if errors:
            raise self.error("; ".join(errors))
