"""Tests of the linearizability checker (``tests.chaos.linear``) and its models."""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from collections.abc import Sequence
from typing import Any

import pytest

from tests.chaos.bench_linear import register_history, ticket_history
from tests.chaos.explain import stuck_after
from tests.chaos.linear import Op, check, from_json, to_json
from tests.chaos.models import Model, Register, Ticket

REG = Register()
TIC = Ticket()


def s(client: int, value: Any, call: float, ret: float | None, key: str = "x") -> Op:
    return Op(client, key, "set", value, "OK" if ret is not None else None, call, ret)


def g(client: int, output: Any, call: float, ret: float | None, key: str = "x") -> Op:
    return Op(client, key, "get", None, output, call, ret)


def t(client: int, output: int | None, call: float, ret: float | None) -> Op:
    return Op(client, "ticket", "ticket", None, output, call, ret)


def both(ops: Sequence[Op], model: Model) -> bool | None:
    """Check with and without the model's shortcuts; they must agree."""
    fast = check(ops, model).ok
    slow = check(ops, model, fast_path=False).ok
    assert fast == slow, (fast, slow)
    return fast


# --- brute force ---------------------------------------------------------------------------


def brute_force(ops: Sequence[Op], model: Model) -> bool:
    """Linearizable iff some permutation of the known operations plus some subset of the
    unknown ones respects real time (a before b whenever a returned before b was called)
    and the model. Unknown operations return at infinity."""
    known = [i for i, op in enumerate(ops) if op.ret is not None]
    unknown = [i for i, op in enumerate(ops) if op.ret is None]

    def ret(i: int) -> float:
        r = ops[i].ret
        return math.inf if r is None else r

    for size in range(len(unknown) + 1):
        for chosen in itertools.combinations(unknown, size):
            for perm in itertools.permutations(known + list(chosen)):
                if any(
                    ret(perm[b]) < ops[perm[a]].call
                    for a in range(len(perm))
                    for b in range(a + 1, len(perm))
                ):
                    continue
                state = model.init()
                for i in perm:
                    legal, state = model.step(state, ops[i])
                    if not legal:
                        break
                else:
                    return True
    return False


def small_history(rng: random.Random, kind: str) -> list[Op]:
    """A small history on an integer time grid (so timestamps often tie) from a simulated
    execution, with unknown outcomes (half of them applied, possibly late) and, half
    of the time, one output changed at random."""
    n = rng.randint(1, 7)
    model: Model = REG if kind == "reg" else TIC
    plans: list[tuple[Op, float | None]] = []
    for c in range(n):
        call = float(rng.randint(0, 8))
        ret: float | None = call + rng.randint(0, 3)
        assert ret is not None
        point: float | None = rng.uniform(call, ret)
        if rng.random() < 0.25:
            point = call + rng.uniform(0, 4) if rng.random() < 0.5 else None
            ret = None
        if kind == "reg":
            op = Op(c, "x", "set", rng.choice("abc"), None, call, ret)
            if rng.random() < 0.5:
                op = Op(c, "x", "get", None, None, call, ret)
        else:
            op = Op(c, "ticket", "ticket", None, None, call, ret)
        plans.append((op, point))
    outputs: dict[int, Any] = {}
    state = model.init()
    for _, idx in sorted((p, i) for i, (_, p) in enumerate(plans) if p is not None):
        op = plans[idx][0]
        before = state
        _, state = model.step(state, op)
        outputs[idx] = before if op.kind == "get" else "OK" if op.kind == "set" else state
    ops = [
        dataclasses.replace(op, output=outputs.get(i) if op.ret is not None else None)
        for i, (op, _) in enumerate(plans)
    ]
    mutable = [i for i, op in enumerate(ops) if op.ret is not None and op.kind != "set"]
    if mutable and rng.random() < 0.5:
        i = rng.choice(mutable)
        choices: list[Any]
        if kind == "reg":
            choices = [x for x in (None, "a", "b", "c") if x != ops[i].output]
        else:
            choices = [x for x in range(1, n + 1) if x != ops[i].output]
        if choices:
            ops[i] = dataclasses.replace(ops[i], output=rng.choice(choices))
    return ops


@pytest.mark.parametrize("kind", ["reg", "ticket"])
def test_search_agrees_with_brute_force(kind: str) -> None:
    rng = random.Random(20240909 if kind == "reg" else 7)
    model: Model = REG if kind == "reg" else TIC
    verdicts = {True: 0, False: 0}
    for _ in range(300):
        ops = small_history(rng, kind)
        expected = brute_force(ops, model)
        verdicts[expected] += 1
        assert check(ops, model).ok is expected, ops
        assert check(ops, model, fast_path=False).ok is expected, ops
    # Both outcomes are well represented.
    assert min(verdicts.values()) > 60, verdicts


