"""The storage seams: what the node needs from a durable Raft log and its state.

Two narrow protocols, in the manner of hashicorp/raft's ``LogStore`` and
``StableStore``, plus :class:`Storage`, which joins them and adds the two
operations the node's loop actually uses: :meth:`Storage.save` (persist one
Ready batch in one transaction) and :meth:`Storage.load` (everything needed to
rebuild the core at start-up).

The log is a contiguous run of entries ``[first_index, last_index]``. Entries
up to ``first_index - 1`` were compacted away (they live in a snapshot); the
store still knows the term of that last compacted entry, because the core
needs it to match ``prev_term`` at the boundary (Raft paper section 7). An
empty log has ``last_index == first_index - 1``; a new store has
``first_index == 1`` and ``last_index == 0``.

Failures of the disk raise :class:`StorageError`, whose text is one line a
user can act on. After a failed write a store refuses every further write: a
failed ``fsync`` may have dropped dirty pages, so retrying could acknowledge
data that is not on disk (PostgreSQL's "fsyncgate"). The node must stop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from uhaha.raft.messages import Entry, HardState

__all__ = [
    "LoadProgress",
    "LoadedState",
    "LogCompactedError",
    "LogStore",
    "StableStore",
    "Storage",
    "StorageError",
    "check_batch",
]


class StorageError(Exception):
    """The disk failed us: unwritable, full, corrupt or broken.

    ``str()`` is always one line, meant to be shown to the operator as is
    (for example "disk full while writing the log at /data/raft.db").
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class LogCompactedError(IndexError):
    """A read asked for entries that compaction already removed.

    Not a failure of the disk: the caller should send a snapshot instead.
    """


LoadProgress = Callable[[int, int], None]
"""Called as ``progress(loaded, total)`` while :meth:`Storage.load` reads a long log."""


@dataclass(frozen=True, slots=True)
class LoadedState:
    """What a node reads from its store at start-up."""

    hard_state: HardState
    first_index: int
    last_index: int
    compacted_term: int
    """The term of entry ``first_index - 1`` (0 if nothing was ever compacted)."""
    entries: Sequence[Entry]
    """Every entry in ``[first_index, last_index]``, in order."""

    @property
    def compacted_index(self) -> int:
        """The index of the last compacted entry (0 if nothing was ever compacted)."""
        return self.first_index - 1


class LogStore(Protocol):
    """An ordered, durable run of Raft log entries."""

    async def first_index(self) -> int:
        """The index of the first stored entry (one past the last compacted one)."""
        ...

    async def last_index(self) -> int:
        """The index of the last stored entry (``first_index() - 1`` when empty)."""
        ...

    async def get_entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries in ``[lo, hi)``; ``hi`` past the end is clipped to the end.

        With ``max_bytes`` the run stops before the entry that would take the
        total of :meth:`Entry.size` past it, but always holds at least one
        entry. Raises :class:`LogCompactedError` if ``lo < first_index()``.
        """
        ...

    async def append(self, entries: Sequence[Entry]) -> None:
        """Durably store a contiguous batch.

        The batch must start at or before ``last_index() + 1`` and not before
        ``first_index()``. Starting at or before ``last_index()`` first removes
        the stored entry at that index and everything after it: Raft replaces a
        conflicting suffix (paper section 5.3).
        """
        ...

    async def truncate_suffix(self, index: int) -> None:
        """Remove the entry at ``index`` and every later one."""
        ...

    async def compact(self, index: int, term: int | None = None) -> None:
        """Remove every entry up to and including ``index``.

        ``term`` is the term of entry ``index``; it may be omitted when that
        entry is stored. When the stored entry has another term, or ``index``
        is past the end, the whole log is discarded and the log continues
        after ``index`` (installing a snapshot, paper section 7, figure 13).
        Compacting at or below the current compaction point does nothing.
        """
        ...


class StableStore(Protocol):
    """The hard state and a few small named values."""

    async def get_hard_state(self) -> HardState:
        """The last hard state saved (all zero for a new store)."""
        ...

    async def set_hard_state(self, hard_state: HardState) -> None:
        """Durably replace the hard state."""
        ...

    async def get_meta(self, key: str) -> bytes | None:
        """The value stored under ``key``, or None."""
        ...

    async def set_meta(self, key: str, value: bytes) -> None:
        """Durably store ``value`` under ``key``."""
        ...


class Storage(LogStore, StableStore, Protocol):
    """Everything a node persists besides snapshots."""

    async def save(self, hard_state: HardState | None, entries: Sequence[Entry]) -> None:
        """Durably write one Ready batch in a single transaction.

        Stores ``hard_state`` (if given) and appends ``entries`` with the
        overwrite rule of :meth:`LogStore.append`. Either all of it is on disk
        when this returns, or none of it is and :class:`StorageError` is raised.
        """
        ...

    async def load(self, progress: LoadProgress | None = None) -> LoadedState:
        """Read the hard state and every entry after the compaction point."""
        ...

    async def close(self) -> None:
        """Release the store. Safe to call more than once, and after a failure."""
        ...


def check_batch(entries: Sequence[Entry], first_index: int, last_index: int) -> None:
    """Raise ValueError unless ``entries`` may be appended to the log ``[first, last]``.

    Shared by the implementations so that both reject the same mistakes, and
    reject them before touching the disk (a bad argument is the caller's bug,
    not a disk failure, so it must not poison the store).
    """
    if not entries:
        return
    start = entries[0].index
    if start > last_index + 1:
        raise ValueError(f"batch starts at {start}, leaving a gap after last index {last_index}")
    if start < first_index:
        raise ValueError(f"batch starts at {start}, before first index {first_index} (compacted)")
    for n, entry in enumerate(entries):
        if entry.index != start + n:
            raise ValueError(f"batch is not contiguous at index {entry.index}")
