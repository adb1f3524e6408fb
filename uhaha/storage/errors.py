"""Turn low-level disk and SQLite failures into one-line :class:`StorageError` messages.

The operator sees these lines instead of a traceback, so each names the file
or directory involved and says what went wrong in words, not error codes.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from .base import StorageError

__all__ = ["check_writable_filesystem", "from_os_error", "from_sqlite_error"]

_UNWRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}


def from_os_error(
    exc: OSError, path: Path, doing: str, directory: Path | None = None
) -> StorageError:
    """Describe ``exc``, raised while ``doing`` something to ``path``.

    ``directory`` is the one to name when it turns out not to be writable
    (by default ``path`` itself if it is a directory, else its parent).
    """
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageError(f"disk full while {doing} {path}")
    if exc.errno in _UNWRITABLE:
        where = directory or (path if path.is_dir() else path.parent)
        return StorageError(f"data directory {where} is not writable ({reason})")
    if exc.errno == errno.EIO:
        return StorageError(f"I/O error while {doing} {path}")
    return StorageError(f"cannot finish {doing} {path}: {reason}")


def from_sqlite_error(exc: sqlite3.Error, path: Path, doing: str) -> StorageError:
    """Describe ``exc``, raised by SQLite while ``doing`` something to database ``path``."""
    # The extended code's low byte is the primary result code (sqlite.org/rescode.html).
    code = getattr(exc, "sqlite_errorcode", -1) & 0xFF
    name = getattr(exc, "sqlite_errorname", "") or type(exc).__name__
    if code == sqlite3.SQLITE_FULL:
        return StorageError(f"disk full while {doing} {path}")
    if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH):
        return StorageError(f"data directory {path.parent} is not writable ({exc})")
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return StorageError(f"log database {path} is corrupt: {exc}")
    if code == sqlite3.SQLITE_IOERR:
        # SQLite hides errno; the file system itself tells the two common causes apart.
        probed = _probe_filesystem(path, doing)
        return probed or StorageError(f"I/O error ({name}) while {doing} {path}")
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StorageError(f"log database {path} is locked by another process")
    if code == sqlite3.SQLITE_CANTOPEN:
        probed = _probe_filesystem(path, doing)
        return probed or StorageError(f"cannot open the log database {path} ({exc})")
    return StorageError(f"database error while {doing} {path}: {exc}")


def check_writable_filesystem(path: Path, doing: str) -> None:
    """Raise the clear error now if the file system holding ``path`` is read-only.

    SQLite silently opens a database read-only when it cannot open it for
    writing, and would only complain at the first write. (A full disk is
    not refused here: the log must stay readable to be inspected.)
    """
    error = _probe_filesystem(path, doing, full=False)
    if error is not None:
        raise error


def _probe_filesystem(path: Path, doing: str, *, full: bool = True) -> StorageError | None:
    """Explain a failure by a read-only or full file system, or return None.

    statvfs shows a read-only mount, but not ext4's "emergency_ro" state
    after an error (errors=remount-ro on recent kernels), and root ignores
    permission bits; so when statvfs sees nothing, create a probe file.
    """
    directory = path.parent
    try:
        st = os.statvfs(directory)
    except OSError:
        return None
    if st.f_flag & os.ST_RDONLY:
        return StorageError(f"data directory {directory} is not writable (read-only file system)")
    if full and st.f_bavail == 0:
        return StorageError(f"disk full while {doing} {path}")
    probe = directory / f".uhaha-probe-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return None
    except OSError as exc:
        if exc.errno in _UNWRITABLE:
            return StorageError(f"data directory {directory} is not writable ({exc.strerror})")
        if full and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return StorageError(f"disk full while {doing} {path}")
        return None
    os.close(fd)
    probe.unlink(missing_ok=True)
    return None
