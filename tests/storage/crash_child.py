"""The process that test_crash.py kills: appends batches and reports each one.

Run as ``python crash_child.py DB SEED``. It opens the SQLite store, reports
what it found, then writes forever, printing one line before each write
(``begin ...``, describing it completely) and one after the write returned
(``ack N``). Lines go straight to the pipe with ``os.write``, so a line the
parent reads was printed, and an ``ack`` was printed only after ``save``
returned. Entry data is a function of (index, term), so the parent can check
every byte it reads back.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import sys

from uhaha.raft.messages import Entry, HardState
from uhaha.storage.sqlite import SQLiteStorage


def payload(index: int, term: int) -> bytes:
    """The data of entry ``index`` written in ``term``: self-describing and checkable."""
    head = f"{index}:{term}:".encode()
    filler = hashlib.blake2b(head).digest()
    length = (index * 7 + term * 13) % 300
    return head + (filler * (length // len(filler) + 1))[:length]


def say(line: str) -> None:
    os.write(1, (line + "\n").encode())


async def main(path: str, seed: int) -> None:
    rng = random.Random(seed)
    store = await SQLiteStorage.open(path)
    state = await store.load()
    hs = state.hard_state
    first, last = state.first_index, state.last_index
    term = max(hs.term, state.entries[-1].term if state.entries else state.compacted_term)
    say(f"ready {first} {last} {hs.term} {hs.vote or '-'}")
    op = 0
    while True:
        op += 1
        roll = rng.random()
        if roll < 0.04 and last - first > 60:
            index = rng.randint(first, last - 30)
            say(f"begin {op} compact {index}")
            await store.compact(index)
            say(f"ack {op}")
            first = index + 1
            continue
        new_hs: HardState | None = None
        if roll < 0.10:  # a vote in a new term: hard state only
            term += 1
            new_hs = HardState(term, rng.choice("123"), hs.commit + 1)
            start, count = last + 1, 0
        elif roll < 0.25:  # a new leader overwrites a few entries
            term += 1
            new_hs = HardState(term, rng.choice("123"), hs.commit + 1)
            start = max(first, last + 1 - rng.randint(0, 8))
            count = rng.randint(1, 6)
        else:  # the same leader appends
            start = last + 1
            count = rng.choice((1, 1, 1, 2, 3, 8, 16, 64))
            if rng.random() < 0.5:
                new_hs = HardState(hs.term, hs.vote, hs.commit + 1)
        entries = [Entry(term, i, data=payload(i, term)) for i in range(start, start + count)]
        described = f"{new_hs.term} {new_hs.vote or '-'} {new_hs.commit}" if new_hs else "- - -"
        say(f"begin {op} save {described} {start} {count} {term}")
        await store.save(new_hs, entries)
        say(f"ack {op}")
        if new_hs is not None:
            hs = new_hs
        if count:
            last = start + count - 1


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
