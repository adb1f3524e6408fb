"""Peer transports: how a node's Raft messages reach the other nodes.

- :mod:`.base`: the :class:`Transport` protocol the node uses, and :class:`PeerStats`.
- :mod:`.codec`: the binary encoding of messages and its length-prefixed frames.
- :mod:`.http`: :class:`HttpTransport`, long-lived HTTP/2 streams between nodes.
- :mod:`.memory`: :class:`MemoryNetwork`, a simulated network for tests.
"""

from .base import Deliver, PeerStats, Transport
from .codec import CodecError, FrameDecoder, decode, encode, encode_frame
from .http import HttpTransport
from .memory import LinkFaults, MemoryNetwork, MemoryTransport

__all__ = [
    "CodecError",
    "Deliver",
    "FrameDecoder",
    "HttpTransport",
    "LinkFaults",
    "MemoryNetwork",
    "MemoryTransport",
    "PeerStats",
    "Transport",
    "decode",
    "encode",
    "encode_frame",
]
