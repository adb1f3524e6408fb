"""Concurrent clients over RESP (redis-py) and HTTP (httpx), and the history they record.

Each worker thread runs one operation at a time against the cluster, half of
them over RESP and half over JSON HTTP, with short timeouts, following
redirects to the leader (``MOVED 0 addr`` / ``TRY addr`` over RESP, ``307``
with ``Location`` over HTTP). Every attempt ends in one of three ways:

- **acknowledged**: an answer; recorded with its output and return time.
- **definitely not applied**: refused before being proposed (a redirect,
  ``CLUSTERDOWN``, connection refused or a connect timeout: nothing was sent),
  or an error the framework documents as "not applied" (``ERR leadership
  changed, write not applied``: the entry was overwritten or never became
  part of the log; ``ERR node is shutting down`` / ``is not running``). Not
  recorded; the worker tries the leader it was told about, or another node,
  within the operation's budget. Trusting those documented errors is part of
  what is tested: a write they refused that took effect anyway shows up as a
  linearizability violation.
- **outcome unknown**: a timeout or a connection lost after sending, or the
  server's own ``ERR timeout waiting ...`` (HTTP 504). A write is recorded with
  ``ret=None`` (the checker lets it take effect at any point after its call,
  or never); the worker then continues as a *new* client id, because a client
  with an operation still in flight is not sequential any more (Jepsen's
  rule). A read with an unknown outcome has no effect and is dropped.

Values written are unique (``<worker>-<sequence>``), so the checker can tell
writes apart and an unknown write nobody read costs it almost nothing.

Workloads: ``kv`` (SET/GET on many keys of ``examples/kvdb.py``), ``ticket``
(``TICKET`` of ``examples/ticket.py``: every acknowledged ticket unique and
increasing in real time), and ``durable`` (the kv clients; the run crashes the
whole cluster at once and checks with :func:`lost_writes` that every
acknowledged write survived).
"""

from __future__ import annotations

import enum
import random
import select
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import httpx
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .harness import CONNECTION
from .linear import Op

__all__ = [
    "FINAL_CLIENT",
    "Attempt",
    "History",
    "HttpClient",
    "Outcome",
    "RespClient",
    "Router",
    "Workers",
    "execute",
    "lost_writes",
    "resolve_unknown_writes",
    "ticket_problems",
]

MAX_TRAILS = 50_000
"""At most this many operations' failed attempts are kept (memory is bounded)."""

FINAL_CLIENT = 0
"""The client id of the harness's own final reads."""

NOT_APPLIED = (
    "ERR leadership changed",
    "ERR node is shutting down",
    "ERR node is not running",
)
"""Error replies the framework documents as "definitely not applied"."""


class Outcome(enum.Enum):
    OK = "ok"
    REDIRECT = "redirect"
    REFUSED = "refused"  # definitely not applied
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Attempt:
    outcome: Outcome
    value: Any = None
    note: str = ""
    """The error, or the redirect's address."""


def classify_error(message: str) -> Attempt:
    """An error reply (RESP error line or HTTP ``{"error"}``) as an attempt's outcome."""
    if message.startswith(("MOVED ", "TRY ")):
        return Attempt(Outcome.REDIRECT, note=message.rsplit(maxsplit=1)[-1])
    if message.startswith("CLUSTERDOWN") or message.startswith(NOT_APPLIED):
        return Attempt(Outcome.REFUSED, note=message)
    # "ERR timeout waiting ...", "ERR node stopped after ...", anything unexpected:
    # for a write we cannot know, so it stays in the history as unknown.
    return Attempt(Outcome.UNKNOWN, note=message)


class Client(Protocol):
    name: str

    def request(self, address: str, args: list[str], read: bool) -> Attempt: ...

    def close(self) -> None: ...


class RespClient:
    """redis-py connections, one per node address, reused while healthy."""

    name = "resp"

    def __init__(self, timeout: float, connect_timeout: float = 1.0) -> None:
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._conns: dict[str, Any] = {}

    def _connection(self, address: str) -> Any:
        conn = self._conns.get(address)
        if conn is not None and _stale(conn):
            conn.disconnect()
            conn = None
        if conn is None:
            host, port = address.rsplit(":", 1)
            conn = CONNECTION(
                host=host,
                port=int(port),
                socket_timeout=self.timeout,
                socket_connect_timeout=self.connect_timeout,
                retry=Retry(NoBackoff(), 0),
                decode_responses=True,
            )
            self._conns[address] = conn
        return conn

    def request(self, address: str, args: list[str], read: bool) -> Attempt:
        conn = self._connection(address)
        try:
            conn.connect()  # no-op when connected; errors here mean nothing was sent
        except (redis.RedisError, OSError) as e:
            conn.disconnect()
            return Attempt(Outcome.REFUSED, note=f"connect: {type(e).__name__}")
        try:
            conn.send_command(*args)
            return Attempt(Outcome.OK, conn.read_response())
        except redis.ResponseError as e:
            return classify_error(resp_error_text(e))
        except (redis.RedisError, OSError) as e:
            conn.disconnect()
            return Attempt(Outcome.UNKNOWN, note=f"{type(e).__name__}: {e}")

    def close(self) -> None:
        for conn in self._conns.values():
            conn.disconnect()
        self._conns.clear()


