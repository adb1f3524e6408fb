"""The storage contract, run against every implementation (``backend`` fixture)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import pytest

from uhaha.raft.messages import Configuration, Entry, EntryKind, HardState, Member
from uhaha.storage.base import LogCompactedError, Storage, StorageError
from uhaha.storage.memory import MemoryStorage
from uhaha.storage.sqlite import SQLiteStorage

from .conftest import Opener


def ents(lo: int, hi: int, term: int = 1, size: int = 4) -> list[Entry]:
    """Entries ``lo..hi`` inclusive whose data names their index and term."""
    return [
        Entry(term, i, data=f"{i}:{term}".encode().ljust(size, b".")) for i in range(lo, hi + 1)
    ]


async def positions(store: Storage) -> tuple[int, int]:
    return await store.first_index(), await store.last_index()


async def test_new_store_is_empty(store: Storage) -> None:
    assert await positions(store) == (1, 0)
    assert await store.get_hard_state() == HardState()
    assert await store.get_entries(1, 10) == []
    loaded = await store.load()
    assert (loaded.first_index, loaded.last_index, loaded.compacted_term) == (1, 0, 0)
    assert list(loaded.entries) == []


async def test_append_and_read_ranges(store: Storage) -> None:
    await store.append(ents(1, 5))
    await store.append(ents(6, 9, term=2))
    assert await positions(store) == (1, 9)
    assert await store.get_entries(3, 7) == ents(3, 5) + ents(6, 6, term=2)
    assert await store.get_entries(8, 100) == ents(8, 9, term=2)  # hi is clipped
    assert await store.get_entries(10, 12) == []
    assert await store.get_entries(4, 4) == []


async def test_entry_kinds_and_binary_data_round_trip(store: Storage) -> None:
    config = Configuration((Member("1", "127.0.0.1:11001"), Member("2", "x:2", voter=False)))
    batch = [
        Entry(1, 1, EntryKind.NORMAL, b""),
        Entry(1, 2, EntryKind.CONFIG, config.encode()),
        Entry(1, 3, EntryKind.NORMAL, bytes(range(256)) * 40),
    ]
    await store.append(batch)
    got = await store.get_entries(1, 4)
    assert got == batch
    assert Configuration.decode(got[1].data) == config


async def test_overwrite_truncates_the_conflicting_suffix(store: Storage) -> None:
    await store.append(ents(1, 10))
    await store.save(HardState(2, "b", 3), ents(6, 7, term=2))
    assert await positions(store) == (1, 7)
    assert await store.get_entries(1, 11) == ents(1, 5) + ents(6, 7, term=2)
    # Overwriting from the very first entry replaces everything.
    await store.append(ents(1, 2, term=3))
    assert await store.get_entries(1, 11) == ents(1, 2, term=3)


async def test_truncate_suffix(store: Storage) -> None:
    await store.append(ents(1, 10))
    await store.truncate_suffix(8)
    assert await positions(store) == (1, 7)
    await store.truncate_suffix(20)  # past the end: nothing to do
    assert await positions(store) == (1, 7)
    await store.truncate_suffix(1)
    assert await positions(store) == (1, 0)
    await store.append(ents(1, 1, term=4))
    assert await store.get_entries(1, 2) == ents(1, 1, term=4)


@pytest.mark.parametrize(
    "batch",
    [ents(2, 3), [Entry(1, 1), Entry(1, 3)], [Entry(1, 1), Entry(1, 1)]],
    ids=["gap", "hole", "repeat"],
)
async def test_bad_batches_are_refused_without_harm(store: Storage, batch: list[Entry]) -> None:
    with pytest.raises(ValueError):
        await store.append(batch)
    assert await positions(store) == (1, 0)
    await store.append(ents(1, 2))  # a caller's mistake does not poison the store
    assert await positions(store) == (1, 2)


async def test_range_reads_are_bounded_by_bytes(store: Storage) -> None:
    batch = ents(1, 10, size=76)  # Entry.size() is len(data) + 24 = 100
    await store.append(batch)
    assert await store.get_entries(1, 11, max_bytes=300) == batch[:3]
    assert await store.get_entries(1, 11, max_bytes=299) == batch[:2]
    assert await store.get_entries(4, 11, max_bytes=1) == batch[3:4]  # always at least one
    assert await store.get_entries(1, 11, max_bytes=0) == batch[:1]
    assert await store.get_entries(1, 11, max_bytes=10_000) == batch
    assert await store.get_entries(1, 11) == batch


async def test_compaction(store: Storage) -> None:
    await store.append(ents(1, 5) + ents(6, 10, term=2))
    await store.compact(6)
    assert await positions(store) == (7, 10)
    with pytest.raises(LogCompactedError):
        await store.get_entries(6, 8)
    assert await store.get_entries(7, 9) == ents(7, 8, term=2)
    loaded = await store.load()
    assert (loaded.first_index, loaded.last_index, loaded.compacted_term) == (7, 10, 2)
    assert loaded.compacted_index == 6
    assert list(loaded.entries) == ents(7, 10, term=2)
    await store.compact(3)  # behind the compaction point: nothing to do
    assert await positions(store) == (7, 10)
    with pytest.raises(ValueError):
        await store.truncate_suffix(6)
    with pytest.raises(ValueError):
        await store.append(ents(6, 7, term=3))
    await store.append(ents(7, 8, term=3))  # the first stored entry may still be overwritten
    assert await positions(store) == (7, 8)


async def test_compacting_everything_keeps_the_boundary(store: Storage) -> None:
    await store.append(ents(1, 4, term=3))
    await store.compact(4)
    assert await positions(store) == (5, 4)
    assert (await store.load()).compacted_term == 3
    assert await store.get_entries(5, 9) == []
    await store.append(ents(5, 6, term=3))
    assert await store.get_entries(5, 9) == ents(5, 6, term=3)


async def test_compacting_to_a_snapshot_past_the_end_discards_the_log(store: Storage) -> None:
    await store.append(ents(1, 4))
    with pytest.raises(ValueError):
        await store.compact(20)  # the term of entry 20 is unknown here
    await store.compact(20, term=5)
    assert await positions(store) == (21, 20)
    assert (await store.load()).compacted_term == 5
    with pytest.raises(ValueError):
        await store.append(ents(5, 6))
    await store.append(ents(21, 22, term=5))
    assert await store.get_entries(21, 30) == ents(21, 22, term=5)


async def test_compacting_to_a_conflicting_snapshot_discards_the_log(store: Storage) -> None:
    # Raft paper figure 13, step 7: the snapshot's last entry disagrees with ours.
    await store.append(ents(1, 8))
    await store.compact(5, term=2)
    assert await positions(store) == (6, 5)
    assert (await store.load()).compacted_term == 2
    # A matching snapshot keeps the entries after it (step 6).
    await store.append(ents(6, 9, term=2))
    await store.compact(7, term=2)
    assert await store.get_entries(8, 10) == ents(8, 9, term=2)


async def test_hard_state_round_trip(store: Storage) -> None:
    await store.set_hard_state(HardState(3, "node-2", 7))
    assert await store.get_hard_state() == HardState(3, "node-2", 7)
    await store.save(None, ents(1, 2))  # entries alone leave the hard state alone
    assert await store.get_hard_state() == HardState(3, "node-2", 7)
    await store.save(HardState(4, "", 9), [])
    assert await store.get_hard_state() == HardState(4, "", 9)
    await store.save(HardState(5, "ünïcode", 2**40), ents(3, 3, term=5))
    loaded = await store.load()
    assert loaded.hard_state == HardState(5, "ünïcode", 2**40)
    assert loaded.last_index == 3


async def test_metadata(store: Storage) -> None:
    assert await store.get_meta("cluster-id") is None
    await store.set_meta("cluster-id", b"abc")
    await store.set_meta("applied", b"\x00\x01")
    await store.set_meta("cluster-id", b"def")
    assert await store.get_meta("cluster-id") == b"def"
    assert await store.get_meta("applied") == b"\x00\x01"


async def test_load_reports_progress(store: Storage) -> None:
    await store.append(ents(1, 9000))
    calls: list[tuple[int, int]] = []
    loaded = await store.load(lambda done, total: calls.append((done, total)))
    assert len(loaded.entries) == 9000
    assert calls[-1] == (9000, 9000)
    assert all(total == 9000 for _, total in calls)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


async def test_concurrent_saves_and_reads_stay_consistent(store: Storage) -> None:
    await store.append(ents(1, 100))

    async def writer() -> None:
        for n in range(101, 301, 10):
            await store.save(HardState(1, "1", n), ents(n, n + 9))

    async def reader() -> None:
        for _ in range(40):
            got = await store.get_entries(1, 1000, max_bytes=2000)
            assert [e.index for e in got] == list(range(1, len(got) + 1))
            assert got == ents(1, len(got))

    await asyncio.gather(writer(), reader(), reader())
    assert await positions(store) == (1, 300)
    assert (await store.load()).entries == ents(1, 300)


@pytest.mark.parametrize("steps", range(0, 40, 3))
async def test_cancelled_save_is_all_or_nothing(store: Storage, steps: int) -> None:
    """Cancel a save after ``steps`` turns of the loop: before, during or after each await."""
    await store.append(ents(1, 10))
    task = asyncio.ensure_future(store.save(HardState(2, "x", 0), ents(6, 500, term=2)))
    for _ in range(steps):
        await asyncio.sleep(0)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    # The next write waits for the interrupted one to be settled, whole or not at all.
    await store.set_meta("after", b"1")
    loaded = await store.load()
    done = loaded.last_index == 500
    assert list(loaded.entries) == (ents(1, 5) + ents(6, 500, 2) if done else ents(1, 10))
    assert loaded.hard_state == (HardState(2, "x", 0) if done else HardState())
    assert await positions(store) == (1, loaded.last_index)
    assert await store.get_hard_state() == loaded.hard_state
    await store.append(ents(loaded.last_index + 1, loaded.last_index + 1, term=3))


async def test_sqlite_reopen_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "raft.db"
    store = await SQLiteStorage.open(path)
    try:
        await store.save(HardState(2, "3", 12), ents(1, 10) + ents(11, 20, term=2))
        await store.compact(5)
        await store.set_meta("k", b"v")
        await store.save(None, ents(18, 19, term=3))
    finally:
        await store.close()
    again = await SQLiteStorage.open(path)
    try:
        loaded = await again.load()
        assert loaded.hard_state == HardState(2, "3", 12)
        assert (loaded.first_index, loaded.last_index, loaded.compacted_term) == (6, 19, 1)
        assert list(loaded.entries) == ents(6, 10) + ents(11, 17, term=2) + ents(18, 19, term=3)
        assert await again.get_meta("k") == b"v"
        assert await positions(again) == (6, 19)
        assert await again.get_hard_state() == HardState(2, "3", 12)
        await again.append(ents(20, 20, term=3))
        assert await again.last_index() == 20
    finally:
        await again.close()


async def test_close_is_idempotent(opener: Opener) -> None:
    store = await opener()
    await store.close()
    await store.close()
    with pytest.raises(RuntimeError):
        await store.append(ents(1, 1))


async def test_memory_store_refuses_writes_after_an_injected_failure() -> None:
    store = MemoryStorage()
    await store.append(ents(1, 3))
    store.fail_writes("I/O error while writing the log (test)")
    with pytest.raises(StorageError, match="I/O error"):
        await store.append(ents(4, 4))
    with pytest.raises(StorageError):
        await store.set_hard_state(HardState(1))
    assert await store.get_entries(1, 10) == ents(1, 3)  # reads still work


async def test_sqlite_reads_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "raft.db"
    store = await SQLiteStorage.open(path)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        await store.append(ents(1, 50))
        # Another connection takes SQLite's write lock, so our next save blocks
        # inside the writer's thread (in SQLite's busy handler) until it is released.
        other.execute("BEGIN IMMEDIATE")
        saving = asyncio.ensure_future(store.save(HardState(1), ents(51, 60)))
        reads = store.get_entries(1, 51, max_bytes=1 << 20)
        assert await asyncio.wait_for(reads, timeout=2) == ents(1, 50)
        assert (await asyncio.wait_for(store.load(), timeout=2)).last_index == 50
        assert not saving.done()
        other.execute("ROLLBACK")
        await asyncio.wait_for(saving, timeout=10)
        assert await store.get_entries(51, 61) == ents(51, 60)
    finally:
        other.close()
        await store.close()
