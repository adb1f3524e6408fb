"""The data directory: layout, the lock against a second process, clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from uhaha.storage.base import StorageError
from uhaha.storage.datadir import DataDir

from .conftest import child_env
from .mounts import remount_read_only, tmpfs

HOLD_LOCK = textwrap.dedent(
    """
    import sys
    from uhaha.storage.datadir import DataDir
    d = DataDir.open(sys.argv[1], "ticket", "1")
    print("locked", flush=True)
    sys.stdin.read()  # hold the lock until the parent closes our stdin (or kills us)
    """
)

TRY_LOCK = textwrap.dedent(
    """
    import sys
    from uhaha.storage.base import StorageError
    from uhaha.storage.datadir import DataDir
    try:
        DataDir.open(sys.argv[1], "ticket", "1")
    except StorageError as exc:
        print(exc)
        sys.exit(1)
    print("locked")
    """
)


def test_layout_is_created_on_demand(tmp_path: Path) -> None:
    with DataDir.open(tmp_path / "data", "ticket", "1") as d:
        assert d.path == tmp_path / "data" / "ticket" / "1"
        assert d.path.is_dir()
        assert d.db_path == d.path / "raft.db"
        assert d.snapshot_path == d.path / "snapshots"
        assert (d.path / "LOCK").is_file()


def test_a_second_opener_in_this_process_is_refused(tmp_path: Path) -> None:
    first = DataDir.open(tmp_path, "ticket", "1")
    try:
        with pytest.raises(StorageError) as caught:
            DataDir.open(tmp_path, "ticket", "1")
        text = str(caught.value)
        assert (
            text == f"data directory {first.path} is in use by another process (pid {os.getpid()})"
        )
        with DataDir.open(tmp_path, "ticket", "2"):
            pass  # another node id is another directory
    finally:
        first.close()
    DataDir.open(tmp_path, "ticket", "1").close()  # released by close()


def test_a_second_process_is_refused_until_the_first_exits(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=child_env(),
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == b"locked\n"
        with pytest.raises(StorageError, match=f"in use by another process \\(pid {holder.pid}\\)"):
            DataDir.open(tmp_path, "ticket", "1")
        other = subprocess.run(
            [sys.executable, "-c", TRY_LOCK, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=child_env(),
        )
        assert other.returncode == 1
        assert other.stderr == ""  # a message, not a traceback
        assert other.stdout.strip() == (
            f"data directory {tmp_path / 'ticket' / '1'} is in use by another process"
            f" (pid {holder.pid})"
        )
    finally:
        holder.kill()  # the kernel drops a dead process's lock: nothing stale remains
        holder.communicate(timeout=10)
    DataDir.open(tmp_path, "ticket", "1").close()


@pytest.mark.parametrize("node_id", ["", "..", "../x", "a/b", "/etc", ".hidden", "x" * 200, "a\nb"])
def test_node_ids_must_be_safe_path_components(tmp_path: Path, node_id: str) -> None:
    with pytest.raises(StorageError, match="invalid node id") as caught:
        DataDir.open(tmp_path, "ticket", node_id)
    assert "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_directory_is_one_clear_line(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", "1m") as mnt:
        (mnt / "data").mkdir()
        remount_read_only(mnt)
        with pytest.raises(StorageError) as caught:
            DataDir.open(mnt / "data", "ticket", "1")
        assert str(caught.value) == (
            f"data directory {mnt / 'data' / 'ticket' / '1'} is not writable"
            " (Read-only file system)"
        )
