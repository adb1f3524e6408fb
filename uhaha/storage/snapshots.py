"""Snapshot files under the node's data directory, as uhaha lays them out.

Each snapshot is a directory ``snapshots/<id>/`` holding ``state.bin`` (the
file format of :mod:`.snapfile`) and ``meta.json`` (index, term,
configuration, size, timestamp). A snapshot is staged in a ``.tmp-*``
directory, its files fsynced, then renamed into place and the parent
directory fsynced: after a crash it is either complete or absent, and
leftover staging directories are removed when the store is opened.

Ids are generated here (``<term>-<index>-<unix ms>``) and every id that comes
from outside is checked against that shape and against the snapshots that
exist before it touches a path, so ``RAFT SNAPSHOT READ ../../etc/passwd``
reads nothing. All I/O is blocking; from the event loop, call these methods
in a thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from uhaha.raft.messages import Configuration, Member, SnapshotMeta

from .base import StorageError
from .errors import from_os_error
from .snapfile import SnapshotFileWriter, SnapshotHeader, SnapshotReader, verify_snapshot_file

__all__ = [
    "SnapshotInfo",
    "SnapshotNotFoundError",
    "SnapshotReceiver",
    "SnapshotStore",
    "SnapshotWriter",
]

log = logging.getLogger("uhaha.storage")

STATE_FILE = "state.bin"
META_FILE = "meta.json"
_STAGING_PREFIX = ".tmp-"
_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}-[0-9]{1,20}")


class SnapshotNotFoundError(LookupError):
    """No snapshot has this id (or the id is not a snapshot id at all)."""


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """One stored snapshot. ``size`` is the file's byte length; ``timestamp`` is unix ms."""

    id: str
    index: int
    term: int
    config: Configuration
    size: int
    timestamp: int

    @property
    def meta(self) -> SnapshotMeta:
        """The description the Raft core works with."""
        return SnapshotMeta(index=self.index, term=self.term, config=self.config, size=self.size)

    def to_json(self) -> dict[str, Any]:
        """The contents of ``meta.json``."""
        members = [
            {"id": m.id, "address": m.address, "voter": m.voter} for m in self.config.members
        ]
        return {
            "id": self.id,
            "index": self.index,
            "term": self.term,
            "size": self.size,
            "timestamp": self.timestamp,
            "config": members,
        }

    @classmethod
    def from_json(cls, obj: Any) -> SnapshotInfo:
        """Parse ``meta.json`` contents (ValueError, KeyError or TypeError when malformed)."""
        members = tuple(
            Member(str(m["id"]), str(m["address"]), bool(m["voter"])) for m in obj["config"]
        )
        return cls(
            id=str(obj["id"]),
            index=int(obj["index"]),
            term=int(obj["term"]),
            config=Configuration(members),
            size=int(obj["size"]),
            timestamp=int(obj["timestamp"]),
        )