def test_search_agrees_with_brute_force_on_random_outputs() -> None:
    """Outputs drawn at random, unrelated to any execution: mostly violations."""
    rng = random.Random(99)
    for _ in range(200):
        ops: list[Op] = []
        for c in range(rng.randint(1, 6)):
            call = float(rng.randint(0, 6))
            ret = None if rng.random() < 0.3 else call + rng.randint(0, 3)
            if rng.random() < 0.5:
                ops.append(s(c, rng.choice("ab"), call, ret))
            else:
                ops.append(g(c, rng.choice([None, "a", "b"]), call, ret))
        expected = brute_force(ops, REG)
        assert check(ops, REG).ok is expected, ops
        assert check(ops, REG, fast_path=False).ok is expected, ops


# --- registers -----------------------------------------------------------------------------


def test_empty_history_is_linearizable() -> None:
    v = check([], REG)
    assert (v.ok, v.ops, v.keys, v.failed_key) == (True, 0, 0, None)


def test_sequential_register() -> None:
    ok = [s(1, "a", 0, 1), g(2, "a", 2, 3), s(1, "b", 4, 5), g(2, "b", 6, 7)]
    assert both(ok, REG) is True
    assert both([g(1, None, 0, 1), s(1, "a", 2, 3), g(1, "a", 4, 5)], REG) is True
    bad = [s(1, "a", 0, 1), g(2, "a", 2, 3), s(1, "b", 4, 5), g(2, "a", 6, 7)]
    assert both(bad, REG) is False


def test_concurrent_read_may_see_either_value() -> None:
    for seen in ("a", "b"):
        assert both([s(1, "a", 0, 1), s(2, "b", 2, 6), g(3, seen, 3, 5)], REG) is True


def test_concurrent_writes_then_reads_cannot_flip_back() -> None:
    writes = [s(1, "a", 0, 5), s(2, "b", 1, 4)]
    assert both([*writes, g(3, "b", 6, 7), g(3, "b", 8, 9)], REG) is True
    assert both([*writes, g(3, "a", 6, 7), g(3, "a", 8, 9)], REG) is True
    assert both([*writes, g(3, "b", 6, 7), g(3, "a", 8, 9)], REG) is False


def test_reads_of_concurrent_writes_must_agree_on_one_order() -> None:
    # Two readers see the two concurrent writes in opposite orders.
    writes = [s(1, "a", 0, 10), s(2, "b", 0, 10)]
    r1 = [g(3, "a", 1, 2), g(3, "b", 3, 4)]
    r2 = [g(4, "b", 1, 2), g(4, "a", 3, 4)]
    assert both([*writes, *r1], REG) is True
    assert both([*writes, *r1, *r2], REG) is False


def test_stale_read_after_partition() -> None:
    # The write completes; a later read that does not overlap it returns the old value
    # (a deposed leader answering from its own state).
    h = [s(1, "old", 0, 1), s(1, "new", 2, 3), g(2, "old", 4, 5)]
    v = check(h, REG)
    assert v.ok is False
    assert v.failed_key == "x"
    assert both(h, REG) is False


def test_explanation_names_the_offending_operation() -> None:
    h = [s(1, "old", 10, 11), s(1, "new", 12, 13), g(7, "old", 14, 15)]
    v = check(h, REG, fast_path=False)
    assert v.ok is False
    text = v.explanation
    assert "NOT linearizable" in text
    placed, _, unplaced = text.partition("could not be placed next:")
    assert "set('new') -> OK" in placed
    assert "c7 get() -> 'old'" in unplaced
    assert "illegal in this state" in unplaced
    assert "model state after the prefix: 'new'" in text
    # Times are relative to the first call of the history, and a timeline is drawn.
    assert "[+4.0000, +5.0000]" in text
    assert "timeline" in text and "|" in text


def test_read_of_a_value_never_written() -> None:
    h = [s(1, "a", 0, 1), g(2, "zzz", 2, 3)]
    assert both(h, REG) is False
    v = check(h, REG)
    assert "'zzz'" in v.explanation and "no set wrote" in v.explanation


def test_lost_write() -> None:
    # An acknowledged write disappears: a later read sees the value before it.
    assert both([s(1, "a", 0, 1), g(2, None, 2, 3)], REG) is False
    h = [s(1, "a", 0, 1), s(1, "b", 2, 3), g(2, "b", 4, 5), g(2, "a", 6, 7)]
    assert both(h, REG) is False


def test_set_must_answer_ok() -> None:
    h = [Op(1, "x", "set", "a", "ERR", 0, 1)]
    assert both(h, REG) is False


