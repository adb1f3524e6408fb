"""Readable explanations of a failed (or abandoned) linearizability check.

For the key that failed: the longest linearizable prefix the checker found
(the last few operations of it), the model state after it, the operations that
could not be placed next and why, and a small ASCII timeline of those
operations. Times are seconds after the first call of the whole history.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.chaos.linear import Op, PartitionResult
    from tests.chaos.models import Model

__all__ = ["render", "stuck_after"]

PREFIX_SHOWN = 8
STUCK_SHOWN = 8
WIDTH = 50
LABEL = 34


def stuck_after(ops: Sequence[Op], order: Sequence[int]) -> list[int]:
    """The operations that were candidates to be linearized right after ``order``.

    That is the unlinearized operation with a known outcome that returns first
    (it comes first in the list), then every other unlinearized operation
    called before that return (unknown outcomes included).
    """
    done = set(order)
    rest = [i for i in range(len(ops)) if i not in done]
    known = [i for i in rest if ops[i].ret is not None]
    if not known:
        return []
    first = min(known, key=lambda i: (ops[i].ret, i))
    limit = ops[first].ret
    assert limit is not None
    others = sorted(
        (i for i in rest if i != first and ops[i].call <= limit), key=lambda i: (ops[i].call, i)
    )
    return [first, *others]


def _t(x: float | None, t0: float) -> str:
    return "?" if x is None else f"+{x - t0:.4f}"


def _label(model: Model, op: Op) -> str:
    text = f"c{op.client} {model.describe(op)}"
    return text if len(text) <= LABEL else text[: LABEL - 3] + "..."


def render(
    key: str,
    ops: Sequence[Op],
    model: Model,
    res: PartitionResult,
    *,
    t0: float,
    deadline: float,
) -> str:
    """The explanation text for one key's failed or abandoned check."""
    lines: list[str] = []
    verdict = (
        "NOT linearizable"
        if res.ok is False
        else f"gave up (deadline {deadline:g}s): linearizability unknown"
    )
    lines.append(
        f"key {key!r}: {verdict}; {len(ops)} operations on this key "
        f"(times in seconds after the first call of the history, t0={t0:.6f} monotonic)"
    )
    if res.note:
        lines.append(f"reason: {res.note}")
    state: Hashable = model.init()
    for i in res.order:
        _, state = model.step(state, ops[i])
    lines.append(f"longest linearizable prefix found: {len(res.order)} of {len(ops)} operations")
    if len(res.order) > PREFIX_SHOWN:
        lines.append(f"  ... {len(res.order) - PREFIX_SHOWN} earlier operations")
    shown_prefix = list(res.order[-PREFIX_SHOWN:])
    for pos, i in enumerate(shown_prefix, start=len(res.order) - len(shown_prefix) + 1):
        op = ops[i]
        lines.append(
            f"  {pos:>5}  {_label(model, op):<{LABEL}} [{_t(op.call, t0)}, {_t(op.ret, t0)}]"
        )
    lines.append(f"model state after the prefix: {state!r}")
    stuck = list(res.stuck) or stuck_after(ops, res.order)
    if stuck:
        lines.append("could not be placed next:")
        for i in stuck[:STUCK_SHOWN]:
            op = ops[i]
            legal, _ = model.step(state, op)
            why = (
                "legal here, but nothing linearizes the rest after it"
                if legal
                else "illegal in this state"
            )
            span = f"[{_t(op.call, t0)}, {_t(op.ret, t0)}]"
            lines.append(f"  *      {_label(model, op):<{LABEL}} {span}  {why}")
        if len(stuck) > STUCK_SHOWN:
            lines.append(f"  ... and {len(stuck) - STUCK_SHOWN} more")
    rows = [(i, False) for i in shown_prefix[-4:]] + [(i, True) for i in stuck[:STUCK_SHOWN]]
    if rows:
        lines.extend(_timeline(ops, model, rows, t0))
    return "\n".join(lines)


def _timeline(
    ops: Sequence[Op], model: Model, rows: list[tuple[int, bool]], t0: float
) -> list[str]:
    """One bar per operation: ``[===]`` spans call to return, ``[==>`` an unknown outcome."""
    lo = min(ops[i].call for i, _ in rows)
    hi = lo
    for i, _ in rows:
        r = ops[i].ret
        hi = max(hi, ops[i].call, r if r is not None else lo)
    span = hi - lo
    scale = (WIDTH - 1) / span if span > 0 else 0.0

    def col(x: float) -> int:
        return min(WIDTH - 1, max(0, round((x - lo) * scale)))

    pad = " " * (LABEL + 7)
    head_l, head_r = _t(lo, t0), _t(hi, t0)
    out = [
        "timeline (* = could not be placed):",
        f"{pad}{head_l}{' ' * max(1, WIDTH - len(head_l) - len(head_r))}{head_r}",
    ]
    for i, mark in rows:
        op = ops[i]
        bar = [" "] * WIDTH
        a = col(op.call)
        if op.ret is None or math.isinf(op.ret):
            for k in range(a, WIDTH):
                bar[k] = "="
            bar[a] = "["
            bar[WIDTH - 1] = ">"
        else:
            b = col(op.ret)
            for k in range(a, b + 1):
                bar[k] = "="
            if b > a:
                bar[a], bar[b] = "[", "]"
            else:
                bar[a] = "|"
        flag = "*" if mark else " "
        out.append(f"  {flag}  {_label(model, op):<{LABEL}} |{''.join(bar)}|")
    return out
