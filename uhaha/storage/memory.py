"""An in-memory store with the same contract as the SQLite one.

For tests, simulations and ``--backend memory`` (nothing survives the process).
Each method completes without yielding to the event loop, so a batch is
applied atomically with respect to other tasks, as a transaction would be.
:meth:`MemoryStorage.fail_writes` lets tests of the node see a disk failure.
"""

from __future__ import annotations

from collections.abc import Sequence

from uhaha.raft.messages import Entry, HardState

from .base import LoadedState, LoadProgress, LogCompactedError, StorageError, check_batch

__all__ = ["MemoryStorage"]


class MemoryStorage:
    """A :class:`~uhaha.storage.base.Storage` held in lists and dicts."""

    def __init__(self) -> None:
        self._hard_state = HardState()
        self._offset = 0
        """Index of the last compacted entry; ``_entries[0]`` is entry ``_offset + 1``."""
        self._offset_term = 0
        self._entries: list[Entry] = []
        self._meta: dict[str, bytes] = {}
        self._failure: StorageError | None = None
        self._closed = False

    # --- faults ----------------------------------------------------------------

    def fail_writes(self, message: str = "I/O error while writing the log (injected)") -> None:
        """Make this and every later write raise, as after a real disk failure."""
        self._failure = StorageError(message)

    def _check_writable(self) -> None:
        self._check_open()
        if self._failure is not None:
            raise StorageError(
                f"memory log store refuses writes after an earlier failure: {self._failure}"
            )

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("memory log store is closed")

    # --- reading ---------------------------------------------------------------

    async def first_index(self) -> int:
        """See :meth:`uhaha.storage.base.LogStore.first_index`."""
        return self._offset + 1

    async def last_index(self) -> int:
        """See :meth:`uhaha.storage.base.LogStore.last_index`."""
        return self._offset + len(self._entries)

    async def get_entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """See :meth:`uhaha.storage.base.LogStore.get_entries`."""
        self._check_open()
        if lo <= self._offset:
            raise LogCompactedError(f"entry {lo} is compacted (first is {self._offset + 1})")
        start = lo - self._offset - 1
        stop = min(hi, self._offset + len(self._entries) + 1) - self._offset - 1
        out: list[Entry] = []
        total = 0
        for entry in self._entries[start:stop]:
            total += entry.size()
            if max_bytes is not None and total > max_bytes and out:
                break
            out.append(entry)
        return out

    async def get_hard_state(self) -> HardState:
        """See :meth:`uhaha.storage.base.StableStore.get_hard_state`."""
        return self._hard_state

    async def get_meta(self, key: str) -> bytes | None:
        """See :meth:`uhaha.storage.base.StableStore.get_meta`."""
        return self._meta.get(key)

    async def load(self, progress: LoadProgress | None = None) -> LoadedState:
        """See :meth:`uhaha.storage.base.Storage.load`."""
        self._check_open()
        if progress is not None:
            progress(len(self._entries), len(self._entries))
        return LoadedState(
            hard_state=self._hard_state,
            first_index=self._offset + 1,
            last_index=self._offset + len(self._entries),
            compacted_term=self._offset_term,
            entries=list(self._entries),
        )

    # --- writing ---------------------------------------------------------------

    async def save(self, hard_state: HardState | None, entries: Sequence[Entry]) -> None:
        """See :meth:`uhaha.storage.base.Storage.save`."""
        self._check_writable()
        check_batch(entries, self._offset + 1, self._offset + len(self._entries))
        if entries:
            del self._entries[entries[0].index - self._offset - 1 :]
            self._entries.extend(entries)
        if hard_state is not None:
            self._hard_state = hard_state

    async def append(self, entries: Sequence[Entry]) -> None:
        """See :meth:`uhaha.storage.base.LogStore.append`."""
        await self.save(None, entries)

    async def set_hard_state(self, hard_state: HardState) -> None:
        """See :meth:`uhaha.storage.base.StableStore.set_hard_state`."""
        await self.save(hard_state, ())

    async def truncate_suffix(self, index: int) -> None:
        """See :meth:`uhaha.storage.base.LogStore.truncate_suffix`."""
        self._check_writable()
        if index <= self._offset:
            raise ValueError(f"cannot truncate at {index}: first index is {self._offset + 1}")
        del self._entries[index - self._offset - 1 :]

    async def compact(self, index: int, term: int | None = None) -> None:
        """See :meth:`uhaha.storage.base.LogStore.compact`."""
        self._check_writable()
        if index <= self._offset:
            return
        pos = index - self._offset - 1
        stored = self._entries[pos].term if pos < len(self._entries) else None
        if term is not None:
            new_term = term
        elif stored is not None:
            new_term = stored
        else:
            last = self._offset + len(self._entries)
            raise ValueError(f"compacting past the last index {last} needs a term")
        if stored == new_term:
            del self._entries[: pos + 1]
        else:
            self._entries.clear()
        self._offset, self._offset_term = index, new_term

    async def set_meta(self, key: str, value: bytes) -> None:
        """See :meth:`uhaha.storage.base.StableStore.set_meta`."""
        self._check_writable()
        self._meta[key] = bytes(value)

    async def close(self) -> None:
        """See :meth:`uhaha.storage.base.Storage.close`."""
        self._closed = True
