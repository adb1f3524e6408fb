"""Durable storage for a node: the Raft log and hard state, snapshots, the data directory.

See :mod:`uhaha.storage.base` for the contracts. The node opens a
:class:`DataDir`, then a :class:`SQLiteStorage` (or a :class:`MemoryStorage`
for ``--backend memory``) on its ``db_path`` and a :class:`SnapshotStore` on
its ``snapshot_path``.
"""

from .base import (
    LoadedState,
    LoadProgress,
    LogCompactedError,
    LogStore,
    StableStore,
    Storage,
    StorageError,
)
from .datadir import DataDir
from .memory import MemoryStorage
from .snapfile import SnapshotHeader, SnapshotReader, open_snapshot_file
from .snapshots import (
    SnapshotInfo,
    SnapshotNotFoundError,
    SnapshotReceiver,
    SnapshotStore,
    SnapshotWriter,
)
from .sqlite import SQLiteStorage

__all__ = [
    "DataDir",
    "LoadProgress",
    "LoadedState",
    "LogCompactedError",
    "LogStore",
    "MemoryStorage",
    "SQLiteStorage",
    "SnapshotHeader",
    "SnapshotInfo",
    "SnapshotNotFoundError",
    "SnapshotReader",
    "SnapshotReceiver",
    "SnapshotStore",
    "SnapshotWriter",
    "StableStore",
    "Storage",
    "StorageError",
    "open_snapshot_file",
]