def resp_error_text(e: redis.ResponseError) -> str:
    """The whole error line: redis-py strips a code it knows (``MOVED``, ``ERR``,
    ``CLUSTERDOWN`` ...) off the message and keeps it in ``status_code``."""
    code = getattr(e, "status_code", None)
    text = str(e)
    return f"{code} {text}" if code and not text.startswith(f"{code} ") else text


def _stale(conn: Any) -> bool:
    """A connected socket that is readable while no reply is due: closed by the
    server (a restart) or out of step. Dropping it *before* sending keeps such
    attempts "not sent" rather than "unknown"."""
    sock: Any = getattr(conn, "_sock", None)
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class HttpClient:
    """httpx with its own pooled connections; redirects are followed by the caller."""

    name = "http"

    def __init__(self, timeout: float, connect_timeout: float = 1.0) -> None:
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=connect_timeout, pool=connect_timeout),
            follow_redirects=False,
        )

    def request(self, address: str, args: list[str], read: bool) -> Attempt:
        name, rest = args[0].lower(), args[1:]
        url = f"http://{address}/cmd/{name}"
        try:
            if read:
                r = self._http.get(url, params=[("arg", a) for a in rest])
            else:
                r = self._http.post(url, json=rest)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
            return Attempt(Outcome.REFUSED, note=f"connect: {type(e).__name__}")
        except httpx.HTTPError as e:
            return Attempt(Outcome.UNKNOWN, note=f"{type(e).__name__}: {e}")
        if r.status_code == 200:
            return Attempt(Outcome.OK, r.json().get("result"))
        if r.status_code == 307:
            location = httpx.URL(r.headers.get("location", ""))
            if location.host and location.port:
                return Attempt(Outcome.REDIRECT, note=f"{location.host}:{location.port}")
        try:
            message = str(r.json().get("error", ""))
        except ValueError:
            message = f"HTTP {r.status_code}"
        attempt = classify_error(message)
        if r.status_code == 504:  # the server's "outcome unknown"
            return Attempt(Outcome.UNKNOWN, note=message)
        return attempt

    def close(self) -> None:
        self._http.close()


class Router:
    """Where to send the next attempt: the last leader a node named, else any member."""

    def __init__(self, addresses: Callable[[], Sequence[str]]) -> None:
        self._addresses = addresses
        self.hint: str | None = None

    def target(self, rng: random.Random, avoid: str | None = None) -> str:
        hint = self.hint
        if hint is not None and hint != avoid:
            return hint
        choices = [a for a in self._addresses() if a != avoid] or list(self._addresses())
        return rng.choice(choices)

    def redirected(self, address: str) -> None:
        self.hint = address

    def failed(self, address: str) -> None:
        if self.hint == address:
            self.hint = None


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    value: Any
    call: float
    ret: float | None
    attempts: int
    note: str
    trail: tuple[str, ...] = ()
    """Every attempt that was not answered: ``"<time> <address> <outcome> <note>"``."""


def execute(
    client: Client,
    router: Router,
    args: list[str],
    *,
    read: bool,
    rng: random.Random,
    clock: Callable[[], float],
    budget: float,
    max_attempts: int = 8,
) -> Result:
    """One logical operation: attempts until an answer, an unknown outcome, or the
    budget (seconds) or attempt count runs out (then it definitely did not happen).

    ``call`` is the time the *last* attempt was sent: the earlier ones were
    refused, so the operation cannot have taken effect before it."""
    start = clock()
    avoid: str | None = None
    note = ""
    trail: list[str] = []
    for n in range(1, max_attempts + 1):
        address = router.target(rng, avoid)
        call = clock()
        a = client.request(address, args, read)
        if a.outcome is Outcome.OK:
            return Result(Outcome.OK, a.value, call, clock(), n, "", tuple(trail))
        trail.append(f"{call:.4f} {address} {a.outcome.value} {a.note}")
        if a.outcome is Outcome.UNKNOWN:
            router.failed(address)
            return Result(Outcome.UNKNOWN, None, call, None, n, a.note, tuple(trail))
        note = a.note
        if a.outcome is Outcome.REDIRECT and a.note != address:
            router.redirected(a.note)
            avoid = None
        else:
            router.failed(address)
            avoid = address
            if clock() - start > budget:
                break
            time.sleep(0.02 * n)  # pacing: no leader yet, or the node is down
    return Result(Outcome.REFUSED, None, start, None, max_attempts, note, tuple(trail))


