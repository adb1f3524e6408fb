"""Per-link network faults between real node processes: namespaces + iptables + htb.

Why namespaces and not a proxy per link
---------------------------------------
A node learns its peers' addresses from the Raft membership (the ``-a`` /
``--advertise`` address each node registered) and dials them without binding a
source address. A harness-owned TCP proxy listening on a node's advertised
address therefore sees every peer arrive from the same source (127.0.0.1 on
loopback) and cannot tell *which* link a connection belongs to, so it could cut
"everything towards node 3" but not "node 1 to node 3 while node 2 to node 3
stays up". Giving each node its own network namespace gives each one a
distinct source address, and the kernel does the per-pair filtering.

Topology (:mod:`tests.netns.bridge`; nothing is added to the root namespace)::

    <tag>br:  bridge br0
                |-- v1   ==veth==  eth0 in <tag>n1   10.214.0.1/24   node 1
                |-- v2   ==veth==  eth0 in <tag>n2   10.214.0.2/24   node 2
                |-- ...            (one namespace per node, added on demand)
                '-- v250 ==veth==  eth0 in <tag>c    10.214.0.250/24 the clients

Every run has its own namespaces (``<tag>`` holds the PID and a counter), so
parallel runs may reuse the same subnet. The harness's clients live in
``<tag>c``: :func:`in_netns` switches the *calling thread* into it with
``setns(2)`` (threads it then starts inherit it) and back afterwards, so the
test process itself never leaves the root namespace for good.

Faults, all between node namespaces (the clients always reach every node):

- **Partition** of a directed link ``src -> dst``: ``iptables -A INPUT -s src
  -j DROP`` inside ``dst``'s namespace. Packets leave and vanish, as on a real
  network (a DROP in ``OUTPUT`` would instead fail the sender's ``send`` at
  once with EPERM). Both directions make a symmetric partition; one direction
  makes an asymmetric one.
- **Slow link** ``src -> dst``: ``tc`` has no ``netem`` on this kernel (no
  delay qdisc at all), but ``htb`` and the ``u32`` classifier exist: inside
  ``src``'s namespace, an htb class of a few tens of kbit/s for packets to
  ``dst``. A heartbeat then takes ~15 ms and an append of a few kB hundreds of
  ms, queued behind each other, which is what a congested link does. Optional
  random loss (``-m statistic --mode random``) adds TCP retransmission
  timeouts (200 ms and up).
- **Heal**: every namespace's ruleset is replaced by an empty one.

Each host's whole ruleset is rewritten at once with ``iptables-restore`` (and
its qdisc tree with ``tc -batch``), only when it changed. :meth:`ChaosNet.close`
kills whatever is still inside one of its namespaces (by PID: only processes
this run started, e.g. a snapshot child a killed node had forked) and deletes
every namespace it created, also after a failure.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.netns.bridge import Bridged

__all__ = [
    "CLIENT_HOST",
    "PORT",
    "SUBNET",
    "ChaosNet",
    "NetError",
    "SlowLink",
    "in_netns",
    "require_tools",
]

SUBNET = "10.214.0"
PORT = 11001
CLIENT_HOST = 250
"""The host number of the clients' namespace (node hosts are 1, 2, ...)."""

_CLONE_NEWNET = 0x40000000
_NO_RULES = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
_libc = ctypes.CDLL(None, use_errno=True)


class NetError(RuntimeError):
    """A network set-up or fault command failed."""


def require_tools() -> None:
    """Fail (never skip) with one line naming the Debian packages to install."""
    pkgs = {"ip": "iproute2", "tc": "iproute2", "iptables-restore": "iptables"}
    missing = sorted({pkgs[t] for t in pkgs if shutil.which(t) is None})
    if missing:
        raise NetError(f"the chaos harness needs: apt-get install {' '.join(missing)}")
    if os.geteuid() != 0:
        raise NetError("the chaos harness must run as root (network namespaces)")


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise NetError(f"setns: {os.strerror(err)}")


