"""A node that is starting or stopping answers "not running" (503), never a 500."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from uhaha.builtins import Builtins
from uhaha.errors import NotRunning
from uhaha.node import Node, NodeOptions
from uhaha.storage import MemoryStorage, SnapshotStore
from uhaha.transport import MemoryNetwork


async def test_a_stopped_node_redirects_nowhere_with_503(tmp_path: Path) -> None:
    net = MemoryNetwork()
    node = Node(
        NodeOptions("1", "n1", tick_ms=10),
        MemoryStorage(),
        SnapshotStore(tmp_path / "snap"),
        lambda deliver: net.transport("1", deliver, address="n1"),
        cast(Any, None),
    )
    await node.start(bootstrap=True)
    await node.stop()
    err = Builtins(node).moved()  # what a follower's write or read would answer
    assert isinstance(err, NotRunning)
    assert err.status == 503 and err.message == "ERR node is not running"