@dataclass
class History:
    """The operations of one run and the counts for its summary line (thread-safe)."""

    t0: float = field(default_factory=time.monotonic)
    ops: list[Op] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    trails: list[dict[str, Any]] = field(default_factory=list)
    """Operations with attempts that were not answered, and what those got
    (the evidence when a "not applied" answer turns out to be wrong)."""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next_client: int = FINAL_CLIENT + 1

    def clock(self) -> float:
        """Seconds since the run started (the times of ops and of the timeline)."""
        return time.monotonic() - self.t0

    def new_client(self) -> int:
        with self._lock:
            self._next_client += 1
            return self._next_client - 1

    def record(self, client: int, key: str, kind: str, value: Any, res: Result) -> None:
        """Count ``res`` and keep it in the history if it may have had an effect."""
        with self._lock:
            self.counts["ops"] += 1
            if res.note:
                self.errors[_error_class(res.note)] += 1
            if res.trail and len(self.trails) < MAX_TRAILS:
                self.trails.append(
                    {
                        "client": client,
                        "key": key,
                        "kind": kind,
                        "value": value,
                        "outcome": res.outcome.value,
                        "attempts": list(res.trail),
                    }
                )
            if res.outcome is Outcome.OK:
                self.counts["acked"] += 1
                self.ops.append(Op(client, key, kind, value, res.value, res.call, res.ret))
            elif res.outcome is Outcome.UNKNOWN:
                self.counts["unknown"] += 1
                if kind != "get":  # an unknown read changed nothing
                    self.ops.append(Op(client, key, kind, value, None, res.call, None))
            else:
                self.counts["failed"] += 1

    def snapshot(self) -> list[Op]:
        with self._lock:
            return list(self.ops)

    def snapshot_trails(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.trails)


def _error_class(note: str) -> str:
    if ":" in note and not note.startswith(("ERR", "CLUSTERDOWN")):
        return note.split(":", 1)[0]
    return " ".join(note.split()[:4])


class Workers:
    """``count`` client threads running a workload until :meth:`stop`."""

    def __init__(
        self,
        workload: str,
        history: History,
        router: Router,
        *,
        count: int,
        keys: int,
        seed: int,
        timeout: float,
        think: float = 0.0,
    ) -> None:
        self.workload = workload
        self.history = history
        self.router = router
        self.keys = [f"k{i}" for i in range(keys)]
        self.seed = seed
        self.timeout = timeout
        self.think = think
        """Mean pause between a worker's operations, seconds."""
        self.crashed: list[str] = []
        """Client threads that died of an unexpected exception (a harness bug)."""
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(w,), name=f"chaos-client-{w}", daemon=True)
            for w in range(count)
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout)
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            raise RuntimeError(f"client threads did not stop: {alive}")

    def _run(self, w: int) -> None:
        try:
            self._loop(w)
        except Exception as e:  # reported as a problem of the run, not lost in a thread
            self.crashed.append(f"client {w} crashed: {type(e).__name__}: {e}")

    def _loop(self, w: int) -> None:
        rng = random.Random(self.seed * 1000 + w)
        client: Client = RespClient(self.timeout) if w % 2 == 0 else HttpClient(self.timeout)
        h = self.history
        cid = h.new_client()
        seq = 0
        try:
            while not self._stop.is_set():
                seq += 1
                if self.workload == "ticket":
                    key, kind, value, args = "ticket", "ticket", None, ["TICKET"]
                else:
                    key = rng.choice(self.keys)
                    if rng.random() < 0.5:
                        kind, value, args = "get", None, ["GET", key]
                    else:
                        value = f"{w}-{seq}"
                        kind, args = "set", ["SET", key, value]
                res = execute(
                    client,
                    self.router,
                    args,
                    read=kind == "get",
                    rng=rng,
                    clock=h.clock,
                    budget=2 * self.timeout,
                )
                h.record(cid, key, kind, value, res)
                if res.outcome is Outcome.UNKNOWN:
                    cid = h.new_client()
                elif res.outcome is Outcome.REFUSED:
                    self._stop.wait(0.05)  # pacing while the cluster has no leader
                if self.think > 0:
                    self._stop.wait(rng.uniform(0, 2 * self.think))  # pacing
        finally:
            client.close()


