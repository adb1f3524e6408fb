"""How fast the linearizability checker is on simulated histories.

    .venv/bin/python -m tests.chaos.bench_linear [--seed N]

The histories come from a simulated linearizable system: each client issues
operations one after another; every operation takes effect at a random point
inside its interval. An operation with an unknown outcome (a timed-out write)
takes effect with probability one half, at a random point up to 20 ms after its
call, possibly after the client has moved on. The generators are also used by
the tests (``tests/chaos/test_linear.py``).
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from tests.chaos.linear import Op, Verdict, check
from tests.chaos.models import Model, Register, Ticket

TIMEOUT = 0.010
LATE = 0.020


@dataclass
class _Planned:
    client: int
    key: str
    kind: str
    value: object
    call: float
    ret: float | None
    point: float | None  # when it takes effect; None = never


def _plan(
    rng: random.Random,
    n_ops: int,
    clients: int,
    *,
    pick: Callable[[int], tuple[str, str, object]],
    unknown_rate: float,
    unknown_kinds: tuple[str, ...],
) -> list[_Planned]:
    """Intervals for ``n_ops`` operations spread over ``clients`` sequential clients."""
    plans: list[_Planned] = []
    clock = [rng.uniform(0.0, 0.001) for _ in range(clients)]
    for n in range(n_ops):
        c = min(range(clients), key=lambda k: clock[k])
        key, kind, value = pick(n)
        call = clock[c]
        dur = 0.0002 + rng.expovariate(1 / 0.002)
        if kind in unknown_kinds and rng.random() < unknown_rate:
            point = call + rng.uniform(0.0, LATE) if rng.random() < 0.5 else None
            plans.append(_Planned(c, key, kind, value, call, None, point))
            clock[c] = call + TIMEOUT
        else:
            ret = call + dur
            plans.append(_Planned(c, key, kind, value, call, ret, rng.uniform(call, ret)))
            clock[c] = ret + rng.uniform(0.0, 0.0005)
    return plans


def _outputs(plans: list[_Planned], model: Model) -> list[Op]:
    """Apply the planned operations in the order of their points; record what they return."""
    states: dict[str, Hashable] = {}
    outputs: list[object] = [None] * len(plans)
    applied = sorted((p.point, i) for i, p in enumerate(plans) if p.point is not None)
    for _, i in applied:
        p = plans[i]
        before = states.get(p.key, model.init())
        probe = Op(p.client, p.key, p.kind, p.value, None, p.call, None)
        _, after = model.step(before, probe)
        if p.kind == "get":
            outputs[i] = before
        elif p.kind == "set":
            outputs[i] = "OK"
        else:
            outputs[i] = after
        states[p.key] = after
    return [
        Op(
            p.client,
            p.key,
            p.kind,
            p.value,
            outputs[i] if p.ret is not None else None,
            p.call,
            p.ret,
        )
        for i, p in enumerate(plans)
    ]


def register_history(
    rng: random.Random,
    n_ops: int,
    keys: int,
    clients: int,
    *,
    unknown_rate: float = 0.0,
    read_ratio: float = 0.5,
) -> list[Op]:
    """A linearizable register history; written values are unique (``v<n>``)."""

    def pick(n: int) -> tuple[str, str, object]:
        key = f"k{rng.randrange(keys)}"
        if rng.random() < read_ratio:
            return key, "get", None
        return key, "set", f"v{n}"

    plans = _plan(rng, n_ops, clients, pick=pick, unknown_rate=unknown_rate, unknown_kinds=("set",))
    return _outputs(plans, Register())


def ticket_history(
    rng: random.Random, n_ops: int, clients: int, *, unknown_rate: float = 0.0
) -> list[Op]:
    """A linearizable history of one ticket counter (key ``ticket``)."""
    plans = _plan(
        rng,
        n_ops,
        clients,
        pick=lambda n: ("ticket", "ticket", None),
        unknown_rate=unknown_rate,
        unknown_kinds=("ticket",),
    )
    return _outputs(plans, Ticket())


def _run(name: str, ops: list[Op], model: Model, repeat: int, *, fast_path: bool = True) -> None:
    """Check ``ops`` ``repeat`` times; print the best time (the machine may be shared)."""
    times: list[float] = []
    verdict: Verdict | None = None
    for _ in range(repeat):
        start = time.perf_counter()
        verdict = check(ops, model, deadline=120.0, fast_path=fast_path)
        times.append(time.perf_counter() - start)
    assert verdict is not None
    best = min(times)
    unknown = sum(op.ret is None for op in ops)
    print(
        f"{name:<46} ops={len(ops):>6} unknown={unknown:>4} keys={verdict.keys:>3} "
        f"ok={verdict.ok!s:<5} best {best:7.3f}s {len(ops) / best:>10,.0f} ops/s"
    )


def _stale(ops: list[Op]) -> list[Op]:
    """``ops`` with one late read made stale: it returns a value overwritten long before."""
    out = list(ops)
    for i in range(len(out) - 1, -1, -1):
        op = out[i]
        if op.kind != "get" or op.ret is None:
            continue
        old = [
            w.value
            for w in out
            if w.key == op.key and w.kind == "set" and w.ret is not None and w.ret < op.call
        ]
        if len(old) >= 3 and old[-3] != op.output:
            out[i] = Op(op.client, op.key, op.kind, op.value, old[-3], op.call, op.ret)
            return out
    raise ValueError("no read to make stale")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    rep = args.repeat
    reg = register_history(rng, 20_000, 200, 10)
    _run("register 20k ops, 200 keys, 10 clients", reg, Register(), rep)
    # Unknown outcomes for 6% of the writes, i.e. about 3% of all operations.
    regu = register_history(rng, 20_000, 200, 10, unknown_rate=0.06)
    _run("  same, ~3% of ops unknown-outcome writes", regu, Register(), rep)
    _run("  same, without the model's shortcuts", regu, Register(), rep, fast_path=False)
    _run("  same, one stale read (violation)", _stale(regu), Register(), rep)
    tic = ticket_history(rng, 5_000, 5)
    _run("ticket 5k ops, 5 clients (fast path)", tic, Ticket(), rep)
    _run("  same, general search", tic, Ticket(), rep, fast_path=False)
    ticu = ticket_history(rng, 5_000, 5, unknown_rate=0.03)
    _run("  3% unknown outcomes (fast path)", ticu, Ticket(), rep)
    _run("  3% unknown outcomes, general search", ticu, Ticket(), rep, fast_path=False)
    one = register_history(rng, 5_000, 1, 10, unknown_rate=0.06)
    _run("hard: register 5k ops, ONE key, 10 clients, ~3%", one, Register(), 1)


if __name__ == "__main__":
    main()
