"""A simulated network for testing nodes without sockets.

:class:`MemoryNetwork` connects :class:`MemoryTransport` objects in one event
loop. Each message is delivered through the loop (``call_soon``, or
``call_later`` when a delay is set), never inside :meth:`MemoryTransport.send`,
so a node is never re-entered while it is sending. Faults are controlled per
directed link, and the randomness comes from the network's own seeded
:class:`random.Random`, so a test can replay a schedule::

    net = MemoryNetwork(seed=7)
    a = net.transport("a", deliver_a)
    b = net.transport("b", deliver_b)
    a.set_peers({"b": "b"}); b.set_peers({"a": "a"})
    net.block("a", "b")               # one way: a's messages to b are lost
    net.partition({"a"}, {"b", "c"})  # both ways between the two groups
    net.set_link("a", "b", drop=0.1, delay=(0.001, 0.005), duplicate=0.05)
    net.heal()

Addresses are opaque strings; a transport registers under its id unless given
one. Faults are keyed by node id (the sender's and the receiver's).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from uhaha.raft.messages import Message

from .base import Deliver, PeerStats
from .codec import decode, encode

__all__ = ["LinkFaults", "MemoryNetwork", "MemoryTransport"]


@dataclass(frozen=True, slots=True)
class LinkFaults:
    """What happens to messages on one directed link."""

    blocked: bool = False
    drop: float = 0.0
    """Probability that a message is lost."""
    duplicate: float = 0.0
    """Probability that a message is delivered twice."""
    delay: tuple[float, float] = (0.0, 0.0)
    """Seconds, drawn uniformly from ``[low, high]``; a spread reorders messages."""


_NO_FAULTS = LinkFaults()


class MemoryNetwork:
    """The simulated network: registered transports and the faults between them."""

    def __init__(self, seed: int | None = 0, *, codec: bool = True) -> None:
        """``codec`` sends every message through :mod:`uhaha.transport.codec`, as the
        real network does, so that the node under test sees decoded copies."""
        self.rng = random.Random(seed)
        self.codec = codec
        self._by_address: dict[str, MemoryTransport] = {}
        self._faults: dict[tuple[str, str], LinkFaults] = {}
        self.delivered = 0

    def transport(
        self, node_id: str, deliver: Deliver, *, address: str | None = None
    ) -> MemoryTransport:
        """Create a transport for ``node_id`` reachable at ``address`` (default: the id)."""
        return MemoryTransport(self, node_id, deliver, address=address)

    # --- faults ----------------------------------------------------------

    def faults(self, frm: str, to: str) -> LinkFaults:
        """The faults of the directed link from node ``frm`` to node ``to``."""
        return self._faults.get((frm, to), _NO_FAULTS)

    def set_link(
        self,
        frm: str,
        to: str,
        *,
        blocked: bool | None = None,
        drop: float | None = None,
        duplicate: float | None = None,
        delay: tuple[float, float] | float | None = None,
    ) -> None:
        """Change the faults of the directed link ``frm -> to`` (unnamed ones are kept)."""
        old = self.faults(frm, to)
        if isinstance(delay, float | int):
            delay = (float(delay), float(delay))
        self._faults[(frm, to)] = LinkFaults(
            old.blocked if blocked is None else blocked,
            old.drop if drop is None else drop,
            old.duplicate if duplicate is None else duplicate,
            old.delay if delay is None else delay,
        )

    def set_all(
        self,
        nodes: Iterable[str],
        *,
        drop: float | None = None,
        duplicate: float | None = None,
        delay: tuple[float, float] | float | None = None,
    ) -> None:
        """Apply the same faults to every link between ``nodes``."""
        ids = list(nodes)
        for a in ids:
            for b in ids:
                if a != b:
                    self.set_link(a, b, drop=drop, duplicate=duplicate, delay=delay)

    def block(self, frm: str, to: str) -> None:
        """Lose every message from ``frm`` to ``to`` (one way)."""
        self.set_link(frm, to, blocked=True)

    def unblock(self, frm: str, to: str) -> None:
        """Undo :meth:`block` (other faults of the link stay)."""
        self.set_link(frm, to, blocked=False)

    def partition(self, *groups: Iterable[str]) -> None:
        """Cut both ways between every two of ``groups`` (links inside a group stay)."""
        sets = [set(g) for g in groups]
        for i, a in enumerate(sets):
            for b in sets[i + 1 :]:
                for x in a:
                    for y in b:
                        self.block(x, y)
                        self.block(y, x)

    def isolate(self, node: str, others: Iterable[str]) -> None:
        """Cut ``node`` off from ``others`` both ways."""
        self.partition({node}, others)

    def heal(self) -> None:
        """Remove every fault: no blocks, drops, duplicates or delays."""
        self._faults.clear()

    # --- delivery --------------------------------------------------------

    def _register(self, transport: MemoryTransport) -> None:
        if transport.address in self._by_address:
            raise ValueError(f"address {transport.address!r} is already in use")
        self._by_address[transport.address] = transport

    def _unregister(self, transport: MemoryTransport) -> None:
        if self._by_address.get(transport.address) is transport:
            del self._by_address[transport.address]

    def reachable(self, address: str) -> bool:
        """Whether a started transport listens at ``address``."""
        target = self._by_address.get(address)
        return target is not None and target.running

    def _route(self, sender: str, msg: Message, address: str) -> bool:
        """Schedule ``msg`` from node ``sender`` for the transport at ``address``;
        return False if it was lost."""
        faults = self.faults(sender, msg.to)
        if faults.blocked or not self.reachable(address):
            return False
        rng = self.rng
        if faults.drop and rng.random() < faults.drop:
            return False
        copies = 2 if faults.duplicate and rng.random() < faults.duplicate else 1
        if self.codec:
            msg = decode(encode(msg))
        loop = asyncio.get_running_loop()
        low, high = faults.delay
        for _ in range(copies):
            if high > 0:
                loop.call_later(rng.uniform(low, high), self._arrive, sender, msg, address)
            else:
                loop.call_soon(self._arrive, sender, msg, address)
        return True

    def _arrive(self, sender: str, msg: Message, address: str) -> None:
        # Checked again on arrival: the receiver may have closed, or the link
        # been cut, while the message was in flight.
        target = self._by_address.get(address)
        if target is None or not target.running or msg.to != target.node_id:
            return
        if self.faults(sender, msg.to).blocked:
            return
        self.delivered += 1
        target.deliver(msg)


class MemoryTransport:
    """A :class:`~uhaha.transport.base.Transport` on a :class:`MemoryNetwork`.

    Unlike the HTTP transport it does not queue: a message sent before
    :meth:`start`, after :meth:`close`, or to an unreachable peer is dropped
    (and counted), as a message into a dead connection would be.
    """

    def __init__(
        self,
        network: MemoryNetwork,
        node_id: str,
        deliver: Deliver,
        *,
        address: str | None = None,
    ) -> None:
        self.network = network
        self.node_id = node_id
        self.address = node_id if address is None else address
        self.deliver = deliver
        self.running = False
        self._closed = False
        self._peers: dict[str, str] = {}
        self._sent: dict[str, int] = {}
        self._dropped: dict[str, int] = {}
        network._register(self)

    def set_peers(self, peers: Mapping[str, str]) -> None:
        """Talk to exactly ``peers`` (node id -> address) from now on."""
        self._peers = {p: a for p, a in peers.items() if p != self.node_id}
        for counters in (self._sent, self._dropped):
            for gone in counters.keys() - self._peers.keys():
                del counters[gone]

    def send(self, msgs: Iterable[Message]) -> None:
        """Hand each message to the network (delivered later, through the loop)."""
        for msg in msgs:
            address = self._peers.get(msg.to)
            if address is None:
                continue
            if self.running and self.network._route(self.node_id, msg, address):
                self._sent[msg.to] = self._sent.get(msg.to, 0) + 1
            else:
                self._dropped[msg.to] = self._dropped.get(msg.to, 0) + 1

    async def start(self) -> None:
        """Start sending and receiving."""
        if not self._closed:
            self.running = True

    async def close(self) -> None:
        """Stop for good: messages in flight to this transport are lost."""
        self.running = False
        self._closed = True
        self.network._unregister(self)

    def stats(self) -> dict[str, PeerStats]:
        """Counters per current peer; ``connected`` means reachable and not blocked."""
        net = self.network
        return {
            peer: PeerStats(
                address,
                connected=self.running
                and net.reachable(address)
                and not net.faults(self.node_id, peer).blocked,
                sent=self._sent.get(peer, 0),
                dropped=self._dropped.get(peer, 0),
            )
            for peer, address in self._peers.items()
        }
