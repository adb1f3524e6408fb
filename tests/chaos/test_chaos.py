"""The short chaos runs CI does: real clusters, a seeded nemesis, a verdict each.

Four runs of about half a minute of chaos each (about two and a half minutes
in all on two cores): kv registers on 3 nodes, tickets on 3 nodes, kv on 5
nodes with membership changes, and the full-cluster crash that must lose no
acknowledged write. The seeds are fixed, so each run injects the same faults
in the same order (asserted); what is asserted of the outcome is only the
verdict. A failed run leaves its results folder (history, timeline, verdict,
node logs, data) and its path is in the assertion message; replay it with
the command printed there (``python -m tests.chaos.run ...``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.nemesis import plan
from tests.chaos.netfault import NetError, require_tools
from tests.chaos.run import RunConfig, run_chaos


@pytest.fixture(autouse=True)
def _tools() -> None:
    try:
        require_tools()
    except NetError as e:
        pytest.fail(str(e))


def run_and_check(cfg: RunConfig) -> None:
    planned = [s.kind for s in plan(cfg.seed, cfg.faults, cfg.duration)]
    result = run_chaos(cfg)
    print(result.line)  # pytest shows it when the test fails
    where = f"\n{result.line}\nproblems: {result.problems}\nreplay: {cfg.command()}"
    assert result.ok, f"chaos run failed; results in {cfg.out}{where}"
    timeline = (cfg.out / "timeline.json").read_text()
    started = [kind for kind in planned if f'"kind": "{kind}"' in timeline]
    assert started == planned, f"not every planned fault was injected{where}"
    assert result.counts["acked"] > 0, f"no operation was acknowledged{where}"


def test_kv_registers_on_3_nodes(tmp_path: Path) -> None:
    faults = (
        "kill",
        "kill-leader",
        "pause",
        "pause-leader",
        "partition-half",
        "partition-bridge",
        "isolate-leader",
        "slow",
    )
    run_and_check(RunConfig("kv", 3, 11, 25, tmp_path / "kv", faults=faults, clients=4))


def test_tickets_on_3_nodes(tmp_path: Path) -> None:
    faults = ("kill-leader", "pause-leader", "isolate-leader", "oneway-leader", "restart")
    run_and_check(RunConfig("ticket", 3, 12, 20, tmp_path / "ticket", faults=faults, clients=4))


def test_kv_on_5_nodes_with_membership_changes(tmp_path: Path) -> None:
    faults = ("membership", "partition-half", "partition-bridge", "oneway-leader", "kill")
    run_and_check(RunConfig("kv", 5, 13, 25, tmp_path / "kv5", faults=faults, clients=4))


def test_no_acknowledged_write_lost_after_full_crash(tmp_path: Path) -> None:
    faults = ("crash-all", "kill", "pause-leader")
    run_and_check(RunConfig("durable", 3, 14, 15, tmp_path / "durable", faults=faults, clients=4))
