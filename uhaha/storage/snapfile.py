"""uhaha's snapshot file format, so that files move between Go and Python nodes.

A snapshot file is a gzip stream of a 32-byte header followed by the
application's own snapshot bytes. The header is the ASCII magic ``SNAP0001``
and three little-endian signed 64-bit integers: ``start`` (when the machine
began), ``ts`` (its replicated time) and ``seed`` (its random seed) at the
snapshot. Everything here is blocking file I/O; from the event loop, run it
in a thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from .base import StorageError

__all__ = [
    "HEADER_SIZE",
    "MAGIC",
    "SnapshotFileWriter",
    "SnapshotHeader",
    "SnapshotReader",
    "open_snapshot_file",
    "verify_snapshot_file",
]

MAGIC = b"SNAP0001"
_HEADER = struct.Struct("<8sqqq")
HEADER_SIZE = _HEADER.size  # 32
_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class SnapshotHeader:
    """The replicated machine state that travels with the application's bytes."""

    start: int = 0
    ts: int = 0
    seed: int = 0

    def encode(self) -> bytes:
        """The 32 header bytes (ValueError if a field does not fit in an int64)."""
        try:
            return _HEADER.pack(MAGIC, self.start, self.ts, self.seed)
        except struct.error as exc:
            raise ValueError(f"snapshot header field out of range: {exc}") from exc

    @classmethod
    def decode(cls, data: bytes) -> SnapshotHeader:
        """Parse 32 header bytes (ValueError unless they are a SNAP0001 header)."""
        if len(data) != HEADER_SIZE:
            raise ValueError(f"header is {len(data)} bytes, expected {HEADER_SIZE}")
        magic, start, ts, seed = _HEADER.unpack(data)
        if magic != MAGIC:
            raise ValueError(f"bad magic {magic!r}, expected {MAGIC!r}")
        return cls(start, ts, seed)


class SnapshotFileWriter:
    """Compresses a header and then the application's bytes into ``raw``.

    Holds only zlib's window in memory, however large the snapshot. ``raw`` is
    left open: syncing and naming the file is the caller's business.
    """

    def __init__(self, raw: BinaryIO, header: SnapshotHeader, compresslevel: int = 6) -> None:
        # Level 6 is Go's default, far faster than Python's 9 for about the same size.
        # mtime=0 and no file name: every node writes the same bytes for the same state.
        self._gz = gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, compresslevel=compresslevel, mtime=0
        )
        self._gz.write(header.encode())
        self.app_size = 0
        """Application bytes written so far (uncompressed)."""

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append application bytes; returns how many."""
        n = self._gz.write(data)
        self.app_size += n
        return n

    def finish(self) -> None:
        """Write the gzip trailer (checksum and length)."""
        self._gz.close()


class SnapshotReader:
    """Reads a snapshot file: :attr:`header` at once, then the app bytes as a stream.

    The gzip stream is checked as it is read (its CRC and length at the end).
    Whitespace after it is accepted, because ``redis-cli RAFT SNAPSHOT READ id >
    file`` appends a newline; any other trailing byte is corruption.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._raw = path.open("rb")
        except OSError as exc:
            raise StorageError(f"cannot open snapshot file {path}: {exc.strerror}") from exc
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip framing, CRC checked
        self._buf = bytearray()
        self._eof = False
        try:
            self.header = SnapshotHeader.decode(self._read_exact(HEADER_SIZE))
        except (StorageError, ValueError) as exc:
            self.close()
            if isinstance(exc, StorageError):
                raise
            raise StorageError(f"snapshot file {path} is corrupt: {exc}") from exc

    def _corrupt(self, why: str) -> StorageError:
        return StorageError(f"snapshot file {self.path} is corrupt: {why}")

    def _fill(self, want: int) -> None:
        while len(self._buf) < want and not self._eof:
            try:
                raw = self._raw.read(_CHUNK)
            except OSError as exc:
                raise self._corrupt(str(exc)) from exc
            if not raw:
                raise self._corrupt("truncated (the gzip stream does not end)")
            try:
                self._buf += self._z.decompress(raw)
            except zlib.error as exc:
                raise self._corrupt(str(exc)) from exc
            if self._z.eof:
                self._eof = True
                trailing = self._z.unused_data + self._raw.read(64)
                if trailing.strip():
                    raise self._corrupt("unexpected bytes after the gzip stream")

    def _read_exact(self, size: int) -> bytes:
        data = self.read(size)
        if len(data) != size:
            raise self._corrupt("truncated header")
        return data

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` application bytes (all the rest with -1); b"" at the end."""
        if size < 0:
            self._fill(1 << 62)
            size = len(self._buf)
        else:
            self._fill(size)
        out = bytes(self._buf[:size])
        del self._buf[:size]
        return out

    @property
    def position(self) -> int:
        """Compressed bytes read from the file so far (for progress)."""
        return self._raw.tell()

    def chunks(self, size: int = _CHUNK) -> Iterator[bytes]:
        """The remaining application bytes, in pieces of at most ``size``."""
        while data := self.read(size):
            yield data

    def close(self) -> None:
        """Close the file."""
        self._raw.close()

    def __enter__(self) -> SnapshotReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_snapshot_file(path: str | Path) -> SnapshotReader:
    """Open any snapshot file (``--restore path``, or one from the store)."""
    return SnapshotReader(Path(path))


def verify_snapshot_file(path: str | Path) -> SnapshotHeader:
    """Read a whole snapshot file, so gzip checks its CRC and length; return its header."""
    with open_snapshot_file(path) as reader:
        for _ in reader.chunks():
            pass
        return reader.header