def test_equal_timestamps_count_as_concurrent() -> None:
    # The read is called at the very instant the write returns: either order is allowed.
    writes = [s(1, "a", 0, 1), s(1, "b", 1.5, 2)]
    assert both([*writes, g(2, "a", 2, 3)], REG) is True
    assert both([*writes, g(2, "a", 2.001, 3)], REG) is False
    # The same for two writes that touch: the second may take effect first.
    assert both([s(1, "a", 0, 1), s(1, "b", 1, 2), g(2, "a", 3, 4)], REG) is True


# --- unknown outcomes ------------------------------------------------------------------------


def test_unknown_write_can_explain_a_read() -> None:
    h = [s(1, "a", 0, 1), s(2, "b", 2, None), g(3, "b", 50, 51)]
    assert both(h, REG) is True
    # ... or never have happened.
    h = [s(1, "a", 0, 1), s(2, "b", 2, None), g(3, "a", 50, 51)]
    assert both(h, REG) is True
    # ... or happen late, after reads that missed it.
    h = [s(1, "a", 0, 1), s(2, "b", 2, None), g(3, "a", 50, 51), g(3, "b", 60, 61)]
    assert both(h, REG) is True


def test_unknown_write_cannot_explain_an_earlier_read() -> None:
    # The read returned before the write was even sent.
    h = [s(1, "a", 0, 1), g(3, "b", 2, 3), s(2, "b", 4, None)]
    assert both(h, REG) is False


def test_unknown_write_once_seen_stays_seen() -> None:
    h = [s(1, "a", 0, 1), s(2, "b", 2, None), g(3, "b", 50, 51), g(3, "a", 60, 61)]
    assert both(h, REG) is False


def test_unknown_write_overwritten_before_anyone_read_it() -> None:
    h = [s(1, "a", 0, 1), s(2, "b", 2, None), s(1, "c", 3, 4), g(3, "c", 5, 6), g(3, "a", 7, 8)]
    assert both(h, REG) is False
    h = [s(1, "a", 0, 1), s(2, "b", 2, None), s(1, "c", 3, 4), g(3, "c", 5, 6), g(3, "b", 7, 8)]
    assert both(h, REG) is True


def test_unknown_reads_constrain_nothing() -> None:
    h = [s(1, "a", 0, 1), g(2, "nonsense", 0, None), g(3, "a", 2, 3)]
    assert both(h, REG) is True


def test_many_unknown_writes_of_the_same_value() -> None:
    # Interchangeable unknown operations (same kind and value): only one is needed.
    h = [s(c, "b", c, None) for c in range(8)]
    h += [s(9, "a", 20, 21), g(9, "b", 30, 31), g(9, "a", 40, 41)]
    assert both(h, REG) is False
    h[-1] = g(9, "b", 40, 41)
    assert both(h, REG) is True


# --- tickets -------------------------------------------------------------------------------


def test_sequential_and_concurrent_tickets() -> None:
    assert both([t(1, 1, 0, 1), t(2, 2, 2, 3), t(1, 3, 4, 5)], TIC) is True
    # Concurrent: either order of the numbers is fine.
    assert both([t(1, 2, 0, 5), t(2, 1, 1, 4), t(3, 3, 6, 7)], TIC) is True


def test_duplicated_ticket_numbers() -> None:
    h = [t(1, 1, 0, 2), t(2, 1, 1, 3), t(3, 2, 4, 5)]
    assert both(h, TIC) is False
    v = check(h, TIC)
    assert "handed out twice" in v.explanation
    assert "ticket() -> 1" in v.explanation.partition("could not be placed next:")[2]


def test_ticket_going_backwards_in_real_time() -> None:
    h = [t(1, 1, 0, 1), t(2, 3, 2, 3), t(1, 2, 4, 5)]
    assert both(h, TIC) is False
    # Ticket 3 came back before ticket 2 was even requested: 3 cannot be placed.
    for fast_path in (True, False):
        v = check(h, TIC, fast_path=fast_path)
        assert "c2 ticket() -> 3" in v.explanation.partition("could not be placed next:")[2]


def test_ticket_gaps_need_unknown_operations() -> None:
    # Ticket 2 was handed out to nobody we know of.
    assert both([t(1, 1, 0, 1), t(1, 3, 2, 3)], TIC) is False
    # An unknown-outcome request sent in time explains it ...
    assert both([t(1, 1, 0, 1), t(2, None, 0.5, None), t(1, 3, 2, 3)], TIC) is True
    # ... one sent after ticket 3 came back does not.
    assert both([t(1, 1, 0, 1), t(1, 3, 2, 3), t(2, None, 4, None)], TIC) is False
    # Unknown requests that never happened are fine.
    assert both([t(2, None, 0, None), t(1, 1, 1, 2), t(3, None, 3, None)], TIC) is True


