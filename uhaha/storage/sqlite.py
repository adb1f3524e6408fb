"""The default store: one SQLite database per node, written through aiosqlite.

Layout of the single table ``log`` (``idx`` is the rowid, so lookups and
range scans are B-tree seeks):

- ``idx >= 1`` above the compaction marker: the Raft entries;
- the smallest ``idx >= 0``: the compaction marker, whose ``term`` is the term
  of the last compacted entry (a new store has the marker ``(0, 0)``, as etcd's
  MemoryStorage keeps a dummy entry at its offset);
- ``idx = -1``: the hard state (``term``; ``data`` holds commit and vote).

The hard state shares the entries' table so that a whole Ready batch is one
``executemany`` statement. Every statement is a round trip to aiosqlite's
worker thread (tens of microseconds on a busy 2-core machine, a third of a
fast fsync), so a batch costs two round trips (the statement, the commit)
whether or not the hard state changed. Overwriting a conflicting suffix adds
one (the DELETE); that only happens after a leader change.

Durability: WAL journal with ``synchronous=FULL`` fsyncs the WAL at every
commit, so a batch is on disk when :meth:`SQLiteStorage.save` returns.
``nosync=True`` sets ``synchronous=OFF``, as uhaha's ``--nosync``: writes are
much faster, but a power failure or kernel crash can lose acknowledged
batches (a crash of the process alone loses nothing, as the data is already
in the kernel's page cache). Raft's safety argument assumes durable votes and
entries, so use it only where losing a node's recent state is acceptable.

Range reads for replication use a second connection: in WAL mode a reader
sees the last committed state and neither blocks nor waits for the writer.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import struct
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from uhaha.raft.messages import Entry, EntryKind, HardState

from .base import (
    LoadedState,
    LoadProgress,
    LogCompactedError,
    StorageError,
    check_batch,
)
from .errors import check_writable_filesystem, from_os_error, from_sqlite_error

__all__ = ["SQLiteStorage"]

log = logging.getLogger("uhaha.storage")

APPLICATION_ID = 0x75686861  # "uhha": marks a uhaha log database
SCHEMA_VERSION = 1
SQLITE_MAGIC = b"SQLite format 3\x00"
HARD_STATE_ROW = -1
_COMMIT = struct.Struct("<q")

_SCHEMA = f"""
BEGIN;
CREATE TABLE log (
    idx INTEGER PRIMARY KEY,
    term INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
INSERT INTO log VALUES ({HARD_STATE_ROW}, 0, 0, X'0000000000000000');
INSERT INTO log VALUES (0, 0, 0, X'');
PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {SCHEMA_VERSION};
COMMIT;
"""

_INSERT = "INSERT OR REPLACE INTO log (idx, term, kind, data) VALUES (?, ?, ?, ?)"
_MARKER = "SELECT idx, term FROM log WHERE idx >= 0 ORDER BY idx LIMIT 1"
_LAST = "SELECT idx FROM log ORDER BY idx DESC LIMIT 1"
# The marker bound is part of the same statement so that a compaction racing
# this read cannot make it return the marker row as if it were an entry.
_RANGE = (
    "SELECT idx, term, kind, data FROM log WHERE idx >= ? AND idx < ?"
    " AND idx > (SELECT idx FROM log WHERE idx >= 0 ORDER BY idx LIMIT 1) ORDER BY idx"
)
_READ_CHUNK = 256


def _hard_state_row(hs: HardState) -> tuple[int, int, int, bytes]:
    return (HARD_STATE_ROW, hs.term, 0, _COMMIT.pack(hs.commit) + hs.vote.encode())


def _decode_hard_state(term: int, data: bytes) -> HardState:
    try:
        (commit,) = _COMMIT.unpack_from(data)
        vote = data[_COMMIT.size :].decode()
    except (struct.error, UnicodeDecodeError) as exc:
        raise ValueError(f"bad hard state record: {exc}") from exc
    return HardState(term=term, vote=vote, commit=commit)


def _decode_entry(row: Any) -> Entry:
    return Entry(term=row[1], index=row[0], kind=EntryKind(row[2]), data=row[3])


def _check_header(path: Path) -> None:
    """Refuse a file that is not SQLite before SQLite itself gets a chance to misreport it."""
    try:
        with path.open("rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise from_os_error(exc, path, "reading") from exc
    if head and head != SQLITE_MAGIC:
        raise StorageError(f"log database {path} is corrupt: not a SQLite database (bad header)")


class SQLiteStorage:
    """A :class:`~uhaha.storage.base.Storage` in one SQLite file. Create with :meth:`open`."""

    def __init__(self, path: Path, writer: aiosqlite.Connection, reader: aiosqlite.Connection):
        self.path = path
        self._db = writer
        self._reader = reader
        self._lock = asyncio.Lock()
        self._failure: StorageError | None = None
        self._closed = False
        self._recovery: asyncio.Future[None] | None = None
        self._hard_state = HardState()
        self._first = 1
        self._last = 0
        self._compacted_term = 0

    # --- opening -------------------------------------------------------------

    @classmethod
    async def open(
        cls, path: str | Path, *, nosync: bool = False, check: bool = True
    ) -> SQLiteStorage:
        """Open (creating if needed) the database at ``path``.

        ``nosync`` (uhaha's ``--nosync``) stops syncing every write: faster
        writes, but acknowledged batches can be lost on power failure (see the
        module documentation). ``check`` runs SQLite's ``quick_check`` first,
        so that a damaged file is reported at start-up rather than in the
        middle of replication.
        """
        path = Path(path)
        _check_header(path)
        check_writable_filesystem(path, "opening the log database")
        writer: aiosqlite.Connection | None = None
        reader: aiosqlite.Connection | None = None
        try:
            # The writer lets the sqlite3 module open a transaction before the first
            # INSERT/UPDATE/DELETE (no extra round trip for BEGIN); commit() ends it.
            # The reader runs in autocommit mode and opens read transactions itself.
            writer = await aiosqlite.connect(path, isolation_level="DEFERRED")
            await _configure(writer, path, nosync=nosync, check=check)
            reader = await aiosqlite.connect(path, isolation_level=None)
            await reader.execute("PRAGMA query_only = ON")
            store = cls(path, writer, reader)
            await store._read_positions()
        except sqlite3.Error as exc:
            await _close_quietly(reader, writer)
            raise from_sqlite_error(exc, path, "opening the log database") from exc
        except BaseException:
            await _close_quietly(reader, writer)
            raise
        return store

    async def _read_positions(self) -> None:
        self._hard_state, self._first, self._last, self._compacted_term = await self._positions(
            self._db
        )

    async def _positions(self, conn: aiosqlite.Connection) -> tuple[HardState, int, int, int]:
        """The hard state, first index, last index and compacted term, as stored."""
        marker = await _first_row(conn, _MARKER)
        last = await _first_row(conn, _LAST)
        hs = await _first_row(conn, "SELECT term, data FROM log WHERE idx = ?", (HARD_STATE_ROW,))
        if marker is None or last is None or hs is None:
            raise StorageError(f"log database {self.path} is corrupt: bookkeeping rows missing")
        try:
            hard_state = _decode_hard_state(hs[0], hs[1])
        except ValueError as exc:
            raise StorageError(f"log database {self.path} is corrupt: {exc}") from exc
        return hard_state, marker[0] + 1, last[0], marker[1]

    # --- reading ---------------------------------------------------------------

    async def first_index(self) -> int:
        """See :meth:`uhaha.storage.base.LogStore.first_index`."""
        return self._first

    async def last_index(self) -> int:
        """See :meth:`uhaha.storage.base.LogStore.last_index`."""
        return self._last

    async def get_hard_state(self) -> HardState:
        """See :meth:`uhaha.storage.base.StableStore.get_hard_state`."""
        return self._hard_state

    async def get_entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """See :meth:`uhaha.storage.base.LogStore.get_entries`."""
        self._check_open()
        if lo < self._first:
            raise LogCompactedError(f"entry {lo} is compacted (first is {self._first})")
        hi = min(hi, self._last + 1)
        if lo >= hi:
            return []
        out: list[Entry] = []
        try:
            async with self._reader.execute(_RANGE, (lo, hi)) as cur:
                total = 0
                while rows := list(await cur.fetchmany(_READ_CHUNK)):
                    for row in rows:
                        entry = _decode_entry(row)
                        total += entry.size()
                        if max_bytes is not None and total > max_bytes and out:
                            return self._checked_run(out, lo)
                        out.append(entry)
        except sqlite3.Error as exc:
            raise from_sqlite_error(exc, self.path, "reading the log at") from exc
        except ValueError as exc:
            raise StorageError(f"log database {self.path} is corrupt: {exc}") from exc
        return self._checked_run(out, lo)

    def _checked_run(self, out: list[Entry], lo: int) -> list[Entry]:
        if not out or out[0].index != lo:
            # A compaction (or truncation) committed between the bounds check and the query.
            raise LogCompactedError(f"entry {lo} is no longer in the log")
        return out

    async def get_meta(self, key: str) -> bytes | None:
        """See :meth:`uhaha.storage.base.StableStore.get_meta`."""
        self._check_open()
        try:
            row = await _first_row(self._reader, "SELECT value FROM meta WHERE key = ?", (key,))
        except sqlite3.Error as exc:
            raise from_sqlite_error(exc, self.path, "reading metadata from") from exc
        return bytes(row[0]) if row is not None else None

    async def load(self, progress: LoadProgress | None = None) -> LoadedState:
        """See :meth:`uhaha.storage.base.Storage.load`."""
        self._check_open()
        try:
            # One read transaction: the marker and the entries come from the same state.
            await self._reader.execute("BEGIN")
            try:
                return await self._load(progress)
            finally:
                await self._reader.execute("COMMIT")
        except sqlite3.Error as exc:
            raise from_sqlite_error(exc, self.path, "loading the log from") from exc

    async def _load(self, progress: LoadProgress | None) -> LoadedState:
        hard_state, first, last, compacted_term = await self._positions(self._reader)
        entries: list[Entry] = []
        expected = first
        if progress is not None:
            progress(0, last - first + 1)
        async with self._reader.execute(
            "SELECT idx, term, kind, data FROM log WHERE idx >= ? ORDER BY idx", (first,)
        ) as cur:
            while rows := list(await cur.fetchmany(4096)):
                for row in rows:
                    if row[0] != expected:
                        raise StorageError(
                            f"log database {self.path} is corrupt: entry {expected} is missing"
                        )
                    try:
                        entries.append(_decode_entry(row))
                    except ValueError as exc:
                        raise StorageError(
                            f"log database {self.path} is corrupt: entry {row[0]}: {exc}"
                        ) from exc
                    expected += 1
                if progress is not None:
                    progress(len(entries), last - first + 1)
        return LoadedState(
            hard_state=hard_state,
            first_index=first,
            last_index=last,
            compacted_term=compacted_term,
            entries=entries,
        )

    # --- writing ---------------------------------------------------------------

    async def save(self, hard_state: HardState | None, entries: Sequence[Entry]) -> None:
        """See :meth:`uhaha.storage.base.Storage.save`."""
        if hard_state is None and not entries:
            return
        rows = [(e.index, e.term, int(e.kind), e.data) for e in entries]
        if hard_state is not None:
            rows.append(_hard_state_row(hard_state))
        first = entries[0].index if entries else 0
        last = entries[-1].index if entries else 0

        async def body() -> Callable[[], None]:
            check_batch(entries, self._first, self._last)
            if entries and first <= self._last:
                await self._db.execute("DELETE FROM log WHERE idx >= ?", (first,))
            await self._db.executemany(_INSERT, rows)

            def done() -> None:
                if entries:
                    self._last = last
                if hard_state is not None:
                    self._hard_state = hard_state

            return done

        await self._write("writing the log at", body)

    async def append(self, entries: Sequence[Entry]) -> None:
        """See :meth:`uhaha.storage.base.LogStore.append`."""
        await self.save(None, entries)

    async def set_hard_state(self, hard_state: HardState) -> None:
        """See :meth:`uhaha.storage.base.StableStore.set_hard_state`."""
        await self.save(hard_state, ())

    async def truncate_suffix(self, index: int) -> None:
        """See :meth:`uhaha.storage.base.LogStore.truncate_suffix`."""

        async def body() -> Callable[[], None]:
            if index < self._first:
                raise ValueError(f"cannot truncate at {index}: first index is {self._first}")
            await self._db.execute("DELETE FROM log WHERE idx >= ?", (index,))
            new_last = min(self._last, index - 1)

            def done() -> None:
                self._last = new_last

            return done

        await self._write("truncating the log at", body)

    async def compact(self, index: int, term: int | None = None) -> None:
        """See :meth:`uhaha.storage.base.LogStore.compact`."""

        async def body() -> Callable[[], None]:
            if index < self._first:
                return lambda: None
            stored: int | None = None
            if index <= self._last:
                row = await _first_row(self._db, "SELECT term FROM log WHERE idx = ?", (index,))
                stored = row[0] if row is not None else None
            if term is not None:
                new_term = term
            elif stored is not None:
                new_term = stored
            else:
                raise ValueError(f"compacting past the last index {self._last} needs a term")
            if stored == new_term:
                await self._db.execute("DELETE FROM log WHERE idx >= 0 AND idx < ?", (index,))
                await self._db.execute(
                    "UPDATE log SET kind = 0, data = X'' WHERE idx = ?", (index,)
                )
                new_last = self._last
            else:
                # The snapshot disagrees with (or lies beyond) our log: drop all of it.
                await self._db.execute("DELETE FROM log WHERE idx >= 0")
                await self._db.execute(_INSERT, (index, new_term, 0, b""))
                new_last = index

            def done() -> None:
                self._first, self._last = index + 1, new_last
                self._compacted_term = new_term

            return done

        await self._write("compacting the log at", body)

    async def set_meta(self, key: str, value: bytes) -> None:
        """See :meth:`uhaha.storage.base.StableStore.set_meta`."""

        async def body() -> Callable[[], None]:
            await self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value)
            )
            return lambda: None

        await self._write("writing metadata to", body)

    async def _write(self, doing: str, body: Callable[[], Awaitable[Callable[[], None]]]) -> None:
        """Run ``body`` and commit, as one transaction, one writer at a time.

        ``body`` queues its statements and returns what to change in the cached
        positions once the commit succeeded.
        """
        self._check_writable()
        await self._lock.acquire()
        handed_over = False
        try:
            self._check_writable()
            try:
                done = await body()
                await self._db.commit()
            except asyncio.CancelledError:
                # Statements already queued to aiosqlite's thread run anyway, so
                # how far this transaction got is unknown. A task finishes it and
                # frees the lock only then, so no other write can slip in between.
                self._recovery = asyncio.ensure_future(self._recover(doing))
                handed_over = True
                raise
            except sqlite3.Error as exc:
                raise await self._fail(from_sqlite_error(exc, self.path, doing)) from exc
            except OSError as exc:
                raise await self._fail(from_os_error(exc, self.path, doing)) from exc
            except BaseException:
                # A bad argument: nothing reached the disk.
                await self._rollback_quietly()
                raise
            done()
        finally:
            if not handed_over:
                self._lock.release()

    async def _recover(self, doing: str) -> None:
        """After a cancelled write: end its transaction and believe the database."""
        try:
            await self._rollback_quietly()  # runs after everything already queued
            await self._read_positions()
        except sqlite3.Error as exc:
            await self._fail(from_sqlite_error(exc, self.path, doing))
        except StorageError as exc:
            await self._fail(exc)
        finally:
            self._lock.release()

    async def _fail(self, error: StorageError) -> StorageError:
        """Remember the failure for good: no write is attempted after it."""
        self._failure = error
        log.error("%s", error)
        await self._rollback_quietly()
        return error

    async def _rollback_quietly(self) -> None:
        try:
            await self._db.rollback()
        except sqlite3.Error as exc:
            log.warning("rollback after a failed write of %s failed: %s", self.path, exc)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"log store {self.path} is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self._failure is not None:
            raise StorageError(
                f"log store {self.path} refuses writes after an earlier failure: {self._failure}"
            )

    @property
    def failed(self) -> StorageError | None:
        """The write failure that made this store refuse writes, if any."""
        return self._failure

    async def close(self) -> None:
        """See :meth:`uhaha.storage.base.Storage.close`."""
        if self._closed:
            return
        self._closed = True
        async with self._lock:
            await _close_quietly(self._reader, self._db)


async def _configure(db: aiosqlite.Connection, path: Path, *, nosync: bool, check: bool) -> None:
    """Set the journal and sync modes, check the file, and create or verify the schema."""
    mode = await _first_row(db, "PRAGMA journal_mode = WAL")
    if mode is None or mode[0] != "wal":
        raise StorageError(f"log database {path}: cannot switch to the WAL journal")
    await db.execute(f"PRAGMA synchronous = {'OFF' if nosync else 'FULL'}")
    # Without a limit the WAL keeps the size of its largest burst for ever.
    await db.execute("PRAGMA journal_size_limit = 67108864")
    if check:
        result = await _first_row(db, "PRAGMA quick_check(1)")
        if result is None or result[0] != "ok":
            problem = result[0] if result is not None else "no answer from quick_check"
            raise StorageError(f"log database {path} is corrupt: {problem}")
    version = await _pragma_int(db, "user_version")
    app_id = await _pragma_int(db, "application_id")
    if version == 0 and app_id == 0:
        if await _first_row(db, "SELECT name FROM sqlite_master") is not None:
            raise StorageError(f"{path} is a SQLite database, but not a uhaha log")
        await db.executescript(_SCHEMA)
    elif app_id != APPLICATION_ID:
        raise StorageError(f"{path} is a SQLite database, but not a uhaha log")
    elif version != SCHEMA_VERSION:
        raise StorageError(f"log database {path} has schema version {version}, expected 1")


async def _first_row(conn: aiosqlite.Connection, sql: str, params: tuple[Any, ...] = ()) -> Any:
    """The first row of a query's result, or None."""
    for row in await conn.execute_fetchall(sql, params):
        return row
    return None


async def _pragma_int(conn: aiosqlite.Connection, name: str) -> int:
    row = await _first_row(conn, f"PRAGMA {name}")
    return int(row[0]) if row is not None else 0


async def _close_quietly(*conns: aiosqlite.Connection | None) -> None:
    for conn in conns:
        if conn is None:
            continue
        try:
            await conn.close()
        except sqlite3.Error as exc:
            log.warning("closing a log database connection failed: %s", exc)
