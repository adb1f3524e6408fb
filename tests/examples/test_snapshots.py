"""Snapshots end to end on real kvdb clusters: taken under continuous writes,
compacting the log; a wiped node catching up through InstallSnapshot; a
restore from a file read with RAFT SNAPSHOT READ; path traversal refused."""

from __future__ import annotations

import base64
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
import redis

from tests.cluster.harness import ROOT, Proc, ProcCluster, wait_for

KVDB = [sys.executable, str(ROOT / "examples" / "kvdb.py")]
FLAGS = ["--snapshot-every", "200", "--openreads"]


def dump(p: Proc) -> dict[str, str]:
    """Every key and value this node holds (an --openreads read on any node)."""
    with p.client() as r:
        keys = r.execute_command("KEYS", "*")
        pipe = r.pipeline(transaction=False)
        for k in keys:
            pipe.execute_command("GET", k)
        values = pipe.execute()
    return dict(zip(keys, values, strict=True))


def writes(p: Proc, start: int, count: int) -> None:
    with p.client() as r:
        pipe = r.pipeline(transaction=False)
        for i in range(start, start + count):
            pipe.execute_command("SET", f"key:{i}", f"value-{i}")
        assert all(x in ("OK", True) for x in pipe.execute())


def test_snapshots_under_writes_and_a_wiped_node_catches_up(tmp_path: Path) -> None:
    c = ProcCluster(tmp_path, program=KVDB)
    try:
        c.start(3, extra=FLAGS)
        leader = c.wait_leader()
        stop = threading.Event()
        errors: list[BaseException] = []

        def background() -> None:
            n = 10_000
            try:
                while not stop.is_set():
                    writes(leader, n, 50)
                    n += 50
            except BaseException as e:
                errors.append(e)

        writer = threading.Thread(target=background)
        writer.start()
        try:
            writes(leader, 0, 1500)
            # Every node snapshots on its own schedule and compacts its log.
            for p in c.procs.values():
                wait_for(lambda p=p: len(p.call("RAFT", "SNAPSHOT", "LIST")) >= 1)  # type: ignore[misc]
                wait_for(lambda p=p: int(p.info()["first_index"]) > 1, 60, "compaction")  # type: ignore[misc]
        finally:
            stop.set()
            writer.join(30)
        assert not errors, errors
        # Wipe a follower and bring it back as a new member: it gets the data
        # through a snapshot (the log before it is gone), then the tail.
        victim = next(p for p in c.live() if p is not leader)
        victim.kill()
        assert leader.call("RAFT", "SERVER", "REMOVE", victim.node_id) == "OK"
        fresh = c.add("9", join=leader.address, extra=FLAGS)
        c.wait_members(3)
        writes(leader, 5000, 100)
        leader.call("BARRIER")
        target = int(leader.info()["commit_index"])
        wait_for(lambda: int(fresh.info()["applied_index"]) >= target, timeout=30, what="catch up")
        assert int(fresh.info()["snapshot_index"]) > 0
        assert dump(fresh) == dump(leader)
        assert "installed snapshot" in fresh.log()
    finally:
        print(c.logs())
        c.close()


def test_restore_from_a_snapshot_read_over_resp(tmp_path: Path) -> None:
    c = ProcCluster(tmp_path / "a", program=KVDB)
    try:
        first = c.start(1, extra=FLAGS)
        writes(first, 0, 300)
        first.call("SET", "expiring", "soon", "EX", "3600")
        # Before the snapshot: the machine time it holds is at least this.
        machine = first.call("MACHINE")
        snap_id = first.call("RAFT", "SNAPSHOT", "NOW")
        before = dump(first)
        with redis.Redis(port=first.port, protocol=2) as raw:  # bytes, not text
            data = raw.execute_command("RAFT", "SNAPSHOT", "READ", snap_id)
        assert data[:2] == b"\x1f\x8b"  # gzip
        # Large files are read in ranges; the pieces make the same file.
        with redis.Redis(port=first.port, protocol=2) as raw:
            head = raw.execute_command("RAFT", "SNAPSHOT", "READ", snap_id, "RANGE", "0", "100")
            tail = raw.execute_command(
                "RAFT", "SNAPSHOT", "READ", snap_id, "RANGE", "100", str(len(data) + 50)
            )
        assert head + tail == data
        via_http = httpx.get(f"http://{first.address}/snapshots/{snap_id}").content
        assert via_http == data
        path = first.call("RAFT", "SNAPSHOT", "FILE", snap_id)
        assert Path(path).is_absolute() and Path(path).read_bytes() == data
    finally:
        c.close()
    file = tmp_path / "backup.snap"
    file.write_bytes(data)
    r = ProcCluster(tmp_path / "b", program=KVDB)
    try:
        restored = r.add("1", extra=["--restore", str(file), *FLAGS])
        r.wait_leader([restored])
        assert dump(restored) == before
        after = restored.call("MACHINE")
        assert after["start"] == machine["start"]  # the replicated clock came along
        assert after["now"] >= machine["now"]
        # Two more nodes join the restored one and get the same data.
        for nid in ("2", "3"):
            r.add(nid, join=restored.address, extra=FLAGS)
        r.wait_members(3)
        restored.call("BARRIER")
        for p in r.live():
            wait_for(lambda p=p: dump(p) == before, what=f"node {p.node_id}")  # type: ignore[misc]
    finally:
        print(r.logs())
        r.close()


@pytest.mark.parametrize("bad", ["../../etc/passwd", "/etc/passwd", "..", "", "1-1-x/../../x"])
def test_snapshot_ids_cannot_escape_the_data_directory(tmp_path: Path, bad: str) -> None:
    c = ProcCluster(tmp_path, program=KVDB)
    try:
        p = c.start(1)
        for sub in ("FILE", "READ"):
            out = subprocess.run(
                ["redis-cli", "-p", str(p.port), "RAFT", "SNAPSHOT", sub, bad],
                capture_output=True, text=True, timeout=10, check=True,
            )  # fmt: skip
            assert out.stdout.strip() == "ERR snapshot not found"
        quoted = base64.urlsafe_b64encode(bad.encode()).decode() if bad else "x"
        for path in (f"/snapshots/{quoted}", "/snapshots/..%2F..%2Fetc%2Fpasswd"):
            assert httpx.get(f"http://{p.address}{path}").status_code == 404
    finally:
        c.close()


def test_backups_are_copied_kept_and_restorable(tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    c = ProcCluster(tmp_path / "a", program=KVDB)
    try:
        first = c.start(1, extra=["--backup-dir", str(backups), "--backups", "2"])
        ids = []
        for n in range(3):
            writes(first, n * 100, 100)
            ids.append(first.call("RAFT", "SNAPSHOT", "NOW"))
        # Backups are copied after the snapshot is taken: wait for the last
        # one's (two files could also be the first two, the third not copied yet).
        newest = backups / f"kvdb-1-{ids[-1]}.snap"
        wait_for(lambda: f"backed up snapshot {ids[-1]}" in first.log(), what="the third backup")
        assert sorted(backups.glob("kvdb-1-*.snap")) == sorted(
            backups / f"kvdb-1-{i}.snap" for i in ids[1:]
        )  # the oldest was removed: two are kept
        expected = dump(first)
        assert not list(backups.glob(".*.tmp")), "no temporary files left behind"
    finally:
        c.close()
    r = ProcCluster(tmp_path / "b", program=KVDB)
    try:
        restored = r.add("1", extra=["--restore", str(newest)])
        r.wait_leader([restored])
        assert dump(restored) == expected
    finally:
        r.close()