@contextmanager
def in_netns(name: str) -> Iterator[None]:
    """Run the calling thread (and the threads it starts) inside namespace ``name``."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/run/netns/{name}", os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(own)


@dataclass(frozen=True)
class SlowLink:
    """A directed link limited to ``rate_kbit`` kbit/s, dropping ``loss`` of its packets."""

    rate_kbit: int
    loss: float = 0.0


class ChaosNet(Bridged):
    """The namespaces of one run and the faults currently set between them."""

    error = NetError

    def __init__(self) -> None:
        super().__init__("uhch", SUBNET)
        self.client_ns = f"{self.tag}c"
        self.blocked: set[tuple[int, int]] = set()
        self.slow: dict[tuple[int, int], SlowLink] = {}
        self._applied_rules: dict[int, str] = {}
        self._applied_tc: dict[int, str] = {}

    # --- the network -------------------------------------------------------------

    def build(self) -> None:
        super().build()
        self.attach(CLIENT_HOST, self.client_ns)

    def add_host(self, host: int) -> str:
        """The namespace of node host ``host``, created on first use."""
        if host not in self.hosts:
            if not 1 <= host < CLIENT_HOST:
                raise ValueError(f"host number {host} out of range")
            self.attach(host)
        return self.hosts[host]

    @contextmanager
    def clients(self) -> Iterator[None]:
        """The calling thread inside the clients' namespace."""
        with in_netns(self.client_ns):
            yield

    # --- faults -------------------------------------------------------------------

    def block(self, src: int, dst: int) -> None:
        """Drop everything ``src`` sends to ``dst`` (one direction)."""
        self.blocked.add((src, dst))

    def cut(self, a: int, b: int) -> None:
        """Drop everything between ``a`` and ``b``, both ways."""
        self.block(a, b)
        self.block(b, a)

    def partition(self, groups: Iterable[Iterable[int]]) -> None:
        """Cut every pair of hosts that are in different groups."""
        sets = [set(g) for g in groups]
        for i, ga in enumerate(sets):
            for gb in sets[i + 1 :]:
                for a in ga:
                    for b in gb:
                        self.cut(a, b)

    def set_slow(self, src: int, dst: int, link: SlowLink) -> None:
        self.slow[(src, dst)] = link

    def heal(self) -> None:
        """Forget every fault (call :meth:`apply` to make it so)."""
        self.blocked.clear()
        self.slow.clear()

    def apply(self) -> None:
        """Make every namespace's rules match the faults set now."""
        for host in sorted(self.hosts):
            if host == CLIENT_HOST:
                continue
            rules = self._rules_for(host)
            if self._applied_rules.get(host, _NO_RULES) != rules:
                self.run([*self.exec_args(host), "iptables-restore"], stdin=rules)
                self._applied_rules[host] = rules
            tc = self._tc_for(host)
            if self._applied_tc.get(host, "") != tc:
                if self._applied_tc.get(host):
                    self.run([*self.exec_args(host), "tc", "qdisc", "del", "dev", "eth0", "root"])
                if tc:
                    self.run([*self.exec_args(host), "tc", "-batch", "-"], stdin=tc)
                self._applied_tc[host] = tc

    def _rules_for(self, host: int) -> str:
        lines = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
        for src, dst in sorted(self.blocked):
            if dst == host:
                lines.append(f"-A INPUT -s {self.ip_of(src)}/32 -j DROP")
        for (src, dst), link in sorted(self.slow.items()):
            if dst == host and link.loss > 0 and (src, dst) not in self.blocked:
                lines.append(
                    f"-A INPUT -s {self.ip_of(src)}/32 -m statistic --mode random "
                    f"--probability {link.loss:.3f} -j DROP"
                )
        lines.append("COMMIT")
        return "\n".join(lines) + "\n"

    def _tc_for(self, host: int) -> str:
        links = sorted((dst, link) for (src, dst), link in self.slow.items() if src == host)
        if not links:
            return ""
        out = [
            "qdisc add dev eth0 root handle 1: htb default 1",
            "class add dev eth0 parent 1: classid 1:1 htb rate 10gbit quantum 60000",
        ]
        for dst, link in links:
            out.append(
                f"class add dev eth0 parent 1: classid 1:{dst + 10} htb "
                f"rate {link.rate_kbit}kbit burst 2k quantum 1514"
            )
            out.append(
                f"filter add dev eth0 parent 1: protocol ip prio 1 u32 "
                f"match ip dst {self.ip_of(dst)}/32 flowid 1:{dst + 10}"
            )
        return "\n".join(out) + "\n"

    def describe(self) -> dict[str, object]:
        return {
            "blocked": [f"{a}->{b}" for a, b in sorted(self.blocked)],
            "slow": {f"{a}->{b}": [s.rate_kbit, s.loss] for (a, b), s in sorted(self.slow.items())},
        }

    def pids(self, host: int) -> list[int]:
        """The processes inside ``host``'s namespace."""
        return [int(p) for p in self.run(["ip", "netns", "pids", self.ns_of(host)]).split()]

    def listen_queue(self, host: int, port: int) -> tuple[int, int] | None:
        """``(queued, backlog)`` of the listening TCP socket on ``port`` in ``host``'s
        namespace: connections the kernel accepted that the process has not taken."""
        out = self.run([*self.exec_args(host), "ss", "-tlnH", f"sport = :{port}"])
        for line in out.splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[0] == "LISTEN":
                return int(fields[1]), int(fields[2])
        return None

    def show(self, host: int) -> str:
        """The filter rules, qdiscs and TCP sockets inside ``host``'s namespace."""
        out = []
        for cmd in (["iptables-save"], ["tc", "qdisc", "show"], ["ss", "-tanp"]):
            try:
                out.append(f"  $ {' '.join(cmd)}\n{self.run([*self.exec_args(host), *cmd])}")
            except (NetError, subprocess.TimeoutExpired) as e:
                out.append(f"  $ {' '.join(cmd)}: {e}")
        return "".join(out)
