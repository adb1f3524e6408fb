"""Chaos runs of real clusters: clients, a nemesis, and a linearizability verdict.

One run::

    .venv/bin/python -m tests.chaos.run --nodes 3 --workload kv --seed 7 \\
        --duration 30 --out results/kv-7

A soak (runs back to back for MINUTES, cycling seeds, workloads, node counts
and fault mixes; each run's folder under --out, and ``soak.json`` with the
totals)::

    .venv/bin/python -m tests.chaos.run --soak 30 --out results/soak

A run starts the cluster through the example's command line (see
:mod:`tests.chaos.harness`), starts the clients (:mod:`tests.chaos.workloads`)
and the nemesis (:mod:`tests.chaos.nemesis`) for ``--duration`` seconds, then
heals everything, lets the clients go on for a moment, stops them, waits for a
leader and reads every key once more (the ``durable`` workload first kills
every node at once and restarts them all). The history is checked with
:func:`tests.chaos.linear.check`; ``ticket`` also checks that acknowledged
tickets are unique and increase in real time, ``durable`` that no
acknowledged write was lost. A run fails if the checker finds a violation or
gives up (``ok=None``), if the cluster does not come back after the heal, or
if a node exits on its own.

The results folder holds ``config.json``, ``history.json`` (the operations,
times in seconds since the run started), ``timeline.json`` (the faults, same
clock), ``attempts.jsonl`` (every operation that had an attempt refused or
unanswered, with what each attempt got), ``verdict.json``, ``summary.txt``
and every node's log; the data directories are kept only when the run failed
(or with ``--keep-data``).
Each run prints one line: operations, faults, acknowledged, failed, unknown,
verdict. Exit status 0 if every run passed.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .harness import ChaosCluster, ClusterError, poll
from .linear import Op, check, to_json
from .models import Register, Ticket
from .nemesis import KINDS, Nemesis, plan
from .netfault import ChaosNet, require_tools
from .workloads import (
    History,
    Outcome,
    RespClient,
    Router,
    Workers,
    execute,
    lost_writes,
    resolve_unknown_writes,
    ticket_problems,
)

__all__ = ["RunConfig", "RunResult", "default_faults", "main", "run_chaos"]

WORKLOADS = ("kv", "ticket", "durable")
DURABLE_FAULTS = ("crash-all", "kill", "kill-leader", "pause-leader", "partition-half")


def default_faults(workload: str) -> tuple[str, ...]:
    if workload == "durable":
        return DURABLE_FAULTS
    return KINDS


def swarm_faults(workload: str, seed: int) -> tuple[str, ...]:
    """A random half (at least four) of the workload's fault kinds: a different mix
    per seed finds what a uniform mix dilutes (swarm testing)."""
    kinds = list(default_faults(workload))
    rng = random.Random(seed ^ 0x5EED)
    picked = rng.sample(kinds, k=max(4, len(kinds) // 2))
    if workload == "durable" and "crash-all" not in picked:
        picked.append("crash-all")
    return tuple(k for k in kinds if k in picked)


@dataclass
class RunConfig:
    workload: str
    nodes: int
    seed: int
    duration: float
    out: Path
    faults: tuple[str, ...] = ()
    """Fault kinds (empty: the workload's default mix)."""
    clients: int = 6
    keys: int = 24
    think: float = 0.01
    """Mean pause between one client's operations, seconds."""
    timeout: float = 2.0
    """Client timeout per attempt, seconds."""
    check_deadline: float = 60.0
    snapshot_every: int = 300
    keep_data: bool = False
    settle: float = 60.0
    """Seconds allowed for the cluster to come back after the heal."""

    def command(self) -> str:
        return (
            f".venv/bin/python -m tests.chaos.run --nodes {self.nodes} --workload "
            f"{self.workload} --seed {self.seed} --duration {self.duration:g} "
            f"--faults {','.join(self.faults)} --out {self.out}"
        )


@dataclass
class RunResult:
    config: RunConfig
    ok: bool
    line: str
    counts: dict[str, int]
    faults: dict[str, int]
    checked_ops: int
    verdict: str
    """``OK``, or the kind of failure (see :func:`verdict_name`)."""
    problems: list[str] = field(default_factory=list)


def run_chaos(cfg: RunConfig) -> RunResult:
    """One run; writes its results folder and returns its verdict."""
    if cfg.workload not in WORKLOADS:
        raise ValueError(f"unknown workload {cfg.workload!r}: one of {', '.join(WORKLOADS)}")
    if not cfg.faults:
        cfg.faults = default_faults(cfg.workload)
    require_tools()
    cfg.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    history = History()
    problems: list[str] = []
    warnings: list[str] = []
    nemesis: Nemesis | None = None
    cluster: ChaosCluster | None = None
    verdict: dict[str, Any] = {}
    net = ChaosNet()
    try:
        net.build()
        with net.clients():
            app = "ticket" if cfg.workload == "ticket" else "kv"
            extra = ["--snapshot-every", str(cfg.snapshot_every)]
            cluster = ChaosCluster(net, cfg.out / "nodes", app, extra)
            cluster.start(cfg.nodes)
            history.t0 = time.monotonic()
            router = Router(cluster.addresses)
            workers = Workers(
                "ticket" if app == "ticket" else "kv",
                history,
                router,
                count=cfg.clients,
                keys=cfg.keys,
                seed=cfg.seed,
                timeout=cfg.timeout,
                think=cfg.think,
            )
            steps = plan(cfg.seed, cfg.faults, cfg.duration)
            # The whole plan runs (so what a seed injects does not depend on the
            # machine's speed), within a bound for a cluster that crawls.
            cap = 2 * cfg.duration + 60
            nemesis = Nemesis(cluster, steps, history.clock, deadline=cap)
            workers.start()
            try:
                nemesis.start()
                nemesis.join(cap + 180)
                rest = cfg.duration - history.clock()
                if rest > 0:
                    time.sleep(rest)  # pacing: the plan ended early; keep the clients going
                nemesis.heal_all()
                time.sleep(1.0)  # pacing: a moment of traffic on the healed cluster
            finally:
                workers.stop()
            problems += workers.crashed
            if nemesis.crashed:
                problems.append(nemesis.crashed)
            if cfg.workload == "durable":
                crashed = cluster.crash_all()
                warnings.append(f"final crash of nodes {crashed} at {history.clock():.2f}")
                for i in cluster.members:
                    cluster.restart(i)
            problems += finish(cfg, cluster, history, router, verdict)
            problems += cluster.check_exits()
    except (ClusterError, RuntimeError, OSError) as e:
        problems.append(f"the run broke off: {type(e).__name__}: {e}")
    finally:
        if cluster is not None:
            cluster.close()
        try:
            net.close()
        except RuntimeError as e:
            warnings.append(f"clean-up: {e}")
    if nemesis is not None:
        warnings += nemesis.errors
    return report(
        cfg,
        history=history,
        nemesis=nemesis,
        verdict=verdict,
        problems=problems,
        warnings=warnings,
        elapsed=time.monotonic() - started,
    )


def finish(
    cfg: RunConfig,
    cluster: ChaosCluster,
    history: History,
    router: Router,
    verdict: dict[str, Any],
) -> list[str]:
    """Wait for the cluster, read everything once more, and check the history."""
    problems: list[str] = []
    before_final = history.snapshot()
    final: dict[str, Any] | None = None
    try:
        cluster.wait_leader(cfg.settle)
        final = final_ops(cfg, cluster, history, router)
    except ClusterError as e:
        # Liveness, not safety: the history recorded so far is still checked.
        (cfg.out / "diagnostics.txt").write_text(cluster.diagnose())
        stuck = [f"node {i} stopped accepting connections" for i in cluster.stuck_nodes()]
        verdict["no_recovery"] = True
        problems.append(
            f"the cluster did not come back after the heal: {e} "
            f"{'; '.join(stuck)} (see diagnostics.txt)"
        )
    ops = history.snapshot()
    model = Ticket() if cfg.workload == "ticket" else Register()
    if cfg.workload != "ticket":
        ops, dropped, resolved = resolve_unknown_writes(ops)
        verdict["unknown_writes_dropped"] = dropped
        verdict["unknown_writes_resolved"] = resolved
    v = check(ops, model, deadline=cfg.check_deadline)
    verdict["linearizable"] = v.ok
    verdict["checked_ops"] = v.ops
    verdict["keys"] = v.keys
    verdict["failed_key"] = v.failed_key
    verdict["explanation"] = v.explanation
    verdict["check_seconds"] = round(v.elapsed, 3)
    if v.ok is None:
        problems.append(f"the checker gave up after {cfg.check_deadline:g} s")
    elif not v.ok:
        problems.append(f"not linearizable (key {v.failed_key})")
    if cfg.workload == "ticket":
        problems += ticket_problems(ops)
    if cfg.workload == "durable" and final is not None:
        lost = lost_writes(before_final, final)
        verdict["lost_writes"] = lost
        problems += lost
    return problems


def final_ops(
    cfg: RunConfig, cluster: ChaosCluster, history: History, router: Router
) -> dict[str, Any]:
    """Read every key (kv, durable) or take one more ticket, retrying until it works."""
    client = RespClient(cfg.timeout * 2)
    rng = random.Random(cfg.seed)
    out: dict[str, Any] = {}
    try:
        keys = [f"k{i}" for i in range(cfg.keys)] if cfg.workload != "ticket" else ["ticket"]
        for key in keys:
            read = key != "ticket"
            args = ["GET", key] if read else ["TICKET"]

            def attempt(key: str = key, read: bool = read, args: list[str] = args) -> Any:
                res = execute(
                    client, router, args, read=read, rng=rng, clock=history.clock, budget=5.0
                )
                kind = "get" if read else "ticket"
                history.record(history.new_client(), key, kind, None, res)
                return res if res.outcome is Outcome.OK else None

            res = poll(attempt, cfg.settle, f"a final {' '.join(args)}", every=0.2)
            out[key] = res.value
    finally:
        client.close()
    return out


def report(
    cfg: RunConfig,
    *,
    history: History,
    nemesis: Nemesis | None,
    verdict: dict[str, Any],
    problems: list[str],
    warnings: list[str],
    elapsed: float,
) -> RunResult:
    ops: list[Op] = history.snapshot()
    timeline = [f.to_json() for f in nemesis.timeline] if nemesis is not None else []
    applied = Counter(f["kind"] for f in timeline if f["applied"])
    ok = not problems and verdict.get("linearizable") is True
    counts = {k: history.counts[k] for k in ("ops", "acked", "failed", "unknown")}
    name = verdict_name(ok, verdict)
    line = (
        f"chaos {cfg.workload} nodes={cfg.nodes} seed={cfg.seed} {cfg.duration:g}s: "
        f"ops={counts['ops']} faults={sum(applied.values())} acked={counts['acked']} "
        f"failed={counts['failed']} unknown={counts['unknown']} verdict={name}"
    )
    verdict.update(
        ok=ok,
        problems=problems,
        warnings=warnings,
        counts=counts,
        faults=dict(applied),
        client_errors=dict(history.errors.most_common(30)),
        seconds=round(elapsed, 1),
    )
    out = cfg.out
    config = asdict(cfg) | {"out": str(cfg.out), "command": cfg.command()}
    (out / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    (out / "history.json").write_text(to_json(ops))
    (out / "timeline.json").write_text(json.dumps(timeline, indent=1) + "\n")
    trails = "".join(json.dumps(t, default=str) + "\n" for t in history.snapshot_trails())
    (out / "attempts.jsonl").write_text(trails)
    (out / "verdict.json").write_text(json.dumps(verdict, indent=1, default=str) + "\n")
    (out / "summary.txt").write_text(line + "\n")
    if ok and not cfg.keep_data:
        for d in (out / "nodes").glob("data-*"):
            shutil.rmtree(d, ignore_errors=True)
    if not ok:
        line += f" -- results kept in {out}"
    return RunResult(
        cfg,
        ok,
        line,
        counts,
        dict(applied),
        int(verdict.get("checked_ops", 0)),
        name,
        problems,
    )


def verdict_name(ok: bool, verdict: dict[str, Any]) -> str:
    """One word for the summary line: what kind of failure, the worst first."""
    if ok:
        return "OK"
    if verdict.get("linearizable") is False:
        return "NOT-LINEARIZABLE"
    if verdict.get("lost_writes"):
        return "LOST-WRITES"
    if verdict.get("linearizable") is None and "checked_ops" in verdict:
        return "CHECKER-GAVE-UP"
    if verdict.get("no_recovery"):
        return "NO-RECOVERY"
    return "FAIL"


# --- the command line ---------------------------------------------------------------


def soak(args: argparse.Namespace) -> int:
    """Runs back to back until ``args.soak`` minutes are used up."""
    base: Path = args.out
    base.mkdir(parents=True, exist_ok=True)
    end = time.monotonic() + args.soak * 60
    totals: Counter[str] = Counter()
    faults: Counter[str] = Counter()
    verdicts: Counter[str] = Counter()
    failures: list[dict[str, Any]] = []
    runs = 0
    started = time.monotonic()
    while time.monotonic() + args.duration + 30 < end:
        seed = args.seed + runs
        workload = WORKLOADS[runs % len(WORKLOADS)]
        nodes = 3 if (runs // len(WORKLOADS)) % 2 == 0 else 5
        cfg = RunConfig(
            workload,
            nodes,
            seed,
            args.duration,
            base / f"run-{runs:03d}-{workload}-n{nodes}-s{seed}",
            faults=swarm_faults(workload, seed),
            clients=args.clients,
            keys=args.keys,
        )
        result = run_chaos(cfg)
        runs += 1
        print(result.line, flush=True)
        totals.update(result.counts)
        totals["checked_ops"] += result.checked_ops
        totals["passed"] += result.ok
        faults.update(result.faults)
        verdicts[result.verdict] += 1
        if not result.ok:
            failures.append(
                {"command": cfg.command(), "problems": result.problems, "out": str(cfg.out)}
            )
    summary = {
        "runs": runs,
        "minutes": round((time.monotonic() - started) / 60, 1),
        "totals": dict(totals),
        "faults": dict(faults),
        "verdicts": dict(verdicts),
        "failures": failures,
    }
    (base / "soak.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(
        f"soak: {runs} runs, {totals['passed']} passed, {len(failures)} failed; "
        f"faults={sum(faults.values())} ops={totals['ops']} checked={totals['checked_ops']} "
        f"acked={totals['acked']} failed={totals['failed']} unknown={totals['unknown']} "
        f"verdicts={dict(verdicts)}"
    )
    for f in failures:
        print(f"FAILED: {f['command']}\n  {f['problems']}")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tests.chaos.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--workload", choices=WORKLOADS, default="kv")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--duration", type=float, help="seconds of chaos per run (default: 30, 45 in a soak)"
    )
    ap.add_argument("--faults", default="", help=f"comma-separated kinds from {','.join(KINDS)}")
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--keys", type=int, default=24)
    ap.add_argument("--out", type=Path, default=Path("results/chaos"))
    ap.add_argument("--keep-data", action="store_true", help="keep the data dirs of a passed run")
    ap.add_argument("--soak", type=float, metavar="MINUTES", help="run back to back this long")
    args = ap.parse_args(argv)
    if args.soak:
        args.duration = args.duration or 45.0
        return soak(args)
    args.duration = args.duration or 30.0
    faults = tuple(f for f in args.faults.split(",") if f)
    cfg = RunConfig(
        args.workload,
        args.nodes,
        args.seed,
        args.duration,
        args.out,
        faults=faults,
        clients=args.clients,
        keys=args.keys,
        keep_data=args.keep_data,
    )
    result = run_chaos(cfg)
    print(result.line)
    for p in result.problems:
        print(f"  problem: {p}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
