"""A disk that fills up or turns read-only under a running store (real mounts, root)."""

from __future__ import annotations

from pathlib import Path

import pytest

from uhaha.raft.messages import Entry, HardState
from uhaha.storage.base import StorageError
from uhaha.storage.datadir import DataDir
from uhaha.storage.sqlite import SQLiteStorage

from .mounts import ext4_image, remount_read_only, tmpfs, trigger_ext4_error


def batch(start: int, count: int = 8, size: int = 1000) -> list[Entry]:
    return [
        Entry(1, i, data=i.to_bytes(8, "little") * (size // 8)) for i in range(start, start + count)
    ]


def assert_one_line(error: BaseException, *words: str) -> None:
    text = str(error)
    assert "\n" not in text and text.strip() == text, repr(text)
    for word in words:
        assert word in text, f"{word!r} not in {text!r}"


async def fill(store: SQLiteStorage, limit: int = 10_000) -> tuple[int, StorageError]:
    """Save batches until the disk refuses; returns the last acknowledged index and the error."""
    last = 0
    for n in range(limit):
        try:
            await store.save(HardState(1, "1", n), batch(last + 1))
        except StorageError as exc:
            return last, exc
        last += 8
    pytest.fail(f"the disk never filled after {limit} batches")


async def test_disk_full_is_reported_once_and_then_refused(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", "256k") as mnt:
        db = mnt / "raft.db"
        store = await SQLiteStorage.open(db)
        try:
            acked, error = await fill(store)
            assert acked > 0
            assert_one_line(error, "disk full", str(db))
            assert store.failed is error
            # No retry after a failed write (fsyncgate): every later write is refused.
            with pytest.raises(StorageError, match="refuses writes") as refused:
                await store.save(None, batch(acked + 1))
            assert_one_line(refused.value, "disk full")
            with pytest.raises(StorageError, match="refuses writes"):
                await store.set_meta("k", b"v")
            assert await store.last_index() == acked
            assert len(await store.get_entries(1, acked + 1)) == acked  # reads still work
        finally:
            await store.close()
        # Reopened in place, on the still-full disk: everything acknowledged is there,
        # and the log ends at the last acknowledged batch (the failed one left no trace).
        again = await SQLiteStorage.open(db)
        try:
            state = await again.load()
        finally:
            await again.close()
        assert state.last_index == acked
        assert list(state.entries) == [e for s in range(1, acked, 8) for e in batch(s)]
        assert state.hard_state == HardState(1, "1", acked // 8 - 1)


async def test_open_on_a_read_only_file_system_is_one_clear_line(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", "1m") as mnt:
        store = await SQLiteStorage.open(mnt / "raft.db")
        await store.save(HardState(1), batch(1))
        await store.close()
        remount_read_only(mnt)
        with pytest.raises(StorageError) as caught:
            await SQLiteStorage.open(mnt / "raft.db")
        assert_one_line(caught.value, "not writable", str(mnt))
        with pytest.raises(StorageError) as caught:
            DataDir.open(mnt, "app", "1")
        assert_one_line(caught.value, "not writable", str(mnt))


async def test_file_system_turning_read_only_mid_run(tmp_path: Path) -> None:
    with ext4_image(tmp_path / "disk.img", tmp_path / "mnt") as mnt:
        db = mnt / "raft.db"
        store = await SQLiteStorage.open(db)
        try:
            await store.save(HardState(1, "1", 0), batch(1))
            trigger_ext4_error(mnt)
            with pytest.raises(StorageError) as caught:
                await store.save(HardState(1, "1", 1), batch(9))
            assert_one_line(caught.value, "not writable", str(mnt))
            with pytest.raises(StorageError, match="refuses writes"):
                await store.save(None, batch(9))
        finally:
            await store.close()
