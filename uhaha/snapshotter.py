"""Writing snapshots without stalling the node, restoring them, backing them up.

A snapshot must be the state at one log index, yet serializing, compressing
and writing a large state takes seconds, during which the node must keep
answering heartbeats and clients. Like Redis's BGSAVE, the node forks: the
child process gets a copy-on-write image of the state at that instant,
writes the file into the snapshot store and exits; the parent goes on
applying entries and only waits (in a thread) for the child to finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

from .raft import SnapshotMeta
from .storage import (
    SnapshotHeader,
    SnapshotInfo,
    SnapshotStore,
    StorageError,
    open_snapshot_file,
)

__all__ = ["backup", "restore_file", "write_snapshot"]

log = logging.getLogger("uhaha.snapshot")

Dump = Callable[[], tuple[SnapshotHeader, bytes]]
"""Returns the machine's header and the application's snapshot bytes."""


async def write_snapshot(
    store: SnapshotStore, meta: SnapshotMeta, dump: Dump, *, fork: bool = True
) -> SnapshotInfo:
    """Write a snapshot of the state ``dump`` sees now, described by ``meta``."""
    if not fork or not hasattr(os, "fork"):
        header, data = dump()
        return await asyncio.to_thread(_write, store, meta, header, data)
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about forking a process with threads (aiosqlite
        # and NTP run some): the child only serializes and writes a file,
        # touching no lock another thread could hold, and leaves with _exit.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: no event loop, no logging, exit without cleanup
        status = 1
        try:
            os.close(read_end)
            header, data = dump()
            _write(store, meta, header, data)
            status = 0
        except BaseException as e:
            with contextlib.suppress(BaseException):
                os.write(write_end, f"{type(e).__name__}: {e}".encode()[:2000])
        finally:
            os._exit(status)
    os.close(write_end)
    try:
        _, status = await asyncio.to_thread(os.waitpid, pid, 0)
        message = os.read(read_end, 4096).decode(errors="replace")
    finally:
        os.close(read_end)
    if os.waitstatus_to_exitcode(status) != 0:
        raise StorageError(f"writing snapshot {meta.index} failed: {message or 'child crashed'}")
    info = store.find(meta.index, meta.term)
    if info is None:
        raise StorageError(f"snapshot {meta.index} was written but cannot be found")
    return info


def _write(
    store: SnapshotStore, meta: SnapshotMeta, header: SnapshotHeader, data: bytes
) -> SnapshotInfo:
    with store.create(meta.index, meta.term, meta.config, header) as writer:
        view = memoryview(data)
        for start in range(0, len(view), 1 << 20):
            writer.write(view[start : start + (1 << 20)])
        return writer.commit()


def backup(
    store: SnapshotStore, info: SnapshotInfo, directory: Path, keep: int, prefix: str
) -> Path:
    """Copy a snapshot file into ``directory`` atomically; keep the newest ``keep``."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{prefix}-{info.id}.snap"
    tmp = directory / f".{name}.tmp"
    with store.path(info.id).open("rb") as src, tmp.open("wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
        dst.flush()
        os.fsync(dst.fileno())
    final = directory / name
    os.rename(tmp, final)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    ours = sorted(
        (key, p) for p in directory.glob(f"{prefix}-*.snap") if (key := _backup_key(p, prefix))
    )
    for _, old in ours[:-keep] if keep > 0 else []:
        with contextlib.suppress(OSError):
            old.unlink()
    return final


def _backup_key(path: Path, prefix: str) -> tuple[int, int, int] | None:
    """(index, term, time) of the snapshot a backup file holds, from its name
    ``<prefix>-<term>-<index>-<ms>.snap``; None if the name is not one of this
    node's (another node's prefix may start with ours: ``kvdb-1`` and
    ``kvdb-10`` sharing a directory). Backups are ordered by this, not by
    modification time: copies run concurrently and may finish out of order."""
    parts = path.name[len(prefix) + 1 : -len(".snap")].split("-")
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in parts):
        return None
    term, index, ms = (int(p) for p in parts)
    return index, term, ms


def restore_file(
    store: SnapshotStore, path: str, meta: SnapshotMeta, progress: Callable[[int, int], None]
) -> SnapshotInfo:
    """Copy a uhaha snapshot file (``--restore``) into ``store`` as ``meta``."""
    total = os.path.getsize(path)
    with (
        open_snapshot_file(path) as reader,
        store.create(meta.index, meta.term, meta.config, reader.header) as writer,
    ):
        for chunk in reader.chunks():
            writer.write(chunk)
            progress(min(reader.position, total), total)
        return writer.commit()
