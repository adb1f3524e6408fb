"""The node's data directory: ``<dir>/<app name>/<node id>/``, as uhaha lays it out.

It holds the log database (``raft.db``), the snapshots (``snapshots/``) and
a ``LOCK`` file. The lock is an exclusive ``flock`` held for as long as the
node runs, so a second process started with the same ``-d`` and ``-n``
stops with a clear error instead of corrupting the first one's log. The
kernel drops the lock when the process dies, so a crash leaves nothing stale.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from types import TracebackType

from ..names import check_name
from .base import StorageError
from .errors import from_os_error

__all__ = ["DataDir"]

DB_FILE = "raft.db"
SNAPSHOT_DIR = "snapshots"
LOCK_FILE = "LOCK"


def _check_name(kind: str, name: str) -> None:
    # Node ids and app names become path components: no separators, no "..".
    try:
        check_name(kind, name)
    except ValueError as e:
        raise StorageError(str(e)) from None


def _make_dirs(path: Path) -> None:
    """Create ``path`` and missing parents, fsyncing each parent so new entries persist."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir(exist_ok=True)
        fd = os.open(d.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class DataDir:
    """A locked node directory. Open with :meth:`open`; :meth:`close` releases the lock."""

    def __init__(self, path: Path, lock_fd: int) -> None:
        self.path = path
        self._lock_fd: int | None = lock_fd

    @classmethod
    def open(cls, base: str | Path, app: str, node_id: str) -> DataDir:
        """Create (if needed) and lock ``<base>/<app>/<node_id>``."""
        _check_name("app name", app)
        _check_name("node id", node_id)
        path = Path(base) / app / node_id
        try:
            _make_dirs(path)
        except OSError as exc:
            raise from_os_error(exc, path, "creating the data directory", path) from exc
        lock = path / LOCK_FILE
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise from_os_error(exc, path, "creating the lock file in", path) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                by = f" (pid {holder})" if holder else ""
                raise StorageError(
                    f"data directory {path} is in use by another process{by}"
                ) from exc
            raise from_os_error(exc, path, "locking the data directory") from exc
        try:
            # Only a hint for the error message above; the flock is what protects.
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            os.close(fd)
            raise from_os_error(exc, path, "writing the lock file in", path) from exc
        return cls(path, fd)

    @property
    def db_path(self) -> Path:
        """The log database."""
        return self.path / DB_FILE

    @property
    def snapshot_path(self) -> Path:
        """The snapshot directory (created by the snapshot store)."""
        return self.path / SNAPSHOT_DIR

    def close(self) -> None:
        """Release the lock. Safe to call more than once."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def __enter__(self) -> DataDir:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
