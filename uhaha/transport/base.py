"""The seam between the node and whatever carries its messages to its peers.

A transport takes Raft messages from the node with :meth:`Transport.send` and
hands messages from peers to the ``deliver`` callback it was built with. It
never blocks the node and never raises for network trouble: Raft already
tolerates lost, duplicated and late messages (the leader retries appends,
heartbeats repeat, elections time out), so a transport that cannot keep up
drops messages and counts them in :meth:`Transport.stats` instead of buffering
without bound.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeAlias

from uhaha.raft.messages import Message

__all__ = ["Deliver", "PeerStats", "Transport"]

Deliver: TypeAlias = Callable[[Message], None]
"""Called on the event loop with each message received for this node."""


@dataclass(frozen=True, slots=True)
class PeerStats:
    """A snapshot of one peer link's counters, as :meth:`Transport.stats` reports them."""

    address: str
    """The peer's ``host:port`` (or the simulated address)."""
    connected: bool
    """Whether the link to the peer is believed to be up right now."""
    sent: int = 0
    """Messages handed to the network (not necessarily received)."""
    dropped: int = 0
    """Messages discarded: queue overflow, link removed, write failed, or simulated loss."""
    errors: int = 0
    """Failed connection attempts, broken streams and failed requests."""
    last_error: str = ""
    """A description of the most recent error, or ``""``."""
    queued: int = 0
    """Messages waiting to be sent."""
    queued_bytes: int = 0
    """Encoded bytes waiting to be sent."""


class Transport(Protocol):
    """What the node needs from a peer transport."""

    def set_peers(self, peers: Mapping[str, str]) -> None:
        """Set the peers to talk to: node id -> ``"host:port"``.

        Peers not listed any more are disconnected and their queued messages
        dropped; a peer whose address changed is reconnected to the new one.
        """
        ...

    def send(self, msgs: Iterable[Message]) -> None:
        """Queue messages for their receivers (``msg.to``) and return at once.

        Never blocks and never raises for network trouble; a message for an
        unknown peer, or one that does not fit in the peer's queue, is dropped.
        """
        ...

    async def start(self) -> None:
        """Start connecting to the peers. Messages sent before are queued."""
        ...

    async def close(self) -> None:
        """Stop: close every connection, drop what is queued, deliver nothing more."""
        ...

    def stats(self) -> dict[str, PeerStats]:
        """The counters of every current peer, by node id."""
        ...
