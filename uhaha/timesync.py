"""Internet time for the leader's ticks (uhaha's "time that stays in sync with the internet").

Only the leader reads a clock: it stamps each tick entry with
:meth:`TimeSource.now_ns`, and every node then takes its time from the log
(:mod:`uhaha.machine`). So that a new leader on a machine with a wrong clock
does not stall or rush the replicated time, ``now_ns`` is the local clock
corrected by an offset measured against NTP servers (with ntplib), refreshed
in the background.

Between measurements time is counted with the monotonic clock from the last
measurement, so changes to the local wall clock (an operator, a bad daemon) do
not show; ``now_ns`` also never returns less than it did before. When no
server answers, it warns once ("cannot reach internet time: using the local
clock"), uses the local clock and tries again later. With ``localtime=True``
(``--localtime``) it uses the local clock and never touches the network.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType

import ntplib

__all__ = ["DEFAULT_SERVERS", "NTP_PORT", "TimeSource"]

DEFAULT_SERVERS: tuple[str, ...] = ("time.google.com", "pool.ntp.org")
"""Queried together; the answer with the shortest round trip wins."""
NTP_PORT = 123

_NTP_SERVER_MODE = 4
_LEAP_UNSYNCHRONIZED = 3
_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class _Sample:
    server: str
    offset_ns: int
    delay_ns: int
    wall_ns: int
    """The local wall clock when the answer arrived."""
    mono_ns: int
    """The monotonic clock at the same moment."""


class TimeSource:
    """The leader's clock: local time plus the offset to internet time, never going back.

    ``servers`` are host names or ``(host, port)`` pairs. ``timeout`` bounds
    one query (seconds); a refresh follows ``refresh_interval`` seconds after a
    success, ``retry_interval`` after a failure. The clocks are injectable for
    tests; ``wall_clock`` must be the clock ntplib measures against
    (:func:`time.time`), so replace it only with ``localtime=True`` or without
    servers.
    """

    def __init__(
        self,
        servers: Iterable[str | tuple[str, int]] = DEFAULT_SERVERS,
        *,
        localtime: bool = False,
        timeout: float = 2.0,
        refresh_interval: float = 300.0,
        retry_interval: float = 60.0,
        log: logging.Logger | None = None,
        wall_clock: Callable[[], int] = time.time_ns,
        monotonic_clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.servers: tuple[tuple[str, int], ...] = tuple(
            (s, NTP_PORT) if isinstance(s, str) else (s[0], int(s[1])) for s in servers
        )
        self.localtime = localtime
        self.timeout = timeout
        self.refresh_interval = refresh_interval
        self.retry_interval = retry_interval
        self._log = log if log is not None else logging.getLogger("uhaha.timesync")
        self._wall = wall_clock
        self._mono = monotonic_clock
        self._sample: _Sample | None = None
        self._last = 0
        self._failing = False
        self._task: asyncio.Task[None] | None = None
        self.last_error: str | None = None
        """Why the latest refresh failed (None after a success)."""

    @property
    def synced(self) -> bool:
        """Whether :meth:`now_ns` follows internet time (some server has answered)."""
        return self._sample is not None

    @property
    def offset_ns(self) -> int:
        """Internet time minus the local clock at the last measurement (0 before one)."""
        return self._sample.offset_ns if self._sample is not None else 0

    @property
    def server(self) -> str | None:
        """``host:port`` of the server that gave the offset in use, if any."""
        return self._sample.server if self._sample is not None else None

    def now_ns(self) -> int:
        """Nanoseconds since the Unix epoch: internet time when known, else the local clock.

        Never less than a previous call's result.
        """
        sample = self._sample
        if sample is None:
            t = self._wall()
        else:
            t = sample.wall_ns + sample.offset_ns + (self._mono() - sample.mono_ns)
        self._last = t = max(t, self._last)
        return t

    def next_tick(self) -> tuple[int, int]:
        """``(ts, seed)`` for the leader's next tick entry: :meth:`now_ns` and a fresh
        random signed 64-bit seed (from the OS: only the leader draws it, the log
        carries it to everyone else)."""
        seed = secrets.randbits(64) - (1 << 63)
        return self.now_ns(), seed

    async def sync(self) -> bool:
        """Query every server once, now; adopt the best answer. True if one answered.

        Does nothing (False) with ``localtime``.
        """
        if self.localtime:
            return False
        answers = await asyncio.gather(*(self._query(host, port) for host, port in self.servers))
        samples = [a for a in answers if isinstance(a, _Sample)]
        if not samples:
            self._failed("; ".join(str(a) for a in answers) or "no servers configured")
            return False
        best = min(samples, key=lambda s: s.delay_ns)
        if self._failing or self._sample is None:
            self._log.info(
                "internet time from %s: offset %+.3f ms, round trip %.3f ms",
                best.server,
                best.offset_ns / 1e6,
                best.delay_ns / 1e6,
            )
        self._sample = best
        self._failing = False
        self.last_error = None
        return True

    def _failed(self, reason: str) -> None:
        self.last_error = reason
        if not self._failing:
            if self._sample is None:
                self._log.warning("cannot reach internet time: using the local clock")
            else:
                self._log.warning("cannot reach internet time: keeping the last offset")
            self._log.debug("internet time: %s", reason)
        self._failing = True

    async def _query(self, host: str, port: int) -> _Sample | str:
        """One server's sample, or why there is none."""
        try:
            # ntplib blocks (and its timeout does not cover name lookup): a thread,
            # with an outer bound. A thread outliving the bound ends at its own timeout.
            return await asyncio.wait_for(
                asyncio.to_thread(self._query_blocking, host, port), self.timeout + 1.0
            )
        except TimeoutError:
            return f"{host}:{port}: no answer in {self.timeout + 1.0:g} s"
        except Exception as exc:  # anything a server or the network does is a failed query
            return f"{host}:{port}: {str(exc) or type(exc).__name__}"

    def _query_blocking(self, host: str, port: int) -> _Sample:
        stats = ntplib.NTPClient().request(host, version=3, port=port, timeout=self.timeout)
        wall, mono = self._wall(), self._mono()
        if stats.mode != _NTP_SERVER_MODE:
            raise ValueError(f"not a server reply (mode {stats.mode})")
        if not 1 <= stats.stratum <= 15 or stats.leap == _LEAP_UNSYNCHRONIZED:
            raise ValueError(f"server not synchronized (stratum {stats.stratum})")
        # ntplib does not check that the reply answers our request: the server
        # must echo our transmit time, which was taken just before sending.
        if not 0 <= stats.dest_timestamp - stats.orig_timestamp <= self.timeout + 1.0:
            raise ValueError("reply does not match the request")
        if stats.tx_timestamp == 0 or stats.delay < 0:
            raise ValueError("reply has impossible timestamps")
        return _Sample(
            server=f"{host}:{port}",
            offset_ns=round(stats.offset * _NS),
            delay_ns=round(stats.delay * _NS),
            wall_ns=wall,
            mono_ns=mono,
        )

    async def start(self, *, wait: bool = True) -> None:
        """Begin refreshing in the background.

        With ``wait`` the first query is made before returning (bounded by
        ``timeout`` plus a second), so the first tick already has the offset.
        With ``localtime`` nothing starts.
        """
        if self._task is not None:
            raise RuntimeError("TimeSource already started")
        if self.localtime:
            self._log.info("using the local clock (localtime)")
            return
        delay = 0.0
        if wait:
            delay = self.refresh_interval if await self.sync() else self.retry_interval
        self._task = asyncio.create_task(self._refresh(delay), name="uhaha-timesync")

    async def _refresh(self, delay: float) -> None:
        while True:
            await asyncio.sleep(delay)
            ok = await self.sync()
            delay = self.refresh_interval if ok else self.retry_interval

    async def close(self) -> None:
        """Stop refreshing (idempotent). ``now_ns`` keeps working on the last offset."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        # wait() does not raise the task's cancellation, but does raise our own.
        await asyncio.wait([task])
        if not task.cancelled() and task.exception() is not None:
            self._log.error("time refresh failed", exc_info=task.exception())

    async def __aenter__(self) -> TimeSource:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
