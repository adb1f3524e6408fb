"""The snapshot store: uhaha's file format, atomic appearance, retention, ids, transfers."""

from __future__ import annotations

import gzip
import json
import random
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from uhaha.raft.messages import Configuration, Member, SnapshotMeta
from uhaha.snapshotter import backup
from uhaha.storage.base import StorageError
from uhaha.storage.snapfile import SnapshotHeader, open_snapshot_file
from uhaha.storage.snapshots import SnapshotInfo, SnapshotNotFoundError, SnapshotStore

from .conftest import child_env

CONFIG = Configuration((Member("1", "127.0.0.1:11001"), Member("2", "127.0.0.1:11002", False)))
HEADER = SnapshotHeader(start=1_700_000_000_000_000_000, ts=-5, seed=-(2**63))


def app_bytes(size: int, seed: int = 1) -> bytes:
    """Compressible but not trivial application bytes."""
    rng = random.Random(seed)
    words = [rng.randbytes(rng.randint(1, 12)) for _ in range(500)]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words)
    return bytes(out[:size])


def make(store: SnapshotStore, index: int, data: bytes, term: int = 2) -> SnapshotInfo:
    with store.create(index, term, CONFIG, HEADER) as writer:
        for n in range(0, len(data), 65536):
            writer.write(data[n : n + 65536])
        return writer.commit()


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_file_format_is_uhahas(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    data = app_bytes(300_000)
    info = make(store, 10, data)
    raw = gzip.decompress(store.path(info.id).read_bytes())
    assert raw[:32] == b"SNAP0001" + struct.pack("<qqq", HEADER.start, HEADER.ts, HEADER.seed)
    assert raw[32:] == data
    assert info.size == store.path(info.id).stat().st_size
    with store.open(info.id) as reader:
        assert reader.header == HEADER
        assert b"".join(reader.chunks(1000)) == data


def test_metadata_file(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, clock=lambda: 1234.5678)
    info = make(store, 7, b"state", term=3)
    assert info.id == "3-7-1234567"
    assert (info.index, info.term, info.config, info.timestamp) == (7, 3, CONFIG, 1234567)
    assert info.meta == SnapshotMeta(7, 3, CONFIG, info.size)
    meta = json.loads((tmp_path / info.id / "meta.json").read_text())
    assert meta["index"] == 7 and meta["term"] == 3 and meta["size"] == info.size
    assert meta["timestamp"] == 1234567
    assert meta["config"][1] == {"id": "2", "address": "127.0.0.1:11002", "voter": False}
    assert store.get(info.id) == info
    assert store.find(7, 3) == info
    assert store.find(7, 4) is None


def test_range_reads_return_raw_file_bytes(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    info = make(store, 5, app_bytes(100_000))
    whole = store.path(info.id).read_bytes()
    assert store.read(info.id, 0, info.size) == whole
    assert store.read(info.id, 100, 1000) == whole[100:1100]
    assert store.read(info.id, info.size - 10, 1000) == whole[-10:]
    assert store.read(info.id, info.size + 5, 10) == b""
    assert b"".join(store.read(info.id, n, 4096) for n in range(0, info.size, 4096)) == whole
    with pytest.raises(ValueError):
        store.read(info.id, -1, 10)


def test_retention_keeps_the_newest(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    infos = [make(store, index, b"x" * index) for index in (10, 20, 30, 40, 50)]
    assert [i.index for i in store.list()] == [50, 40]
    assert listing(tmp_path) == sorted([infos[-1].id, infos[-2].id])
    assert store.latest() == infos[-1]
    more = SnapshotStore(tmp_path, retain=3)
    for index in (60, 70):
        make(more, index, b"y")
    assert [i.index for i in more.list()] == [70, 60, 50]
    with pytest.raises(ValueError):
        SnapshotStore(tmp_path, retain=0)


def test_two_snapshots_of_one_state_in_one_millisecond_get_distinct_ids(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, retain=5, clock=lambda: 99.0)
    first, second = make(store, 3, b"a"), make(store, 3, b"b")
    assert first.id != second.id
    assert {i.id for i in store.list()} == {first.id, second.id}


@pytest.mark.parametrize(
    "bad_id",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "",
        "1-2-3",
        "1-2-3/../../x",
        "../1-1-1",
        "1-1-1\x00",
        ".tmp-abc",
        "9" * 5000,
    ],
)
def test_ids_are_validated(tmp_path: Path, bad_id: str) -> None:
    store = SnapshotStore(tmp_path / "snapshots")
    info = make(store, 1, b"x")
    # A directory with an id's shape but no meta.json is not a snapshot either.
    (tmp_path / "snapshots" / "1-2-3").mkdir()
    for lookup in (store.get, store.path, store.open, lambda i: store.read(i, 0, 10)):
        with pytest.raises(SnapshotNotFoundError):
            lookup(bad_id)
    assert store.get(info.id) == info


def test_an_aborted_snapshot_leaves_nothing(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    with pytest.raises(RuntimeError), store.create(1, 1, CONFIG, HEADER) as writer:
        writer.write(b"partial")
        raise RuntimeError("the application's snapshot function failed")
    assert listing(tmp_path) == []
    with store.create(2, 1, CONFIG, HEADER) as writer:
        writer.write(b"never committed")
    assert listing(tmp_path) == []
    assert store.list() == []


def test_a_crash_before_the_rename_leaves_no_snapshot(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from uhaha.raft.messages import Configuration
        from uhaha.storage.snapfile import SnapshotHeader
        from uhaha.storage.snapshots import SnapshotStore
        store = SnapshotStore({str(tmp_path)!r})
        writer = store.create(5, 1, Configuration(), SnapshotHeader())
        writer.write(b"x" * 100_000)
        print("written", flush=True)
        sys.stdin.read()  # hold here until killed
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=child_env(),
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"written\n"
        assert [p.name.startswith(".tmp-") for p in tmp_path.iterdir()] == [True]
    finally:
        child.kill()
        child.communicate(timeout=10)
    store = SnapshotStore(tmp_path)  # opening cleans up what the crash left
    assert store.list() == []
    assert listing(tmp_path) == []


def test_chunked_receiver(tmp_path: Path) -> None:
    leader = SnapshotStore(tmp_path / "leader")
    follower = SnapshotStore(tmp_path / "follower")
    info = make(leader, 42, app_bytes(200_000), term=7)
    receiver = follower.receive(info.meta)
    offset = 0
    assert receiver.write(5000, leader.read(info.id, 5000, 100)) == 0  # a gap: ignored
    while offset < info.size:
        chunk = leader.read(info.id, offset, 7000)
        offset = receiver.write(offset, chunk)
        # A retransmitted, overlapping chunk changes nothing.
        assert receiver.write(max(0, offset - 3000), leader.read(info.id, offset - 3000, 3000)) == (
            offset
        )
    with pytest.raises(ValueError):
        receiver.write(info.size, b"extra")
    got = receiver.finish()
    assert (got.index, got.term, got.config, got.size) == (42, 7, CONFIG, info.size)
    assert follower.path(got.id).read_bytes() == leader.path(info.id).read_bytes()
    assert [p.name for p in (tmp_path / "follower").iterdir()] == [got.id]
    with follower.open(got.id) as reader:
        assert reader.header == HEADER


def test_receiver_refuses_incomplete_and_damaged_transfers(tmp_path: Path) -> None:
    leader = SnapshotStore(tmp_path / "leader")
    follower = SnapshotStore(tmp_path / "follower")
    info = make(leader, 3, app_bytes(50_000))
    data = bytearray(leader.path(info.id).read_bytes())
    receiver = follower.receive(info.meta)
    receiver.write(0, bytes(data[:100]))
    with pytest.raises(ValueError, match="incomplete"):
        receiver.finish()
    receiver.abort()
    data[len(data) // 2] ^= 0xFF  # damaged in transit
    with follower.receive(info.meta) as damaged:
        damaged.write(0, bytes(data))
        with pytest.raises(StorageError, match="corrupt"):
            damaged.finish()
    assert follower.list() == []
    assert listing(tmp_path / "follower") == []


def test_reading_a_file_that_is_not_a_snapshot(tmp_path: Path) -> None:
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"not gzip at all")
    with pytest.raises(StorageError, match="corrupt") as caught:
        open_snapshot_file(plain)
    assert "\n" not in str(caught.value)
    other = tmp_path / "other.gz"
    other.write_bytes(gzip.compress(b"SNAP0002" + bytes(24) + b"data"))
    with pytest.raises(StorageError, match="bad magic"):
        open_snapshot_file(other)
    short = tmp_path / "short.gz"
    short.write_bytes(gzip.compress(b"SNAP0001"))
    with pytest.raises(StorageError, match="truncated"):
        open_snapshot_file(short)


def test_header_encoding() -> None:
    header = SnapshotHeader(1, 2, 3)
    assert header.encode() == b"SNAP0001" + (1).to_bytes(8, "little") + (2).to_bytes(
        8, "little"
    ) + (3).to_bytes(8, "little")
    assert SnapshotHeader.decode(header.encode()) == header
    with pytest.raises(ValueError):
        SnapshotHeader(2**63).encode()


def test_unreadable_metadata_is_ignored(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    good = make(store, 1, b"a")
    (tmp_path / "1-2-3").mkdir()
    (tmp_path / "1-2-3" / "meta.json").write_text("{not json")
    assert store.list() == [good]


def test_backups_keep_the_newest_snapshots_by_index_and_only_touch_their_own(
    tmp_path: Path,
) -> None:
    """``--backups N`` keeps the N newest of this node's backups, newest by
    snapshot index (copies run concurrently, so modification times can be out
    of order), and never removes another node's (``kvdb-10`` shares the
    ``kvdb-1`` prefix)."""
    store = SnapshotStore(tmp_path / "snaps", retain=5)
    infos = [make(store, index, app_bytes(1000, index)) for index in (10, 20, 30)]
    backups = tmp_path / "backups"
    for info in reversed(infos):  # the newest copy finishes first
        backup(store, info, backups, 2, "kvdb-1")
    other = backups / "kvdb-10-2-5-1700000000000.snap"
    other.write_bytes(b"node 10's")
    stray = backups / "kvdb-1-notes.snap"
    stray.write_bytes(b"not a backup")
    kept = backup(store, infos[2], backups, 2, "kvdb-1")  # the newest again: nothing else goes
    assert sorted(p.name for p in backups.iterdir()) == sorted(
        [f"kvdb-1-{infos[1].id}.snap", f"kvdb-1-{infos[2].id}.snap", other.name, stray.name]
    )
    assert kept.read_bytes() == store.path(infos[2].id).read_bytes()