def test_ticket_output_must_be_an_int() -> None:
    assert both([t(1, 1, 0, 1), Op(2, "ticket", "ticket", None, "2", 2, 3)], TIC) is False
    assert both([Op(1, "ticket", "ticket", None, True, 0, 1)], TIC) is False


# --- partitions, deadline, errors ------------------------------------------------------------


def test_many_keys_one_bad() -> None:
    rng = random.Random(3)
    ops = register_history(rng, 2_000, 40, 6)
    assert check(ops, REG).ok is True
    assert check(ops, REG).keys == 40
    # Make one late read on key k17 stale.
    idx = max(i for i, op in enumerate(ops) if op.key == "k17" and op.kind == "get")
    writes = [op.value for op in ops if op.key == "k17" and op.kind == "set"]
    assert ops[idx].output != writes[0]
    ops[idx] = dataclasses.replace(ops[idx], output=writes[0])
    v = check(ops, REG)
    assert v.ok is False
    assert v.failed_key == "k17"
    assert (v.ops, v.keys) == (2_000, 40)
    assert "key 'k17'" in v.explanation


def test_generated_histories_with_unknown_outcomes() -> None:
    rng = random.Random(11)
    ops = register_history(rng, 3_000, 30, 8, unknown_rate=0.1)
    assert any(op.ret is None for op in ops)
    assert both(ops, REG) is True
    tickets = ticket_history(rng, 1_000, 5, unknown_rate=0.05)
    assert any(op.ret is None for op in tickets)
    assert both(tickets, TIC) is True
    # A ticket handed out again much later.
    late = max(i for i, op in enumerate(tickets) if op.ret is not None)
    tickets[late] = dataclasses.replace(tickets[late], output=500)
    assert both(tickets, TIC) is False


def _hard_history() -> list[Op]:
    """Non-linearizable, but only an exhaustive search over 2^30 orders would show it."""
    n = 30
    ops = [s(c, f"v{c}", 0, 10) for c in range(n)]
    ops += [g(n + c, f"v{c}", 0, 10) for c in range(n)]
    ops += [g(99, "v0", 11, 12), g(99, "v1", 13, 14)]
    return ops


def test_deadline_gives_up_with_none() -> None:
    v = check(_hard_history(), REG, deadline=0.2)
    assert v.ok is None
    assert v.failed_key == "x"
    assert "gave up" in v.explanation


def test_deadline_before_any_key() -> None:
    v = check([s(1, "a", 0, 1)], REG, deadline=0.0)
    assert v.ok is None
    assert v.failed_key == "x"


def test_invalid_histories_are_rejected() -> None:
    with pytest.raises(ValueError, match="before call"):
        check([s(1, "a", 5, 1)], REG)
    with pytest.raises(ValueError, match="finite"):
        check([s(1, "a", math.nan, 1)], REG)
    with pytest.raises(ValueError, match="unknown operation kind"):
        check([Op(1, "x", "cas", "a", "OK", 0, 1)], REG)
    for fast_path in (True, False):
        with pytest.raises(ValueError, match="unknown operation kind"):
            check([Op(1, "t", "get", None, 1, 0, 1)], TIC, fast_path=fast_path)
    with pytest.raises(ValueError, match="unknown operation kind"):
        check([t(1, 1, 0, 1), Op(1, "ticket", "get", None, None, 0, None)], TIC)


def test_stuck_after_lists_the_blocking_operation_first() -> None:
    h = [s(1, "a", 0, 1), g(2, "b", 0.5, 3), s(3, "c", 2, 4), s(4, "d", 5, None)]
    assert stuck_after(h, [0]) == [1, 2]


# --- JSON ----------------------------------------------------------------------------------


def test_json_round_trip() -> None:
    h = [
        s(1, "a", 0.123456789, 1.5),
        s(2, b"\x00\xffbytes", 1.0, None),
        g(3, ("t", 1, None), 2.0, 3.25),
        Op(4, "k", "get", None, [1, [2, "x"]], 4.0, 5.0),
        t(5, 7, 6.0, 7.0),
        Op(6, "kéy", "set", 3.5, "OK", 1e-9, 1e9),
    ]
    text = to_json(h)
    back = from_json(text)
    assert back == h
    assert from_json(to_json([])) == []
    # One operation per line, so a diff of two dumps is readable.
    assert len(text.splitlines()) == len(h) + 2


def test_json_round_trip_preserves_verdicts() -> None:
    ops = register_history(random.Random(5), 500, 5, 4, unknown_rate=0.1)
    back = from_json(to_json(ops))
    assert back == ops
    assert check(back, REG).ok is True


def test_json_rejects_values_it_cannot_restore() -> None:
    with pytest.raises(TypeError):
        to_json([s(1, {"a": 1}, 0, 1)])
