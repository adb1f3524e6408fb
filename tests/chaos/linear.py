"""A linearizability checker for histories recorded by the chaos harness.

A history is a list of :class:`Op`: who called what, with which input, what came
back, and when (call and return times on one monotonic clock). The history is
linearizable when every operation can be given a point inside its interval
``[call, ret]`` such that applying the operations in the order of those points
to the sequential model (``tests.chaos.models``) yields exactly the recorded
outputs.

Algorithm: Wing & Gong's depth-first search with Lowe's improvements, as in the
Go checker porcupine, plus reductions for operations with unknown outcomes.

* P-compositionality: operations on different keys are checked independently
  (a history is linearizable iff each key's sub-history is). Keys are checked
  smallest first, so a cheap violation is found before a hard key eats the
  deadline; the check stops at the first key that fails.
* Per key, the call and return events of the operations with a known outcome
  are kept in a doubly linked list sorted by time. At equal times a call sorts
  before a return, so two operations that merely touch (one returns at the
  instant the other is called) count as concurrent: the checker never reports a
  violation that depends on ordering equal timestamps.
* The search walks the list from its head. The candidates for the next
  linearization point are the operations whose call comes before the first
  return in the list (that operation must be linearized before anything called
  after its return). Linearizing ("lifting") a candidate the model accepts
  unlinks its two events and restarts at the head; when no candidate works the
  search pops the last lifted operation, relinks it ("unlifting": the unlinked
  entries keep their neighbours, as in dancing links) and tries the next
  candidate after it.
* Lowe's cache: each visited configuration (set of linearized operations as a
  Python int bitset, model state) is remembered; a configuration seen before is
  not searched again. Operations are numbered in call order, so the bitset is
  mostly a run of ones at the bottom; the cache stores (length of that run, the
  bits above it), which keeps it small on long partitions.
* Unknown outcomes (``ret is None``: timeout, connection lost after sending)
  have an infinite return time: they may take effect anywhere after their call,
  or never. They are not in the linked list; at each node they are tried only
  after every known candidate (any unknown operation called before the first
  return in the list is a candidate), and the search succeeds as soon as every
  known operation is linearized (the leftovers took effect after everything
  observed, or never). Three sound reductions keep them cheap:

  - dominance: the cache is keyed by (known bitset, state) and holds the sets
    of unknown operations seen with it; a configuration is pruned when a
    *subset* of its unknown operations was seen with the same key, because
    whatever completes the superset also completes the subset (an unknown
    operation need not happen). Trying known candidates first makes the
    subset usually come first;
  - absorption: an unknown operation b is not lifted right after an unknown
    operation t if b from t's parent state reaches the same state (t was
    overwritten): the sibling "parent + b" dominates "parent + t + b". Without
    this, k pending unknown writes cost 2^k at every backtracking point;
  - symmetry: unknown operations with equal ``kind`` and ``value`` are
    interchangeable (models must not look at anything else), so only the
    earliest-called unlinearized one of each class is a candidate.
* Optional model hooks, both used unless ``check(..., fast_path=False)``:
  ``simplify(ops) -> list[Op]`` returns an equivalent history (``Register``
  drops unknown-outcome writes nobody read, and unknown-outcome reads), and
  ``fast_check(ops) -> PartitionResult | None`` decides a key without the
  search, or returns ``None`` to ask for it (``Ticket`` decides exactly: every
  output fixes its position; ``Register`` reports reads of values nobody
  wrote). The tests cross-check both settings against a brute-force checker.

Performance: with many keys the search is close to linear. One key shared by
many concurrent clients is the hard case: a violation there needs an
exhaustive search, whose size grows exponentially with the number of
operations in flight at once; keep histories spread over many keys.

The deadline covers the whole check; when it passes the verdict is ``ok=None``
("gave up"), which callers must treat as a failure.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tests.chaos import explain

if TYPE_CHECKING:
    from tests.chaos.models import Model

__all__ = ["Op", "PartitionResult", "Verdict", "check", "from_json", "search_partition", "to_json"]


@dataclass(frozen=True)
class Op:
    """One client operation as the harness recorded it.

    Operations that definitely failed (rejected before being proposed) are not
    recorded at all. ``ret is None`` means the outcome is unknown; ``output`` is
    then ignored.
    """

    client: int
    key: str
    kind: str
    value: Any
    output: Any
    call: float
    ret: float | None


@dataclass
class Verdict:
    """The result of :func:`check`. ``ok is None`` means the deadline passed (treat as failure)."""

    ok: bool | None
    ops: int
    keys: int
    failed_key: str | None
    explanation: str
    elapsed: float


@dataclass
class PartitionResult:
    """The result for one key.

    ``order`` is the longest linearizable prefix found (indices into the key's
    operations, in linearization order; the whole linearization when ``ok``).
    ``stuck`` lists operations that could not be placed after it (may be empty:
    the explanation then works them out), ``note`` a one-line reason if known.
    """

    ok: bool | None
    order: list[int]
    stuck: list[int]
    note: str = ""


def check(
    ops: Sequence[Op], model: Model, *, deadline: float = 30.0, fast_path: bool = True
) -> Verdict:
    """Check that ``ops`` is linearizable with respect to ``model``, key by key.

    ``deadline`` is in seconds for the whole check. ``fast_path=False`` ignores
    the model's optional ``simplify`` and ``fast_check`` hooks and always runs
    the general search on every operation. ``failed_key`` names the key that
    failed, or the one being checked when the deadline passed.
    """
    start = time.monotonic()
    end = start + deadline
    _validate(ops)
    parts: dict[str, list[Op]] = {}
    for op in ops:
        parts.setdefault(op.key, []).append(op)
    t0 = min((op.call for op in ops), default=0.0)
    fast: Callable[[Sequence[Op]], PartitionResult | None] | None = (
        getattr(model, "fast_check", None) if fast_path else None
    )
    simplify: Callable[[Sequence[Op]], list[Op]] | None = (
        getattr(model, "simplify", None) if fast_path else None
    )
    for key in sorted(parts, key=lambda k: (len(parts[k]), k)):
        key_ops = parts[key]
        if simplify is not None:
            key_ops = simplify(key_ops)
        res: PartitionResult | None = None
        if time.monotonic() >= end:
            res = PartitionResult(None, [], [], "the deadline passed before this key was checked")
        elif fast is not None:
            res = fast(key_ops)
        if res is None:
            res = search_partition(key_ops, model, end)
        if res.ok is not True:
            text = explain.render(key, key_ops, model, res, t0=t0, deadline=deadline)
            if len(key_ops) < len(parts[key]):
                text += (
                    f"\n({len(parts[key]) - len(key_ops)} unknown-outcome operations on this key"
                    " that cannot matter were set aside)"
                )
            return Verdict(res.ok, len(ops), len(parts), key, text, time.monotonic() - start)
    elapsed = time.monotonic() - start
    text = f"linearizable: {len(ops)} operations on {len(parts)} keys, checked in {elapsed:.3f}s"
    return Verdict(True, len(ops), len(parts), None, text, elapsed)


def _validate(ops: Sequence[Op]) -> None:
    for op in ops:
        if not math.isfinite(op.call):
            raise ValueError(f"call time must be finite: {op}")
        if op.ret is not None and not op.ret >= op.call:
            raise ValueError(f"return time before call time: {op}")


def search_partition(ops: Sequence[Op], model: Model, end: float) -> PartitionResult:
    """The depth-first search for one key (see the module docstring).

    ``end`` is the ``time.monotonic()`` value at which to give up.

    Known operations are numbered ``0..K-1`` and unknown ones ``0..U-1``, each in
    call order; the stack and the best path hold ``a`` for known operation
    ``a`` and ``-1 - b`` for unknown operation ``b``. Since operations are
    linearized roughly in call order, the known bitset is mostly a run of ones
    at the bottom: the cache stores it as (length of that run, the rest), which
    keeps memory small on long partitions.
    """
    state: Hashable = model.init()
    by_call = sorted(range(len(ops)), key=lambda i: (ops[i].call, i))
    kops = [i for i in by_call if ops[i].ret is not None]  # known number -> index in ops
    uops = [i for i in by_call if ops[i].ret is None]  # unknown number -> index in ops
    n_known = len(kops)
    if n_known == 0:
        return PartitionResult(True, [], [])
    kop = [ops[i] for i in kops]
    uop = [ops[i] for i in uops]
    ucall = [op.call for op in uop]

    def original(path: tuple[int, Any] | None) -> list[int]:
        return [kops[x] if x >= 0 else uops[-1 - x] for x in _unwind(path)]

    # Known operations: entry 2a is a's call, 2a+1 its return; head and tail sentinels.
    head, tail = 2 * n_known, 2 * n_known + 1
    nxt = [0] * (2 * n_known + 2)
    prv = [0] * (2 * n_known + 2)
    rets: list[float] = []
    events: list[tuple[float, int, int]] = []
    for a, op in enumerate(kop):
        assert op.ret is not None
        rets.append(op.ret)
        events.append((op.call, 0, a))
        events.append((op.ret, 1, a))
    events.sort()
    seq = [head, *(2 * a + kind for _, kind, a in events), tail]
    for x, y in itertools.pairwise(seq):
        nxt[x] = y
        prv[y] = x

    # Unknown operations, in classes of interchangeable ones (equal kind and value), each
    # in call order. Only a class's first unlinearized member is a candidate, so the
    # linearized members of a class are always a prefix of it: lifted[c] of them.
    by_class: dict[Hashable, list[int]] = {}
    for b, op in enumerate(uop):
        cls: Hashable
        try:
            cls = (op.kind, op.value)
            hash(cls)
        except TypeError:
            cls = ("#unhashable", b)
        by_class.setdefault(cls, []).append(b)
    members = list(by_class.values())
    n_classes = len(members)
    class_of = [0] * len(uop)
    for c, group in enumerate(members):
        for b in group:
            class_of[b] = c
    lifted = [0] * n_classes

    step = model.step
    kb = 0  # bitset of linearized known operations
    ub = 0  # bitset of linearized unknown operations
    nk = 0
    # (run of ones at the bottom of kb, kb above it, state) -> unknown bitsets seen with it
    cache: dict[tuple[int, int, Hashable], list[int]] = {(0, 0, state): [0]}
    stack: list[tuple[int, Hashable, float]] = []  # (op, state before it, bound if unknown)
    path: tuple[int, Any] | None = None  # the stack as a persistent list, for the best prefix
    best: tuple[int, Any] | None = None
    best_depth = 0
    entry = nxt[head]
    phase2 = False  # False: scanning known calls; True: unknown classes, calls up to bound
    bound = 0.0
    ci = 0
    iters = 0
    while True:
        iters += 1
        if not iters & 1023 and time.monotonic() >= end:
            return PartitionResult(None, original(best), [], "gave up: the deadline passed")
        if not phase2:
            if not entry & 1:
                a = entry >> 1
                legal, ns = step(state, kop[a])
                if legal:
                    nkb = kb | (1 << a)
                    low = (nkb ^ (nkb + 1)).bit_length() - 1
                    if _fresh(cache, (low, nkb >> low, ns), ub):
                        stack.append((a, state, 0.0))
                        p, q = prv[entry], nxt[entry]
                        nxt[p] = q
                        prv[q] = p
                        r = entry | 1
                        p, q = prv[r], nxt[r]
                        nxt[p] = q
                        prv[q] = p
                        state = ns
                        kb = nkb
                        nk += 1
                        path = (a, path)
                        if len(stack) > best_depth:
                            best_depth = len(stack)
                            best = path
                        if nk == n_known:
                            return PartitionResult(True, original(path), [])
                        entry = nxt[head]
                        continue
                entry = nxt[entry]
                continue
            # The first return in the list: the known candidates are exhausted.
            bound = rets[entry >> 1]
            ci = 0
            phase2 = True
        while ci < n_classes:
            group = members[ci]
            j = lifted[ci]
            if j < len(group) and ucall[group[j]] <= bound:
                b = group[j]
                legal, ns = step(state, uop[b])
                if legal and stack:
                    t, before, _ = stack[-1]
                    if t < 0 and class_of[-1 - t] != ci:
                        # The last lift was an unknown t, and b was a candidate before it: if b
                        # reaches the same state from there, t was absorbed, and the sibling
                        # (parent + b) dominates (parent + t + b).
                        legal_p, ns_p = step(before, uop[b])
                        if legal_p and ns_p == ns:
                            legal = False
                if legal:
                    nub = ub | (1 << b)
                    low = (kb ^ (kb + 1)).bit_length() - 1
                    if _fresh(cache, (low, kb >> low, ns), nub):
                        stack.append((-1 - b, state, bound))
                        lifted[ci] = j + 1
                        state = ns
                        ub = nub
                        path = (-1 - b, path)
                        if len(stack) > best_depth:
                            best_depth = len(stack)
                            best = path
                        entry = nxt[head]
                        phase2 = False
                        break
            ci += 1
        else:
            # Nothing can be linearized next: undo the last choice and try the one after it.
            if not stack:
                return PartitionResult(False, original(best), [])
            x, state, bound = stack.pop()
            assert path is not None
            path = path[1]
            if x >= 0:
                r = 2 * x + 1
                nxt[prv[r]] = r
                prv[nxt[r]] = r
                c = 2 * x
                nxt[prv[c]] = c
                prv[nxt[c]] = c
                kb ^= 1 << x
                nk -= 1
                entry = nxt[c]
                phase2 = False
            else:
                ci = class_of[-1 - x]
                lifted[ci] -= 1
                ub ^= 1 << (-1 - x)
                ci += 1


def _fresh(
    cache: dict[tuple[int, int, Hashable], list[int]], key: tuple[int, int, Hashable], ub: int
) -> bool:
    """Whether reaching ``key`` (known operations, state) with the unknown
    operations ``ub`` is new: no earlier visit used a subset of them (that
    visit could do everything this one can). A new visit is remembered."""
    seen = cache.get(key)
    if seen is None:
        cache[key] = [ub]
        return True
    for x in seen:
        if not x & ~ub:
            return False
    seen.append(ub)
    return True


def _unwind(path: tuple[int, Any] | None) -> list[int]:
    out: list[int] = []
    while path is not None:
        out.append(path[0])
        path = path[1]
    out.reverse()
    return out


# --- JSON -------------------------------------------------------------------------------------


def _enc(v: Any) -> Any:
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, bytes):
        return {"$bytes": base64.b64encode(v).decode("ascii")}
    if isinstance(v, tuple):
        return {"$tuple": [_enc(x) for x in v]}
    if isinstance(v, list):
        return [_enc(x) for x in v]
    raise TypeError(f"cannot encode {type(v).__name__} in a history: {v!r}")


def _dec(v: Any) -> Any:
    if isinstance(v, list):
        return [_dec(x) for x in v]
    if isinstance(v, dict):
        if set(v) == {"$bytes"}:
            return base64.b64decode(v["$bytes"])
        if set(v) == {"$tuple"}:
            return tuple(_dec(x) for x in v["$tuple"])
        raise ValueError(f"unexpected object in a history: {v!r}")
    return v


def to_json(ops: Iterable[Op]) -> str:
    """The history as JSON, one operation per line (values: JSON types, bytes, tuples)."""
    lines = [
        json.dumps(
            {
                "client": op.client,
                "key": op.key,
                "kind": op.kind,
                "value": _enc(op.value),
                "output": _enc(op.output),
                "call": op.call,
                "ret": op.ret,
            }
        )
        for op in ops
    ]
    body = ",\n".join(lines)
    return f'{{"format": "uhaha-linear-history", "version": 1, "ops": [\n{body}\n]}}\n'


def from_json(text: str) -> list[Op]:
    """The inverse of :func:`to_json` (also accepts a bare list of operations)."""
    doc = json.loads(text)
    items = doc["ops"] if isinstance(doc, dict) else doc
    out: list[Op] = []
    for d in items:
        ret = d["ret"]
        out.append(
            Op(
                client=int(d["client"]),
                key=str(d["key"]),
                kind=str(d["kind"]),
                value=_dec(d["value"]),
                output=_dec(d["output"]),
                call=float(d["call"]),
                ret=None if ret is None else float(ret),
            )
        )
    return out
