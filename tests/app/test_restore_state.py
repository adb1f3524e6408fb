"""A snapshot file, restored elsewhere, reproduces the data, the replicated
time and the random stream exactly (the file written by RAFT SNAPSHOT READ
is the file --restore reads)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.app.apps.determ import app
from uhaha.app import Applier, make_machine, run_write
from uhaha.entries import encode_batch, encode_tick
from uhaha.raft import Configuration, Member, SnapshotMeta
from uhaha.snapshotter import restore_file, write_snapshot
from uhaha.storage import SnapshotStore, StorageError


def put(applier: Applier, index: int, key: str) -> object:
    return run_write(app, applier.machine, index, encode_batch([[b"put", key.encode()]]))


async def test_restored_machine_continues_identically(tmp_path: Path) -> None:
    first = Applier(app, make_machine(app))
    run_write(app, first.machine, 1, encode_tick(1_800_000_000 * 10**9, 12345))
    for i in range(2, 12):
        put(first, i, f"k{i}")
    store = SnapshotStore(tmp_path / "a")
    conf = Configuration((Member("1", "127.0.0.1:1"),))
    info = await write_snapshot(store, SnapshotMeta(11, 2, conf), first.dump, fork=True)
    exported = tmp_path / "exported.snap"
    shutil.copyfile(store.path(info.id), exported)

    other = SnapshotStore(tmp_path / "b")
    restored_info = restore_file(other, str(exported), SnapshotMeta(1, 1, conf), lambda d, t: None)
    second = Applier(app, make_machine(app))
    second.restore(other, restored_info.id)

    assert second.machine.state() == first.machine.state()
    assert second.machine.data == first.machine.data
    # The same next writes give the same time and random draws on both.
    for i in range(12, 15):
        assert put(second, i, f"n{i}") == put(first, i, f"n{i}")
    run_write(app, first.machine, 15, encode_tick(1_800_000_001 * 10**9, 99))
    run_write(app, second.machine, 15, encode_tick(1_800_000_001 * 10**9, 99))
    assert put(second, 16, "last") == put(first, 16, "last")


async def test_a_trailing_newline_is_accepted_other_bytes_are_not(tmp_path: Path) -> None:
    """``redis-cli RAFT SNAPSHOT READ id > file`` adds a newline: still a good file."""
    first = Applier(app, make_machine(app))
    put(first, 1, "k")
    store = SnapshotStore(tmp_path / "a")
    conf = Configuration((Member("1", "127.0.0.1:1"),))
    info = await write_snapshot(store, SnapshotMeta(1, 1, conf), first.dump, fork=False)
    data = store.path(info.id).read_bytes()
    for suffix, ok in ((b"\n", True), (b"\r\n", True), (b"x", False), (b"\x1f\x8b", False)):
        f = tmp_path / f"f{len(suffix)}{ok}.snap"
        f.write_bytes(data + suffix)
        other = SnapshotStore(tmp_path / f"s{len(suffix)}{ok}")
        if ok:
            restore_file(other, str(f), SnapshotMeta(1, 1, conf), lambda d, t: None)
        else:
            with pytest.raises(StorageError, match="unexpected bytes after the gzip stream"):
                restore_file(other, str(f), SnapshotMeta(1, 1, conf), lambda d, t: None)
    truncated = tmp_path / "short.snap"
    truncated.write_bytes(data[:-5])
    with pytest.raises(StorageError, match="corrupt"):
        restore_file(SnapshotStore(tmp_path / "t"), str(truncated), SnapshotMeta(1, 1, conf),
                     lambda d, t: None)  # fmt: skip
