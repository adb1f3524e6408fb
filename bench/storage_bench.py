"""Throughput of the SQLite log store beside the raw fsync rate of the same disk.

Run:  python bench/storage_bench.py [--dir DIR] [--seconds 2] [--entry-bytes 100]

Prints a Markdown table: appended entries per second for batches of 1, 16
and 256 entries, synced (``synchronous=FULL``) and ``nosync``, next to the
rate of ``write(100 bytes) + fsync`` on a plain file in the same directory,
both appending (the file grows, like a fresh log) and overwriting in place
(what SQLite does once its WAL file is reused after a checkpoint).

The disk of a shared machine drifts (other processes, the host), so each
synced store measurement is interleaved with raw measurements in short
slices and compared with the raw rates of the same slices. Only the time
spent inside ``save`` is counted, not building the entries.

"cold" rows start from a new database, whose WAL file grows with every
commit (each fsync also commits file-size metadata). "warm" rows first write
enough to pass SQLite's first automatic checkpoint (1000 pages), after which
the WAL file is reused from its start without growing: the steady state of
a running node. The last row runs the same inserts through the blocking
sqlite3 module, without aiosqlite and asyncio: what SQLite itself costs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from uhaha.raft.messages import Entry, HardState
from uhaha.storage.sqlite import SQLiteStorage

SLICE = 0.25  # seconds per interleaved slice


class RawFsync:
    """``write(size bytes) + fsync`` on one file, appending or overwriting offset 0."""

    def __init__(self, path: Path, size: int, *, append: bool) -> None:
        self.path = path
        self.append = append
        self.payload = b"x" * size
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.count = 0
        self.busy = 0.0

    def run(self, seconds: float) -> None:
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            if self.append:
                os.write(self.fd, self.payload)
            else:
                os.pwrite(self.fd, self.payload, 0)
            os.fsync(self.fd)
            self.count += 1
        self.busy += time.perf_counter() - start

    @property
    def rate(self) -> float:
        return self.count / self.busy

    def close(self) -> None:
        os.close(self.fd)
        self.path.unlink()


@dataclass
class StoreRun:
    """Appends batches to one store and accounts for the time inside ``save``."""

    store: SQLiteStorage
    batch: int
    payload: bytes
    hard_state: bool
    index: int = 0
    busy: float = 0.0

    async def run(self, seconds: float) -> None:
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            entries = [Entry(1, self.index + n + 1, data=self.payload) for n in range(self.batch)]
            hs = HardState(1, "1", self.index) if self.hard_state else None
            t0 = time.perf_counter()
            await self.store.save(hs, entries)
            self.busy += time.perf_counter() - t0
            self.index += self.batch

    @property
    def rate(self) -> float:
        return self.index / self.busy


@dataclass
class DirectRun:
    """The same inserts through the plain, blocking sqlite3 module: SQLite's own ceiling."""

    conn: sqlite3.Connection
    batch: int
    payload: bytes
    index: int = 0
    busy: float = 0.0

    @classmethod
    def open(cls, db: Path, batch: int, payload: bytes) -> DirectRun:
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("CREATE TABLE log (idx INTEGER PRIMARY KEY, term, kind, data)")
        conn.commit()
        return cls(conn, batch, payload)

    def save(self, count: int) -> None:
        rows = [(self.index + n + 1, 1, 0, self.payload) for n in range(count)]
        self.conn.executemany("INSERT OR REPLACE INTO log VALUES (?, ?, ?, ?)", rows)
        self.conn.commit()
        self.index += count

    async def run(self, seconds: float) -> None:
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            self.save(self.batch)
        self.busy += time.perf_counter() - start


async def warm_up(store: SQLiteStorage, size: int) -> int:
    """Write about 1,500 pages so that the WAL has been checkpointed and reused once."""
    payload = os.urandom(size)
    index = 0
    while index * (size + 30) < 1500 * 4096:
        await store.save(None, [Entry(1, index + n + 1, data=payload) for n in range(256)])
        index += 256
    return index


async def measure(
    directory: Path,
    seconds: float,
    size: int,
    batch: int,
    *,
    nosync: bool,
    hard_state: bool,
    warm: bool,
    direct: bool = False,
) -> tuple[float, float, float]:
    """(entries/s, raw append fsync/s, raw overwrite fsync/s) over interleaved slices."""
    db = directory / "bench.db"
    store = await SQLiteStorage.open(db, nosync=nosync)
    run: StoreRun | DirectRun = StoreRun(store, batch, os.urandom(size), hard_state)
    if direct:
        await store.close()
        Path(db).unlink()
        run = DirectRun.open(db, batch, os.urandom(size))
    raws = [RawFsync(directory / f"raw{n}.bin", size, append=n == 0) for n in (0, 1)]
    try:
        if warm and isinstance(run, DirectRun):
            while run.index * (size + 30) < 1500 * 4096:
                run.save(256)
        elif warm:
            run.index = await warm_up(store, size)
        start_index = run.index
        while run.busy < seconds:
            if not nosync:
                for raw in raws:
                    raw.run(SLICE)
            await run.run(SLICE)
        rate = (run.index - start_index) / run.busy
        return rate, raws[0].rate if raws[0].count else 0.0, raws[1].rate if raws[1].count else 0.0
    finally:
        for raw in raws:
            raw.close()
        if isinstance(run, DirectRun):
            run.conn.close()
        await store.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where to write")
    parser.add_argument("--seconds", type=float, default=2.0, help="store time per row")
    parser.add_argument("--entry-bytes", type=int, default=100)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="uhaha-bench-", dir=args.dir))
    print(f"directory: {directory}, {args.entry_bytes}-byte entries, {args.seconds} s per row\n")
    print(
        "| mode | WAL | batch | hard state | entries/s | saves/s | raw fsync/s append"
        " | raw fsync/s overwrite | saves / raw append | saves / raw overwrite |"
    )
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|")
    rows = [(False, False, b, False, False) for b in (1, 16, 256)]
    rows += [(False, True, 1, False, False), (False, True, 1, True, False)]
    rows += [(False, True, 16, False, False), (False, True, 256, False, False)]
    rows += [(True, True, b, False, False) for b in (1, 16, 256)]
    rows += [(False, True, 1, False, True)]
    try:
        for nosync, warm, batch, hard_state, direct in rows:
            rate, append, overwrite = await measure(
                directory,
                args.seconds,
                args.entry_bytes,
                batch,
                nosync=nosync,
                hard_state=hard_state,
                warm=warm,
                direct=direct,
            )
            saves = rate / batch
            cells = [
                "sqlite3 module, no asyncio" if direct else ("nosync" if nosync else "synced"),
                "warm" if warm else "cold",
                str(batch),
                "yes" if hard_state else "no",
                f"{rate:,.0f}",
                f"{saves:,.0f}",
                f"{append:,.0f}" if append else "-",
                f"{overwrite:,.0f}" if overwrite else "-",
                f"{saves / append:.0%}" if append else "-",
                f"{saves / overwrite:.0%}" if overwrite else "-",
            ]
            print("| " + " | ".join(cells) + " |", flush=True)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
