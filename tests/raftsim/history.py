"""Client histories of a simulated run and their linearizability check.

In the simulation every operation has a known position in Raft's total order:
a write sits at its log index, a read observed the state right after applied
index ``A``. The history is linearizable iff ordering the operations by
``(position, write-before-read)`` respects real time: whenever ``a`` returned
before ``b`` was invoked, ``key(a) <= key(b)``. (That order is then a legal
sequential history, since each read saw exactly the writes up to ``A``.)
Writes whose outcome the client never learned count if they were committed,
with an infinite return time, and not at all otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from uhaha.raft import Entry, EntryKind

INF = float("inf")


@dataclass
class Op:
    client: int
    kind: str  # "w" or "r"
    value: bytes
    invoked: float
    returned: float = INF
    status: str = "pending"  # ok | fail | unknown | pending
    index: int = 0
    term: int = 0
    observed: int = 0
    """For reads: the applied index whose state the read returned."""
    node: str = ""
    incarnation: int = 0


class LinearizabilityError(AssertionError):
    pass


def check(ops: list[Op], committed: dict[int, Entry]) -> int:
    """Raise LinearizabilityError unless ``ops`` is linearizable against the
    committed log (index -> entry; NORMAL entries with data are the writes).
    Returns how many ops were checked."""
    writes = {i: (e.data if e.kind is EntryKind.NORMAL else b"") for i, e in committed.items()}
    where: dict[bytes, int] = {}
    for index, data in writes.items():
        if data:
            if data in where:
                raise LinearizabilityError(f"value {data!r} committed twice")
            where[data] = index
    events: list[tuple[tuple[int, int], Op]] = []
    for op in ops:
        if op.kind == "w":
            idx = where.get(op.value)
            if op.status == "ok":
                if idx != op.index:
                    raise LinearizabilityError(
                        f"acknowledged write {op.value!r} at {op.index} is at {idx} in the log"
                    )
            elif op.status == "fail":
                if idx is not None:
                    raise LinearizabilityError(f"failed write {op.value!r} was committed at {idx}")
                continue
            else:
                if idx is None:
                    continue
                op.index = idx
                op.returned = INF
            events.append(((op.index, 0), op))
        elif op.status == "ok":
            last = 0
            for i in range(op.observed, 0, -1):
                if i not in writes:
                    raise LinearizabilityError(f"read observed index {op.observed} unknown")
                if writes[i]:
                    last = i
                    break
            expected = writes[last] if last else b""
            if op.value != expected:
                raise LinearizabilityError(
                    f"read at index {op.observed} returned {op.value!r}, state holds {expected!r}"
                )
            events.append(((op.observed, 1), op))
    # Sweep in invocation order, keeping the largest key of every op that
    # returned before the current invocation.
    by_return = sorted(events, key=lambda kv: kv[1].returned)
    by_invoke = sorted(events, key=lambda kv: kv[1].invoked)
    best: tuple[tuple[int, int], Op] | None = None
    j = 0
    for key, op in by_invoke:
        while j < len(by_return) and by_return[j][1].returned < op.invoked:
            if best is None or by_return[j][0] > best[0]:
                best = by_return[j]
            j += 1
        if best is not None and best[0] > key:
            before = best[1]
            raise LinearizabilityError(
                f"{_describe(before)} returned at {before.returned:.3f} before "
                f"{_describe(op)} was invoked at {op.invoked:.3f}, yet it is ordered after it"
            )
    return len(events)


def _describe(op: Op) -> str:
    if op.kind == "w":
        return f"write {op.value!r} (index {op.index}, client {op.client})"
    return f"read {op.value!r} (observed index {op.observed}, client {op.client})"
