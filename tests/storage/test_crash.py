"""SIGKILL a writing process at random moments; the log must come back whole.

After every kill the parent reopens the database and checks it against a
model built from the child's reports: every acknowledged write is there, the
write that was in flight is there entirely or not at all, entries are
contiguous and every byte is the one written, and term and vote never go
back. Set UHAHA_CRASH_SEED to replay a run; the seed is printed and is in
every failure message.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from uhaha.raft.messages import HardState
from uhaha.storage.sqlite import SQLiteStorage

from .conftest import child_env
from .crash_child import payload

CHILD = Path(__file__).with_name("crash_child.py")
KILLS = 60
READY_DEADLINE = 30.0


@dataclass(frozen=True)
class Model:
    """What the log must hold: hard state, compaction point and entry terms."""

    hard_state: HardState = field(default_factory=HardState)
    first: int = 1
    compacted_term: int = 0
    terms: tuple[int, ...] = ()

    def apply(self, op: list[str]) -> Model:
        """The state after the write described by a ``begin`` line's words."""
        if op[0] == "compact":
            index = int(op[1])
            pos = index - self.first
            return replace(
                self, first=index + 1, compacted_term=self.terms[pos], terms=self.terms[pos + 1 :]
            )
        hs_term, vote, commit, start, count, term = op[1:]
        model = self
        if hs_term != "-":
            vote = "" if vote == "-" else vote
            model = replace(model, hard_state=HardState(int(hs_term), vote, int(commit)))
        if int(count):
            kept = model.terms[: int(start) - model.first]
            model = replace(model, terms=kept + (int(term),) * int(count))
        return model


@dataclass
class ChildRun:
    """One child process and what it reported."""

    proc: subprocess.Popen[bytes]
    buffer: bytes = b""
    lines: list[str] = field(default_factory=list)

    def read_until(self, deadline: float, want: str | None = None) -> bool:
        """Collect output until ``deadline``, or until a line starting with ``want``."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while (left := deadline - time.monotonic()) > 0:
            if want and any(line.startswith(want) for line in self.lines):
                return True
            ready, _, _ = select.select([fd], [], [], left)
            if ready and not self._read_chunk(fd):
                return False
        return bool(want and any(line.startswith(want) for line in self.lines))

    def _read_chunk(self, fd: int) -> bool:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return False
        self.buffer += chunk
        *complete, self.buffer = self.buffer.split(b"\n")
        self.lines += [line.decode() for line in complete]
        return True

    def kill_and_drain(self) -> None:
        """SIGKILL, then read what the child printed before it died."""
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.stdout is not None
        while self._read_chunk(self.proc.stdout.fileno()):
            pass
        self.proc.wait(timeout=10)
        self.proc.stdout.close()


def replay(model: Model, lines: list[str]) -> tuple[Model, list[str] | None]:
    """Apply acknowledged writes; return the model and the write left in flight (if any)."""
    pending: dict[str, list[str]] = {}
    in_flight: list[str] | None = None
    for line in lines:
        words = line.split()
        if words[0] == "begin":
            pending[words[1]] = words[2:]
            in_flight = words[2:]
        elif words[0] == "ack":
            model = model.apply(pending.pop(words[1]))
            in_flight = None
    return model, in_flight


async def observe(path: Path, context: str) -> Model:
    """Reopen the store and describe it as a model, checking every entry on the way."""
    store = await SQLiteStorage.open(path)
    try:
        state = await store.load()
    finally:
        await store.close()
    terms = []
    for n, entry in enumerate(state.entries):
        assert entry.index == state.first_index + n, f"{context}: gap at {entry.index}"
        assert entry.data == payload(entry.index, entry.term), (
            f"{context}: entry {entry.index} holds bytes that were never written"
        )
        terms.append(entry.term)
    assert state.last_index == state.first_index + len(terms) - 1, context
    return Model(state.hard_state, state.first_index, state.compacted_term, tuple(terms))


async def test_sigkill_never_loses_an_acknowledged_batch(tmp_path: Path) -> None:
    seed = int(os.environ.get("UHAHA_CRASH_SEED", random.randrange(1 << 32)))
    print(f"crash test seed: {seed} (replay with UHAHA_CRASH_SEED={seed})")
    rng = random.Random(seed)
    db = tmp_path / "raft.db"
    model = Model()
    torn = acked = 0
    for kill in range(KILLS):
        context = f"seed {seed}, kill {kill}"
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(db), str(rng.randrange(1 << 32))],
            stdout=subprocess.PIPE,
            env=child_env(),
        )
        run = ChildRun(proc)
        if rng.random() < 0.1:
            # Sometimes strike during start-up (opening, checking, creating the schema).
            run.read_until(time.monotonic() + rng.uniform(0, 0.3))
        else:
            assert run.read_until(time.monotonic() + READY_DEADLINE, "ready"), (
                f"{context}: child not ready in {READY_DEADLINE} s (exit code {proc.poll()})"
            )
            run.read_until(time.monotonic() + rng.uniform(0, 0.15))  # the fault schedule
        run.kill_and_drain()
        if run.lines and run.lines[0].startswith("ready"):
            # The child saw exactly what the previous round left.
            _, first, last, term, _ = run.lines[0].split()
            assert (int(first), int(term)) == (model.first, model.hard_state.term), context
            assert int(last) == model.first + len(model.terms) - 1, context
        expected, in_flight = replay(model, run.lines[1:])
        acked += sum(line.startswith("ack") for line in run.lines)
        found = await observe(db, context)
        assert found.hard_state.term >= expected.hard_state.term, f"{context}: term went back"
        if found.hard_state.term == expected.hard_state.term:
            assert found.hard_state.vote == expected.hard_state.vote, f"{context}: vote changed"
        if found != expected:
            assert in_flight is not None, f"{context}: log differs from acknowledged writes"
            assert found == expected.apply(in_flight), (
                f"{context}: log is neither the acknowledged state nor that plus the "
                f"write in flight ({' '.join(in_flight)})"
            )
            torn += 1
        model = found
    print(f"{KILLS} kills, {acked} acknowledged writes, {torn} in-flight writes found complete")
    assert acked > KILLS, f"seed {seed}: the children barely wrote anything"
