"""Sequential specifications for the linearizability checker (``tests.chaos.linear``).

A model is a deterministic state machine over hashable states. The checker
asks it whether an operation is legal in a state, and what state follows.

Rules every model must follow, because the checker relies on them:

* States are hashable and compared by value (they are cache keys).
* ``step`` depends only on the state and on the operation's ``kind``,
  ``value`` and, when the outcome is known, ``output``; never on ``client``,
  ``call`` or ``ret``. The checker treats two unknown-outcome operations with
  equal ``kind`` and ``value`` as interchangeable (a symmetry reduction).
* For an operation whose outcome is unknown (``op.ret is None``) the output is
  ignored: any output is accepted. Such an operation may also never have taken
  effect; the checker handles that by not linearizing it at all.

Optional hooks a model may add (found with ``getattr``; see ``linear.check``):
``simplify(ops) -> list[Op]``, an equivalent history for one key (linearizable
iff the input is), and ``fast_check(ops) -> PartitionResult | None``, a
decision for one key without the search (``None``: search needed).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from tests.chaos.linear import PartitionResult

if TYPE_CHECKING:
    from tests.chaos.linear import Op

__all__ = ["Model", "Register", "Ticket"]


class Model(Protocol):
    """The sequential specification of one partition (one key)."""

    def init(self) -> Hashable:
        """The state before any operation."""
        ...

    def step(self, state: Hashable, op: Op) -> tuple[bool, Hashable]:
        """``(legal, new_state)``: may ``op`` happen in ``state``, and what follows.

        When ``op.ret is None`` (outcome unknown) the output must be ignored.
        """
        ...

    def describe(self, op: Op) -> str:
        """A short readable form such as ``set('a') -> OK`` (``?`` for an unknown output)."""
        ...


_REG = ("set", "get")


def _member(value: Any, hashed: set[Any], loose: list[Any]) -> bool:
    """``value`` equals an element of ``hashed`` (hashable ones) or of ``loose`` (the rest)."""
    try:
        if value in hashed:
            return True
    except TypeError:
        pass
    return any(value == x for x in loose)


def _out(op: Op) -> str:
    return "?" if op.ret is None else repr(op.output)


class Register(Model):
    """A register per key: ``set`` writes ``value`` and answers ``"OK"``; ``get`` answers
    the current value, or ``None`` if the key was never set.

    The state is the current value. A known ``set`` whose output is anything other
    than ``"OK"`` is illegal (the harness records only writes that succeeded or
    whose outcome is unknown).
    """

    def init(self) -> Hashable:
        return None

    def step(self, state: Hashable, op: Op) -> tuple[bool, Hashable]:
        if op.kind == "set":
            return (op.ret is None or op.output == "OK"), op.value
        if op.kind == "get":
            return (op.ret is None or op.output == state), state
        raise ValueError(f"Register: unknown operation kind {op.kind!r}")

    def simplify(self, ops: Sequence[Op]) -> list[Op]:
        """An equivalent history: linearizable iff ``ops`` is.

        Drops unknown-outcome ``get``s (the output is ignored and the state
        unchanged, so they never constrain anything) and unknown-outcome
        ``set``s whose value no known ``get`` returned. Such a write, wherever it
        is linearized, is followed before the next write only by operations that
        do not observe it (a known ``get`` there would return its value), so
        removing it keeps every linearization legal; conversely it can always be
        put at the very end.
        """
        observed: set[Any] = set()
        loose: list[Any] = []
        for op in ops:
            if op.kind == "get" and op.ret is not None:
                try:
                    observed.add(op.output)
                except TypeError:
                    loose.append(op.output)
        return [
            op
            for op in ops
            if op.ret is not None
            or op.kind not in _REG
            or (op.kind == "set" and _member(op.value, observed, loose))
        ]

    def fast_check(self, ops: Sequence[Op]) -> PartitionResult | None:
        """Violations visible without a search: a known ``get`` returning a value that no
        ``set`` wrote, or a known ``set`` answering something other than ``"OK"``.
        ``None`` (search needed) otherwise."""
        written: list[Any] = [op.value for op in ops if op.kind == "set"]
        hashed: set[Any] = set()
        loose: list[Any] = []
        for v in written:
            try:
                hashed.add(v)
            except TypeError:
                loose.append(v)
        for i, op in enumerate(ops):
            if op.ret is None:
                continue
            if op.kind == "set" and op.output != "OK":
                return PartitionResult(False, [], [i], f"a set answered {op.output!r}, not 'OK'")
            if op.kind == "get" and op.output is not None and not _member(op.output, hashed, loose):
                return PartitionResult(
                    False, [], [i], f"a get returned {op.output!r}, which no set wrote"
                )
        return None

    def describe(self, op: Op) -> str:
        if op.kind == "set":
            return f"set({op.value!r}) -> {'?' if op.ret is None else op.output}"
        return f"{op.kind}() -> {_out(op)}"


class Ticket(Model):
    """A counter handing out tickets: ``ticket`` answers the previous value plus one
    (the counter starts at 0, so the first ticket is 1). The state is the last
    ticket handed out.

    ``fast_check`` is an exact decision procedure for one partition, used by the
    checker instead of the general search (see its docstring).
    """

    def init(self) -> Hashable:
        return 0

    def step(self, state: Hashable, op: Op) -> tuple[bool, Hashable]:
        if op.kind != "ticket":
            raise ValueError(f"Ticket: unknown operation kind {op.kind!r}")
        assert isinstance(state, int)
        nxt = state + 1
        if op.ret is None:
            return True, nxt
        out = op.output
        return (type(out) is int and out == nxt), nxt

    def describe(self, op: Op) -> str:
        return f"{op.kind}() -> {_out(op)}"

    def fast_check(self, ops: Sequence[Op]) -> PartitionResult:
        """Decide linearizability of one counter's history without a search.

        Every known output ``n`` fixes that operation's place: it must be the
        ``n``-th ticket handed out. So the known operations, sorted by output,
        must be ``1..M`` with gaps, and each gap must be filled by a distinct
        unknown-outcome operation (those not used never took effect). A
        sequence of operations is consistent with real time iff one can choose
        non-decreasing points ``p_k`` with ``call_k <= p_k <= ret_k`` (closed
        intervals: operations that merely touch count as concurrent, as in the
        search). Greedily take ``p_k = max(p_{k-1}, call_k)``, which is the
        earliest possible, and fill each gap with the unused unknown operation
        called first (ret is infinite, so an earlier call is never worse): if
        the greedy choice fails, every choice fails.

        Returns the placed prefix (operation indices in order) and, on failure,
        the operations that could not be placed next and why.
        """
        known = [i for i, op in enumerate(ops) if op.ret is not None]
        unknown = sorted(
            (i for i, op in enumerate(ops) if op.ret is None), key=lambda i: (ops[i].call, i)
        )
        for op in ops:
            if op.kind != "ticket":
                raise ValueError(f"Ticket: unknown operation kind {op.kind!r}")
        bad = [i for i in known if type(ops[i].output) is not int or ops[i].output < 1]
        if bad:
            return PartitionResult(False, [], bad, "a ticket must be an int >= 1")
        by_out: dict[int, int] = {}
        for i in sorted(known, key=lambda i: (ops[i].call, i)):
            out = ops[i].output
            assert isinstance(out, int)
            if out in by_out:
                return PartitionResult(
                    False,
                    _greedy(ops, by_out, unknown, out)[0],
                    [by_out[out], i],
                    f"ticket {out} was handed out twice",
                )
            by_out[out] = i
        top = max(by_out, default=0)
        order, n, missing = _greedy(ops, by_out, unknown, top + 1)
        if n > top:
            return PartitionResult(True, order, [], "")
        if missing:
            stuck = [by_out[m] for m in sorted(by_out) if m > n][:1]
            return PartitionResult(
                False, order, stuck, f"ticket {n} was never handed out to anyone"
            )
        return PartitionResult(
            False,
            order,
            [by_out[n]],
            f"ticket {n} returned before an operation that took an earlier ticket was called",
        )


def _greedy(
    ops: Sequence[Op], by_out: dict[int, int], unknown: list[int], limit: int
) -> tuple[list[int], int, bool]:
    """Place tickets 1, 2, ... below ``limit`` greedily (see ``fast_check``):
    the placed operations in order, the ticket where placing stopped
    (``limit`` if all were placed), and whether it stopped because nobody,
    not even an unknown-outcome operation, can have had that ticket."""
    order: list[int] = []
    point = float("-inf")
    next_unknown = 0
    for n in range(1, limit):
        holder = by_out.get(n)
        if holder is None:
            if next_unknown == len(unknown):
                return order, n, True
            holder = unknown[next_unknown]
            next_unknown += 1
        op = ops[holder]
        point = max(point, op.call)
        if op.ret is not None and point > op.ret:
            return order, n, False
        order.append(holder)
    return order, limit, False
