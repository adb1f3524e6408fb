"""The machine: what a command sees, with time and randomness every node agrees on.

Every node applies the same committed log, so a write must compute the same
result on every node, today and when the log is replayed after a restart or on
top of a snapshot. A write may therefore depend only on its arguments, on
``m.data``, on ``m.now()``/``m.time()`` and on ``m.rand``.

What commands may do:

- writes: read and change ``m.data``; ask ``m.now()`` and ``m.rand``; log.
- reads and intermediate commands: read ``m.data`` (never change it: they run
  on one node only), ``m.now()`` and ``m.rand`` too, and ``m.context``.

What writes must not do: read the wall clock (:func:`time.time`,
:func:`datetime.datetime.now`), use :mod:`random`, :mod:`secrets`, ``os.urandom``
or :func:`uuid.uuid4`, do I/O (files, sockets, environment), or depend on
anything else that differs between nodes or runs (``id()``, iteration over a
``set`` of strings, the order threads finish in). The log line of a write is
printed on every node; what it changes is not replicated unless it is in
``m.data``. Commands are synchronous functions: the machine is in exactly one
phase (write, read, or between commands) at any moment.

Time (uhaha's "deterministic monotonic time"). The replicated time ``ts`` is
nanoseconds since the Unix epoch. It moves only:

- by a *tick* entry, which the leader proposes every so often with its
  (internet-synchronized) clock and a fresh random seed:
  ``ts = max(tick_ts, ts + 1)``, so a tick never moves time back;
- by exactly 1 ns each time a write calls ``now()`` (``ts += 1``, and the
  new value is returned), so every write sees a moment later than anything
  seen before it in the log, and each call inside a write a distinct one.

Reads see ``ts`` as it is and never move it.

Randomness (uhaha's "recalculable random numbers"). ``m.rand`` draws from one
PCG32 stream (:mod:`uhaha.pcg`). Every tick mixes its seed into the stream's
state (so two ticks carrying the same seed still lead to different numbers),
and only writes advance it. A read draws from a throwaway copy of the stream,
made when the read first touches ``m.rand``.

The machine's own replicated state is :class:`MachineState` (``start``, ``ts``,
``seed``): three signed 64-bit ints, the fields of a ``SNAP0001`` snapshot
header. A machine restored from it, fed the same entries, produces the same
future, bit for bit.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from .pcg import DEFAULT_INCREMENT, Pcg32, Rand

__all__ = ["Machine", "MachineState"]

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15  # 2**64 / golden ratio, odd
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STATE = struct.Struct("<qqq")
_INITIAL_SEED = Pcg32().state[0]  # where every machine starts, before its first tick


def _to_signed(value: int) -> int:
    return value - (1 << 64) if value > _INT64_MAX else value


def _mix64(x: int) -> int:
    """A bijection on 64-bit ints that spreads every input bit over the output.

    The finalizer of MurmurHash3 (two xor-shift-multiply rounds), so close
    inputs (the same seed on two nearby states) land far apart.
    """
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & _MASK64
    x ^= x >> 33
    x = (x * 0xC4CEB9FE1A85EC53) & _MASK64
    return x ^ (x >> 33)


@dataclass(frozen=True, slots=True)
class MachineState:
    """The machine's replicated state, for snapshots: three signed 64-bit ints.

    ``start`` is the time of the first tick (0 before it), ``ts`` the
    replicated time and ``seed`` the random stream's 64-bit state (as a
    signed int, like uhaha's). These are the ``start``/``ts``/``seed`` fields
    of a ``SNAP0001`` snapshot header.
    """

    start: int = 0
    ts: int = 0
    seed: int = _to_signed(_INITIAL_SEED)

    def __post_init__(self) -> None:
        for name in ("start", "ts", "seed"):
            value = getattr(self, name)
            if type(value) is not int or not _INT64_MIN <= value <= _INT64_MAX:
                raise ValueError(f"machine state {name} must be a signed 64-bit int: {value!r}")

    def to_dict(self) -> dict[str, int]:
        """``{"start": ..., "ts": ..., "seed": ...}`` (JSON-ready)."""
        return {"start": self.start, "ts": self.ts, "seed": self.seed}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MachineState:
        """The inverse of :meth:`to_dict` (ValueError on missing or bad fields)."""
        try:
            return cls(start=d["start"], ts=d["ts"], seed=d["seed"])
        except KeyError as exc:
            raise ValueError(f"machine state lacks {exc}") from exc

    def encode(self) -> bytes:
        """24 bytes: the three fields as little-endian int64."""
        return _STATE.pack(self.start, self.ts, self.seed)

    @classmethod
    def decode(cls, data: bytes) -> MachineState:
        """The inverse of :meth:`encode` (ValueError unless 24 bytes)."""
        if len(data) != _STATE.size:
            raise ValueError(f"machine state is {len(data)} bytes, expected {_STATE.size}")
        return cls(*_STATE.unpack(data))


class _Shared:
    """The state a machine and its intermediate views share."""

    __slots__ = ("data", "pcg", "rand", "start", "ts")

    def __init__(self, data: Any) -> None:
        self.data = data
        self.start = 0
        self.ts = 0
        self.pcg = Pcg32.from_state((_INITIAL_SEED, DEFAULT_INCREMENT))
        self.rand = Rand(self.pcg)


class _Phase(Enum):
    IDLE = "idle"
    WRITE = "write"
    READ = "read"


class Machine:
    """What a command sees: ``data``, ``now()``, ``time()``, ``rand``, ``log``, ``context``.

    The user-facing part is documented per member. The applier drives the
    rest, on the event loop, one command at a time:

    - a tick entry: :meth:`apply_tick` (then, optionally, the app's tick
      hook inside :meth:`writing`, with the same entry index);
    - each write command of an entry: inside ``with m.writing(index):``;
    - each read command: inside ``with m.reading(context):``;
    - each intermediate command (which may be ``async``): on its own
      ``m.intermediate(context)`` view;
    - snapshots: :meth:`state` between entries (its fields go in the snapshot
      header), :meth:`restore_state` (or :meth:`restore_header`) with them
      before applying the entries that follow the snapshot.
    """

    def __init__(self, data: Any = None, *, log: logging.Logger | None = None) -> None:
        self._s = _Shared(data)
        self.log: logging.Logger = log if log is not None else logging.getLogger("uhaha.app")
        """The application's logger. A write logs on every node that applies it."""
        self._phase = _Phase.IDLE
        self._view = False
        self._index = 0
        self._context: Any = None
        self._read_rand: Rand | None = None

    @property
    def data(self) -> Any:
        """The application's state (settable: a restore replaces it)."""
        return self._s.data

    @data.setter
    def data(self, value: Any) -> None:
        self._s.data = value

    # -- what commands use -------------------------------------------------

    def now(self) -> int:
        """The replicated time, in nanoseconds since the Unix epoch.

        In a write each call moves time 1 ns forward and returns the new
        value, so calls are strictly increasing and the same on every node.
        Elsewhere it returns the current time and leaves it as it is.
        """
        if self._phase is _Phase.WRITE:
            self._s.ts += 1
        return self._s.ts

    def time(self) -> datetime:
        """:meth:`now` as an aware UTC datetime (microseconds; the nanoseconds are cut)."""
        return _EPOCH + timedelta(microseconds=self.now() // 1000)

    @property
    def rand(self) -> Rand:
        """The replicated random stream (see :class:`uhaha.pcg.Rand`).

        In a write, draws advance the stream every node shares. In a read, they
        come from a copy made for this read, which is then thrown away.
        Between commands each access returns a fresh copy.
        """
        if self._phase is _Phase.WRITE:
            return self._s.rand
        if self._phase is _Phase.READ:
            if self._read_rand is None:
                self._read_rand = Rand(self._s.pcg.copy())
            return self._read_rand
        return Rand(self._s.pcg.copy())

    @property
    def context(self) -> Any:
        """The connection's context in a read or intermediate command; None in writes.

        Writes run on every node, where there is no connection.
        """
        return self._context

    @property
    def index(self) -> int:
        """The index of the log entry being applied in a write; 0 elsewhere."""
        return self._index

    # -- what the applier uses ---------------------------------------------

    @property
    def ts(self) -> int:
        """The replicated time, without moving it (for MACHINE and RAFT INFO)."""
        return self._s.ts

    @property
    def start(self) -> int:
        """The time of the first tick ever applied (0 before it): uhaha's boot time."""
        return self._s.start

    def apply_tick(self, ts: int, seed: int) -> None:
        """Apply a tick entry carrying the leader's time ``ts`` and random ``seed``.

        Time becomes ``max(ts, current + 1)``: never back, always forward. The
        seed is mixed into the stream's current state (for a given seed, a
        bijection of the state, so equal seeds on different states give
        different streams). May run in
        a write (for the app's tick hook) or between commands, not in a read.
        ``ts`` is a signed 64-bit int, ``seed`` a signed or unsigned one (only
        its 64 bits count); anything else is a ValueError, on every node alike.
        """
        if self._phase is _Phase.READ:
            raise RuntimeError("a tick cannot be applied during a read")
        if type(ts) is not int or not _INT64_MIN <= ts <= _INT64_MAX:
            raise ValueError(f"tick ts must be a signed 64-bit int: {ts!r}")
        if type(seed) is not int or not _INT64_MIN <= seed <= _MASK64:
            raise ValueError(f"tick seed must be a 64-bit int: {seed!r}")
        self._s.ts = max(ts, self._s.ts + 1)
        if self._s.start == 0:
            self._s.start = self._s.ts
        mixed = _mix64(((self._s.pcg.state[0] ^ (seed & _MASK64)) + _GOLDEN) & _MASK64)
        self._s.pcg.set_state((mixed, DEFAULT_INCREMENT))

    def begin_write(self, index: int) -> None:
        """Enter a write applied from log entry ``index`` (RuntimeError if in a command)."""
        self._enter(_Phase.WRITE)
        self._index = index
        self._context = None

    def end_write(self) -> None:
        """Leave the write begun by :meth:`begin_write`."""
        self._leave(_Phase.WRITE)

    def begin_read(self, context: Any = None) -> None:
        """Enter a read or intermediate command run for a connection with ``context``."""
        self._enter(_Phase.READ)
        self._context = context
        self._read_rand = None

    def end_read(self) -> None:
        """Leave the read begun by :meth:`begin_read`; its random copy is dropped."""
        self._leave(_Phase.READ)
        self._read_rand = None

    @contextmanager
    def writing(self, index: int) -> Iterator[Machine]:
        """``with m.writing(index): cmd(m, args)``: :meth:`begin_write`/:meth:`end_write`."""
        self.begin_write(index)
        try:
            yield self
        finally:
            self.end_write()

    @contextmanager
    def reading(self, context: Any = None) -> Iterator[Machine]:
        """``with m.reading(ctx): cmd(m, args)``: :meth:`begin_read`/:meth:`end_read`."""
        self.begin_read(context)
        try:
            yield self
        finally:
            self.end_read()

    def intermediate(self, context: Any) -> Machine:
        """A view for one intermediate command run for a connection with ``context``.

        Intermediate commands may be ``async``: while one waits, writes go on
        being applied. So instead of a phase of this machine, it gets its own
        read-only view, which sees the live ``data`` and time (``now()`` never
        moves it), draws ``rand`` from a copy made on first use, and is never
        ended: drop it when the command finishes.
        """
        view = Machine.__new__(Machine)
        view._s = self._s
        view.log = self.log
        view._phase = _Phase.READ
        view._view = True
        view._index = 0
        view._context = context
        view._read_rand = None
        return view

    def state(self) -> MachineState:
        """The replicated state to store with a snapshot (RuntimeError during a write)."""
        if self._phase is _Phase.WRITE:
            raise RuntimeError("the machine state is taken between entries, not in a write")
        return MachineState(self._s.start, self._s.ts, _to_signed(self._s.pcg.state[0]))

    def restore_state(self, state: MachineState) -> None:
        """Resume from a snapshot's state (RuntimeError during a command)."""
        if self._phase is not _Phase.IDLE:
            raise RuntimeError("the machine state is restored between commands only")
        self._s.start = state.start
        self._s.ts = state.ts
        self._s.pcg.set_state((state.seed & _MASK64, DEFAULT_INCREMENT))

    def restore_header(self, ts: int, seed: int, start: int = 0) -> None:
        """:meth:`restore_state` from a ``SNAP0001`` header's ``ts``, ``seed`` and ``start``.

        Pass ``start`` too: it is replicated state (the boot time MACHINE
        shows), and a node that lost it would disagree with the others.
        """
        self.restore_state(MachineState(start=start, ts=ts, seed=_to_signed(seed & _MASK64)))

    def _enter(self, phase: _Phase) -> None:
        if self._phase is not _Phase.IDLE:
            raise RuntimeError(f"cannot begin a {phase.value} during a {self._phase.value}")
        self._phase = phase

    def _leave(self, phase: _Phase) -> None:
        if self._view:
            raise RuntimeError("an intermediate view is never ended: drop it")
        if self._phase is not phase:
            raise RuntimeError(f"not in a {phase.value} (in {self._phase.value})")
        self._phase = _Phase.IDLE
        self._index = 0
        self._context = None

    def __repr__(self) -> str:
        kind = "view" if self._view else self._phase.value
        return f"<Machine ts={self._s.ts} {kind} index={self._index}>"