def _sort_key(info: SnapshotInfo) -> tuple[int, int, int, str]:
    return (info.index, info.term, info.timestamp, info.id)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SnapshotStore:
    """The snapshots of one node, newest ``retain`` kept."""

    def __init__(
        self, directory: str | Path, *, retain: int = 2, clock: Callable[[], float] = time.time
    ) -> None:
        if retain < 1:
            raise ValueError("retain must be at least 1")
        self.directory = Path(directory)
        self.retain = retain
        self._clock = clock
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._remove_staging()
        except OSError as exc:
            raise from_os_error(exc, self.directory, "preparing the snapshot directory") from exc

    def _remove_staging(self) -> None:
        """Delete what a crash left half-written (staging) or half-deleted (pruning)."""
        for entry in os.scandir(self.directory):
            if entry.name.startswith(_STAGING_PREFIX):
                shutil.rmtree(entry.path, ignore_errors=True)

    # --- lookups ---------------------------------------------------------------

    def list(self) -> list[SnapshotInfo]:
        """Every complete snapshot, newest (highest index) first."""
        found = []
        try:
            names = [e.name for e in os.scandir(self.directory) if _ID.fullmatch(e.name)]
        except OSError as exc:
            raise from_os_error(exc, self.directory, "listing snapshots in") from exc
        for name in names:
            info = self._read_info(name)
            if info is not None:
                found.append(info)
        return sorted(found, key=_sort_key, reverse=True)

    def _read_info(self, name: str) -> SnapshotInfo | None:
        path = self.directory / name / META_FILE
        try:
            info = SnapshotInfo.from_json(json.loads(path.read_bytes()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring snapshot %s: unreadable %s (%s)", name, META_FILE, exc)
            return None
        return info if info.id == name else None

    def latest(self) -> SnapshotInfo | None:
        """The newest snapshot, if any."""
        snaps = self.list()
        return snaps[0] if snaps else None

    def find(self, index: int, term: int) -> SnapshotInfo | None:
        """The newest snapshot of the state at ``index`` in ``term``, if any."""
        for info in self.list():
            if info.index == index and info.term == term:
                return info
        return None

    def get(self, snapshot_id: str) -> SnapshotInfo:
        """The snapshot with this id; :class:`SnapshotNotFoundError` for anything else."""
        # Check the shape before building a path: the id may come from a client.
        if not isinstance(snapshot_id, str) or not _ID.fullmatch(snapshot_id):
            raise SnapshotNotFoundError(f"no snapshot with id {str(snapshot_id)[:80]!r}")
        info = self._read_info(snapshot_id)
        if info is None:
            raise SnapshotNotFoundError(f"no snapshot with id {snapshot_id!r}")
        return info

    def path(self, snapshot_id: str) -> Path:
        """The path of the snapshot's ``state.bin`` (``RAFT SNAPSHOT FILE id``)."""
        return self.directory / self.get(snapshot_id).id / STATE_FILE

    def read(self, snapshot_id: str, offset: int, size: int) -> bytes:
        """Up to ``size`` raw file bytes from ``offset`` (fewer at the end of the file)."""
        if offset < 0 or size < 0:
            raise ValueError("offset and size must not be negative")
        path = self.path(snapshot_id)
        try:
            with path.open("rb") as f:
                f.seek(offset)
                return f.read(size)
        except FileNotFoundError as exc:
            raise SnapshotNotFoundError(f"no snapshot with id {snapshot_id!r}") from exc
        except OSError as exc:
            raise from_os_error(exc, path, "reading snapshot") from exc

    def open(self, snapshot_id: str) -> SnapshotReader:
        """Read a snapshot's header and application bytes."""
        return SnapshotReader(self.path(snapshot_id))

    # --- writing ---------------------------------------------------------------

    def create(
        self,
        index: int,
        term: int,
        config: Configuration,
        header: SnapshotHeader,
        *,
        compresslevel: int = 6,
    ) -> SnapshotWriter:
        """Start a snapshot of the state at ``index``; write app bytes, then commit."""
        return SnapshotWriter(
            self,
            self._stage(),
            index=index,
            term=term,
            config=config,
            header=header,
            compresslevel=compresslevel,
        )

    def receive(self, meta: SnapshotMeta) -> SnapshotReceiver:
        """Start receiving a snapshot file of ``meta.size`` bytes from the leader."""
        return SnapshotReceiver(self, self._stage(), meta)

    def _stage(self) -> Path:
        staging = self.directory / f"{_STAGING_PREFIX}{uuid.uuid4().hex}"
        try:
            staging.mkdir()
        except OSError as exc:
            raise from_os_error(
                exc, staging, "creating the snapshot staging directory", self.directory
            ) from exc
        return staging

    def _publish(self, staging: Path, meta: SnapshotMeta) -> SnapshotInfo:
        """Make a staged snapshot appear atomically, then prune old ones."""
        now = int(self._clock() * 1000)
        snap_id = f"{meta.term}-{meta.index}-{now}"
        while (self.directory / snap_id).exists():
            now += 1  # two snapshots of one state in one millisecond
            snap_id = f"{meta.term}-{meta.index}-{now}"
        info = SnapshotInfo(snap_id, meta.index, meta.term, meta.config, meta.size, now)
        try:
            with (staging / META_FILE).open("wb") as f:
                f.write(json.dumps(info.to_json(), indent=1).encode())
                f.flush()
                os.fsync(f.fileno())
            _fsync_dir(staging)
            os.rename(staging, self.directory / snap_id)
            _fsync_dir(self.directory)
        except OSError as exc:
            raise from_os_error(
                exc, self.directory / snap_id, "publishing snapshot", self.directory
            ) from exc
        self._prune()
        return info

    def _prune(self) -> None:
        for old in self.list()[self.retain :]:
            # Rename first: a crash mid-delete must not leave a listed, half-deleted snapshot.
            doomed = self.directory / f"{_STAGING_PREFIX}{uuid.uuid4().hex}"
            try:
                os.rename(self.directory / old.id, doomed)
                shutil.rmtree(doomed)
            except OSError as exc:
                log.warning("could not remove old snapshot %s: %s", old.id, exc)


class _Staged:
    """A snapshot file being written in a staging directory."""

    def __init__(self, store: SnapshotStore, staging: Path) -> None:
        self._store = store
        self._staging = staging
        self._path = staging / STATE_FILE
        self._done = False
        try:
            self._file: BinaryIO = self._path.open("wb")
        except OSError as exc:
            self.abort()
            raise from_os_error(exc, self._path, "writing snapshot", store.directory) from exc

    def _fail(self, exc: OSError) -> StorageError:
        self.abort()
        return from_os_error(exc, self._path, "writing snapshot", self._store.directory)

    def _check_active(self) -> None:
        if self._done:
            raise RuntimeError("snapshot already committed or aborted")

    def _sync_and_close(self) -> int:
        self._file.flush()
        os.fsync(self._file.fileno())
        size = self._file.tell()
        self._file.close()
        return size

    def abort(self) -> None:
        """Discard the partial snapshot. Safe to call more than once."""
        if self._done:
            return
        self._done = True
        if hasattr(self, "_file"):
            self._file.close()
        shutil.rmtree(self._staging, ignore_errors=True)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.abort()  # after a commit this does nothing


class SnapshotWriter(_Staged):
    """Streams a new snapshot to disk. Use as a context manager; :meth:`commit` at the end."""

    def __init__(
        self,
        store: SnapshotStore,
        staging: Path,
        *,
        index: int,
        term: int,
        config: Configuration,
        header: SnapshotHeader,
        compresslevel: int,
    ) -> None:
        super().__init__(store, staging)
        self._meta = SnapshotMeta(index=index, term=term, config=config)
        try:
            self._writer = SnapshotFileWriter(self._file, header, compresslevel)
        except OSError as exc:
            raise self._fail(exc) from exc

    def __enter__(self) -> SnapshotWriter:
        return self

    @property
    def app_size(self) -> int:
        """Application bytes written so far."""
        return self._writer.app_size

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append application bytes."""
        self._check_active()
        try:
            return self._writer.write(data)
        except OSError as exc:
            raise self._fail(exc) from exc

    def commit(self) -> SnapshotInfo:
        """Finish the file, make it durable and visible; returns the new snapshot."""
        self._check_active()
        try:
            self._writer.finish()
            size = self._sync_and_close()
        except OSError as exc:
            raise self._fail(exc) from exc
        meta = SnapshotMeta(self._meta.index, self._meta.term, self._meta.config, size)
        try:
            info = self._store._publish(self._staging, meta)
        except StorageError:
            self.abort()
            raise
        self._done = True
        return info


class SnapshotReceiver(_Staged):
    """Assembles a snapshot file sent in chunks (InstallSnapshot, Raft paper section 7).

    Chunks arrive at increasing offsets. Nothing is fsynced until
    :meth:`finish`: a restarted follower discards partial transfers (the
    staging directory) and the leader starts again from offset 0.
    """

    def __init__(self, store: SnapshotStore, staging: Path, meta: SnapshotMeta) -> None:
        if meta.size < 0:
            raise ValueError("snapshot size must not be negative")
        super().__init__(store, staging)
        self.meta = meta
        self.received = 0
        """Bytes received so far, in order: the next offset expected."""

    def __enter__(self) -> SnapshotReceiver:
        return self

    def write(self, offset: int, data: bytes) -> int:
        """Store the chunk at ``offset``; returns the next offset expected.

        A chunk already received (a retransmission) is ignored; a chunk past
        the next expected offset is ignored too, and the returned offset tells
        the leader where to resume.
        """
        self._check_active()
        end = offset + len(data)
        if offset < 0 or end > self.meta.size:
            raise ValueError(
                f"chunk [{offset}, {end}) outside the snapshot's {self.meta.size} bytes"
            )
        if offset > self.received or end <= self.received:
            return self.received
        try:
            self._file.write(data[self.received - offset :])
        except OSError as exc:
            raise self._fail(exc) from exc
        self.received = end
        return self.received

    def finish(self) -> SnapshotInfo:
        """Check the complete file, make it durable and visible; returns the new snapshot."""
        self._check_active()
        if self.received != self.meta.size:
            raise ValueError(f"snapshot incomplete: {self.received} of {self.meta.size} bytes")
        try:
            self._sync_and_close()
        except OSError as exc:
            raise self._fail(exc) from exc
        try:
            # A damaged transfer must not replace the log; gzip's CRC tells.
            verify_snapshot_file(self._path)
            info = self._store._publish(self._staging, self.meta)
        except StorageError:
            self.abort()
            raise
        self._done = True
        return info
