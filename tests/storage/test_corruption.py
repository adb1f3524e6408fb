"""A damaged or foreign database file is refused with one clear line."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from uhaha.raft.messages import Entry, HardState
from uhaha.storage.base import StorageError
from uhaha.storage.sqlite import SQLiteStorage


def assert_one_line(error: BaseException, *words: str) -> None:
    text = str(error)
    assert "\n" not in text, repr(text)
    for word in words:
        assert word in text, f"{word!r} not in {text!r}"


async def test_not_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "raft.db"
    path.write_bytes(b"GARBAGE!" * 512)
    with pytest.raises(StorageError) as caught:
        await SQLiteStorage.open(path)
    assert str(caught.value) == (
        f"log database {path} is corrupt: not a SQLite database (bad header)"
    )


async def test_a_foreign_sqlite_database(tmp_path: Path) -> None:
    path = tmp_path / "raft.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    conn.close()
    with pytest.raises(StorageError) as caught:
        await SQLiteStorage.open(path)
    assert_one_line(caught.value, str(path), "not a uhaha log")


async def test_damaged_pages_fail_the_integrity_check(tmp_path: Path) -> None:
    path = tmp_path / "raft.db"
    store = await SQLiteStorage.open(path)
    await store.save(HardState(1), [Entry(1, i, data=bytes(200)) for i in range(1, 2001)])
    await store.close()  # checkpoints the WAL into the main file
    size = path.stat().st_size
    assert size > 20 * 4096
    with path.open("r+b") as f:
        for page in range(3, size // 4096, 2):
            f.seek(page * 4096 + 8)
            f.write(b"\xde\xad\xbe\xef" * 20)
    with pytest.raises(StorageError) as caught:
        await SQLiteStorage.open(path)
    assert_one_line(caught.value, str(path), "corrupt")


async def test_a_truncated_database(tmp_path: Path) -> None:
    path = tmp_path / "raft.db"
    store = await SQLiteStorage.open(path)
    await store.save(HardState(1), [Entry(1, i, data=bytes(200)) for i in range(1, 2001)])
    await store.close()
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 2)
    with pytest.raises(StorageError) as caught:
        await SQLiteStorage.open(path)
    assert_one_line(caught.value, str(path), "corrupt")