# --- checks beyond linearizability ------------------------------------------------------


def resolve_unknown_writes(ops: Sequence[Op]) -> tuple[list[Op], int, int]:
    """Settle unknown-outcome SETs with what the reads saw; ``(ops, dropped, resolved)``.

    Sound for registers whose written values are unique (each exact both ways):

    - a SET nobody read the value of is dropped: in any linearization that
      includes it, no GET sits between it and the next SET of the key (it would
      have returned the value), so leaving it out changes no output; and an
      unknown operation may always be left out.
    - a SET whose value a GET returned did take effect, before that GET's point,
      so before the earliest such GET's return ``r``: it becomes an acknowledged
      SET with return time ``r``. Every linearization of one history is one of
      the other. (If a GET returned the value before the SET was even called,
      the SET is left unknown and the checker reports the violation.)

    The checker would accept the raw history too, but each unknown write can
    double its search; settled, a history of thousands of operations with a few
    percent timeouts checks in well under a second.
    """
    seen: dict[tuple[str, Any], float] = {}
    for op in ops:
        if op.kind == "get" and op.ret is not None and op.output is not None:
            k = (op.key, op.output)
            seen[k] = min(seen.get(k, op.ret), op.ret)
    out: list[Op] = []
    dropped = resolved = 0
    for op in ops:
        first = seen.get((op.key, op.value)) if op.kind == "set" and op.ret is None else None
        if op.kind == "set" and op.ret is None and first is None:
            dropped += 1
        elif first is not None and first >= op.call:
            out.append(replace(op, output="OK", ret=first))
            resolved += 1
        else:
            out.append(op)
    return out, dropped, resolved


def lost_writes(ops: Sequence[Op], final: dict[str, Any]) -> list[str]:
    """Acknowledged writes missing from the values read after a full-cluster crash.

    ``final`` is what was read per key after the restart. Acceptable: the value of
    a write that no *acknowledged* write to that key started after the return of
    (an acknowledged write that started later must have replaced it), or of any
    unknown-outcome write; ``None`` only for a key with no acknowledged write.
    """
    problems: list[str] = []
    sets: dict[str, list[Op]] = {}
    for op in ops:
        if op.kind == "set":
            sets.setdefault(op.key, []).append(op)
    for key, value in sorted(final.items()):
        writes = sets.get(key, [])
        acked = [o for o in writes if o.ret is not None]
        if value is None:
            if acked:
                last = max(acked, key=lambda o: o.ret or 0.0)
                problems.append(f"{key}: empty after restart, but {last.value!r} was acked")
            continue
        source = next((o for o in writes if o.value == value), None)
        if source is None:
            problems.append(f"{key}: read {value!r}, which nobody wrote")
            continue
        if source.ret is None:
            continue
        later = [o for o in acked if o.call > source.ret]
        if later:
            lost = max(later, key=lambda o: o.ret or 0.0)
            problems.append(
                f"{key}: read {value!r} (acked at {source.ret:.3f}), but {lost.value!r} "
                f"was acked later (called at {lost.call:.3f}, acked at {lost.ret:.3f})"
            )
    return problems


def ticket_problems(ops: Sequence[Op]) -> list[str]:
    """Acknowledged tickets that repeat, or that do not increase in real-time order."""
    acked = [o for o in ops if o.kind == "ticket" and o.ret is not None]
    problems: list[str] = []
    seen: dict[Any, Op] = {}
    for o in acked:
        if o.output in seen:
            problems.append(f"ticket {o.output} handed out twice")
        seen[o.output] = o
    # Every op that returned before another was called must hold a smaller ticket.
    by_ret = sorted(acked, key=lambda o: o.ret or 0.0)
    best: Op | None = None
    i = 0
    for o in sorted(acked, key=lambda o: o.call):
        while i < len(by_ret) and (by_ret[i].ret or 0.0) < o.call:
            if best is None or by_ret[i].output > best.output:
                best = by_ret[i]
            i += 1
        if best is not None and not o.output > best.output:
            problems.append(
                f"ticket {o.output} (called at {o.call:.3f}) is not greater than ticket "
                f"{best.output} acked before it (at {best.ret:.3f})"
            )
    return problems[:20]
