"""Seeded fault schedules of whole clusters (see tests/raftsim/sim.py).

CI runs seeds 0..1999 (``UHAHA_SIM_SEEDS=START:END`` changes the range); the
soak mode runs as many more as you like and prints how to replay a failure:

    python -m tests.raftsim.soak --seeds 2000:50000
"""

from __future__ import annotations

import os

import pytest

from tests.raftsim.sim import Simulation
from tests.raftsim.soak import replay_command, run_one

CHUNK = 25


def _seed_range() -> range:
    lo, hi = (int(x) for x in os.environ.get("UHAHA_SIM_SEEDS", "0:2000").split(":"))
    return range(lo, hi)


def _chunks() -> list[range]:
    seeds = _seed_range()
    return [
        range(start, min(start + CHUNK, seeds.stop))
        for start in range(seeds.start, seeds.stop, CHUNK)
    ]


@pytest.mark.sim
@pytest.mark.parametrize("seeds", _chunks(), ids=lambda r: f"seeds{r.start}-{r.stop - 1}")
def test_fault_schedules(seeds: range) -> None:
    failures = []
    for seed in seeds:
        _, err, _summary = run_one(seed)
        if err is not None:
            failures.append(f"seed {seed}: {err}\nreplay: {replay_command(seed)}")
    assert not failures, "\n\n".join(failures)


def test_a_seed_replays_identically() -> None:
    """Replaying a failing seed is only useful if a seed fixes everything."""
    runs = []
    for _ in range(2):
        sim = Simulation(7)
        result = sim.run()
        runs.append((result.summary(), [(o.kind, o.value, o.status, o.index) for o in sim.ops]))
    assert runs[0] == runs[1]
    assert runs[0][1], "the schedule ran client operations"
