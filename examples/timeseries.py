"""A replicated time-series store (after uhaha's timeseries example).

    python examples/timeseries.py -n 1 -a :11001
    redis-cli -p 11001 WRITE cpu 0.73        # the point's replicated timestamp (ns)
    redis-cli -p 11001 QUERY cpu             # [[ts, value], ...]
    redis-cli -p 11001 STATS cpu             # count, min, max, mean
    redis-cli -p 11001 RETAIN 3600           # keep one hour; older points expire

Points get their timestamp from the replicated clock (m.now()), so every
node stores exactly the same series; retention runs through the tick.
Snapshots use a custom binary format.
"""

from __future__ import annotations

import bisect
import math
import struct
from typing import Any

from uhaha import OK, App, Machine
from uhaha.errors import CommandError, wrong_args


class Series:
    def __init__(self) -> None:
        self.times: list[int] = []
        self.values: list[float] = []


class Store:
    def __init__(self) -> None:
        self.series: dict[str, Series] = {}
        self.retain_ns = 0  # 0: keep everything


app = App("timeseries", version="1.0.0", initial_data=Store)


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CommandError(f"ERR {what} is not a number") from None
    if not math.isfinite(value):
        raise CommandError(f"ERR {what} must be finite")
    return value


def _stamp(text: str, what: str) -> int:
    """A time in nanoseconds: integers exactly (a float cannot hold today's
    nanosecond timestamps: 2**53 < 1.8e18), other numbers rounded down."""
    try:
        return int(text)
    except ValueError:
        return math.floor(_number(text, what))


@app.write("write")
def cmd_write(m: Machine, args: list[str]) -> int:
    """WRITE series value: append a point stamped with the replicated time."""
    if len(args) != 2:
        raise wrong_args()
    value = _number(args[1], "value")
    store: Store = m.data
    series = store.series.setdefault(args[0], Series())
    ts = m.now()
    series.times.append(ts)  # m.now() only increases, so the series stays sorted
    series.values.append(value)
    return ts


@app.read("query")
def cmd_query(m: Machine, args: list[str]) -> Any:
    """QUERY series [start end]: points with start <= ts <= end (nanoseconds)."""
    if len(args) not in (1, 3):
        raise wrong_args()
    store: Store = m.data
    series = store.series.get(args[0])
    if series is None:
        return []
    lo, hi = 0, len(series.times)
    if len(args) == 3:
        start, end = _stamp(args[1], "start"), _stamp(args[2], "end")
        lo = bisect.bisect_left(series.times, start)
        hi = bisect.bisect_right(series.times, end)
    return [[series.times[i], repr(series.values[i])] for i in range(lo, hi)]


@app.read("stats")
def cmd_stats(m: Machine, args: list[str]) -> Any:
    """STATS series: count, min, max and mean of the stored points."""
    if len(args) != 1:
        raise wrong_args()
    store: Store = m.data
    series = store.series.get(args[0])
    if series is None or not series.values:
        return {"count": 0}
    v = series.values
    return {"count": len(v), "min": min(v), "max": max(v), "mean": sum(v) / len(v)}


@app.write("retain")
def cmd_retain(m: Machine, args: list[str]) -> str:
    """RETAIN seconds: drop points older than that (0 keeps everything)."""
    if len(args) != 1:
        raise wrong_args()
    seconds = _number(args[0], "seconds")
    if seconds < 0:
        raise CommandError("ERR seconds must not be negative")
    store: Store = m.data
    store.retain_ns = int(seconds * 1_000_000_000)
    return OK


@app.on_tick
def expire(m: Machine) -> None:
    store: Store = m.data
    if not store.retain_ns:
        return
    cutoff = m.now() - store.retain_ns
    for name in sorted(store.series):
        series = store.series[name]
        cut = bisect.bisect_left(series.times, cutoff)
        if cut:
            del series.times[:cut]
            del series.values[:cut]
        if not series.times:
            del store.series[name]


# --- custom snapshot format --------------------------------------------------

_HEAD = struct.Struct("<qI")  # retention, series count
_SERIES = struct.Struct("<II")  # name length, point count
_POINT = struct.Struct("<qd")


@app.snapshot
def dump(store: Store) -> bytes:
    out = bytearray(_HEAD.pack(store.retain_ns, len(store.series)))
    for name in sorted(store.series):
        s = store.series[name]
        raw = name.encode()
        out += _SERIES.pack(len(raw), len(s.times)) + raw
        for t, v in zip(s.times, s.values, strict=True):
            out += _POINT.pack(t, v)
    return bytes(out)


@app.restore
def load(raw: bytes) -> Store:
    store = Store()
    store.retain_ns, count = _HEAD.unpack_from(raw, 0)
    pos = _HEAD.size
    for _ in range(count):
        nlen, npoints = _SERIES.unpack_from(raw, pos)
        pos += _SERIES.size
        series = store.series[raw[pos : pos + nlen].decode()] = Series()
        pos += nlen
        for _ in range(npoints):
            t, v = _POINT.unpack_from(raw, pos)
            pos += _POINT.size
            series.times.append(t)
            series.values.append(v)
    return store


if __name__ == "__main__":
    app.main()
