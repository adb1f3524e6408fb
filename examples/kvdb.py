"""A replicated key-value store (uhaha's kvdb example) with expiring keys.

    python examples/kvdb.py -n 1 -a :11001
    redis-cli -p 11001 SET name Tom EX 10
    redis-cli -p 11001 GET name
    redis-cli -p 11001 KEYS '*'

Commands: SET key value [EX seconds], GET key, DEL key [key ...],
KEYS pattern, DBSIZE. Keys expire through the replicated tick, so every node
drops them at the same log index. Snapshots use a custom binary format.
"""

from __future__ import annotations

import fnmatch
import struct
from typing import Any

from uhaha import OK, App, Machine
from uhaha.errors import CommandError, syntax_error, wrong_args


class Store:
    """The data: values, and expiry times in replicated nanoseconds."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.expires: dict[str, int] = {}

    def live(self, key: str, now: int) -> bool:
        exp = self.expires.get(key)
        return key in self.values and (exp is None or exp > now)


app = App("kvdb", version="1.0.0", initial_data=Store)

#: Longest EX (100 years): an expiry time is nanoseconds in a signed 64-bit
#: field of the snapshot, which a larger one would overflow.
_MAX_EX = 100 * 365 * 24 * 3600


@app.write("set")
def cmd_set(m: Machine, args: list[str]) -> Any:
    """SET key value [EX seconds]"""
    if len(args) not in (2, 4):
        raise wrong_args()
    key, value = args[0], args[1]
    store: Store = m.data
    expires = None
    if len(args) == 4:  # checked before anything changes: an error leaves the data as it was
        if args[2].lower() != "ex":
            raise syntax_error()
        try:
            seconds = int(args[3])
        except ValueError:
            raise CommandError("ERR value is not an integer or out of range") from None
        if seconds <= 0 or seconds > _MAX_EX:
            raise CommandError("ERR invalid expire time in 'set' command")
        expires = m.now() + seconds * 1_000_000_000
    store.values[key] = value
    store.expires.pop(key, None)
    if expires is not None:
        store.expires[key] = expires
    return OK


@app.read("get")
def cmd_get(m: Machine, args: list[str]) -> Any:
    """GET key"""
    if len(args) != 1:
        raise wrong_args()
    store: Store = m.data
    return store.values[args[0]] if store.live(args[0], m.now()) else None


@app.write("del")
def cmd_del(m: Machine, args: list[str]) -> Any:
    """DEL key [key ...]"""
    if not args:
        raise wrong_args()
    store: Store = m.data
    now = m.now()
    deleted = 0
    for key in args:
        if store.live(key, now):
            deleted += 1
        store.values.pop(key, None)
        store.expires.pop(key, None)
    return deleted


@app.read("keys")
def cmd_keys(m: Machine, args: list[str]) -> Any:
    """KEYS pattern"""
    if len(args) != 1:
        raise wrong_args()
    store: Store = m.data
    now = m.now()
    return sorted(k for k in store.values if store.live(k, now) and fnmatch.fnmatchcase(k, args[0]))


@app.read("dbsize")
def cmd_dbsize(m: Machine, args: list[str]) -> Any:
    """DBSIZE"""
    if args:
        raise wrong_args()
    store: Store = m.data
    now = m.now()
    return sum(1 for k in store.values if store.live(k, now))


@app.on_tick
def expire(m: Machine) -> None:
    """Drop expired keys, at the same log index on every node."""
    store: Store = m.data
    now = m.now()
    for key in sorted(k for k, exp in store.expires.items() if exp <= now):
        store.values.pop(key, None)
        del store.expires[key]


# --- a custom snapshot format: length-prefixed UTF-8 records -----------------

_REC = struct.Struct("<IIq")  # key length, value length, expiry (0: none)


@app.snapshot
def dump(store: Store) -> bytes:
    out = bytearray()
    for key in sorted(store.values):
        # Arguments that were not UTF-8 are kept as surrogate escapes (see
        # uhaha.dispatch.decode_arg): they go back to their own bytes.
        k, v = (
            key.encode("utf-8", "surrogateescape"),
            store.values[key].encode("utf-8", "surrogateescape"),
        )
        out += _REC.pack(len(k), len(v), store.expires.get(key, 0)) + k + v
    return bytes(out)


@app.restore
def load(raw: bytes) -> Store:
    store = Store()
    pos = 0
    while pos < len(raw):
        klen, vlen, exp = _REC.unpack_from(raw, pos)
        pos += _REC.size
        key = raw[pos : pos + klen].decode("utf-8", "surrogateescape")
        pos += klen
        store.values[key] = raw[pos : pos + vlen].decode("utf-8", "surrogateescape")
        pos += vlen
        if exp:
            store.expires[key] = exp
    return store


if __name__ == "__main__":
    app.main()
