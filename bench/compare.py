"""Issue 10 side by side: the examples on real 3-node clusters against the issue's figures.

One command starts a 3-node cluster of each example through its command line
(``python examples/ticket.py -n ID -a 127.0.0.1:PORT -d DIR [-j ADDR]
--localtime``, fsync on), runs exactly the scenarios of issue 10 against the
leader, measures leader failover and peak RSS, and appends a dated section
(machine, commands, a table with ratios and met / not met, a PNG chart) to
``bench/RESULTS.md``:

- ``redis-benchmark``: ``TICKET`` with ``-c 50``, ``-c 50 -P 16`` and ``-c 1``;
  kvdb ``SET key:__rand_int__ xxx`` and ``GET key:__rand_int__`` with
  ``-c 50 -P 16 -r 100000``.
- ``wrk``: ``POST /cmd/ticket`` with 50 connections and 1; kvdb (linearizable)
  ``GET /cmd/get?arg=key:000000000001`` with 50 connections and 1.
- Failover: SIGKILL the leader, time until a survivor first accepts a write
  (``TICKET``, kvdb ``SET``), restart the killed node, let it catch up; the
  median of ``--failovers`` kills per example (``cluster_bench``'s method).
- Peak RSS (``VmHWM``) of every node after the throughput runs.

The scenarios run in rotation, ``--runs`` times (default 9); the table gives the
median run. Measuring is :mod:`app_bench`'s (the same cases, the same client
command lines, the same CPU and log-entry accounting); this script picks the
issue's scenarios, adds failover, compares and reports.

Another uhaha-compatible server (any program that takes uhaha's flags ``-n ID
-a HOST:PORT -d DIR -j ADDR`` and answers ``RAFT INFO`` and ``RAFT SERVER
LIST``, such as the Go uhaha's examples) runs the same scenarios with
``--ticket-program`` / ``--kvdb-program``; ``--label`` names its column.
``--json FILE`` writes a run's figures; ``--reference FILE`` takes the
reference column from such a file instead of the issue's figures (rows the
file lacks keep the issue's). So a comparison is two commands::

    .venv/bin/python bench/compare.py --label "Go uhaha" --json /tmp/go.json \\
        --ticket-program /path/to/go/ticket --kvdb-program /path/to/go/kvdb --skip-http
    .venv/bin/python bench/compare.py --reference /tmp/go.json

and against the issue's figures one::

    .venv/bin/python bench/compare.py [--runs 9] [--quick]

``--quick`` (1 run, fewer requests, 2 kills) checks the script in one to two
minutes; its section goes to a file in the work directory unless ``--results``
says otherwise, never to ``bench/RESULTS.md`` by default. Loads are bounded:
request counts, wrk durations and request caps, and timeouts on every
subprocess and wait; every node is killed by PID at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app_bench import (  # noqa: E402
    LOAD_DEFAULTS,
    AppResult,
    Case,
    Sample,
    add_load_args,
    add_quiet_args,
    bench_in_cluster,
    example_program,
    kvdb_cases,
    median_sample,
    table,
    ticket_cases,
    tree_state,
    use_tree,
)
from cluster_bench import Failover, failover_once, machine  # noqa: E402

from tests.cluster.harness import Proc, ProcCluster  # noqa: E402

HTTP_GET_KEY = "key:000000000001"  # app_bench's kvdb HTTP GET reads this key


# --- the scenarios and the figures ------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One row of the comparison."""

    key: str  # an app_bench case key, or "failover APP" / "rss APP"
    app: str
    label: str
    unit: str  # "req/s", "s" or "MB"
    reference: float | None  # issue 10's figure
    reference_text: str  # whose figure, and its other numbers
    min_ratio: float | None = None  # target: ours / reference at least this
    max_value: float | None = None  # target: ours below this (failover s, RSS MB)

    @property
    def higher_is_better(self) -> bool:
        return self.unit == "req/s"

    @property
    def group(self) -> str:
        """The chart's bar colour."""
        if self.unit != "req/s":
            return "failover" if self.unit == "s" else "peak RSS"
        return "HTTP, wrk" if self.key.startswith("http") else f"{self.app}, redis-benchmark"


GO = "Go uhaha"
RQLITE = "rqlite"
SCENARIOS: list[Scenario] = [
    Scenario(
        "ticket c50",
        "ticket",
        "`TICKET -c 50`",
        "req/s",
        9426,
        f"{GO} 9,426 req/s, p50 4.5 ms, p99 12.1 ms",
        min_ratio=1.0,
    ),
    Scenario(
        "ticket c50 P16",
        "ticket",
        "`TICKET -c 50 -P 16`",
        "req/s",
        125313,
        f"{GO} 125,313 req/s",
        min_ratio=0.5,
    ),
    Scenario(
        "ticket c1",
        "ticket",
        "`TICKET -c 1`",
        "req/s",
        529,
        f"{GO} 529 req/s, p50 1.6 ms",
        min_ratio=1.0,
    ),
    Scenario(
        "set c50 P16",
        "kvdb",
        "kvdb `SET key:__rand_int__ xxx -c 50 -P 16 -r 100000`",
        "req/s",
        36928,
        f"{GO} 36,928 req/s",
        min_ratio=0.5,
    ),
    Scenario(
        "get c50 P16",
        "kvdb",
        "kvdb `GET key:__rand_int__ -c 50 -P 16 -r 100000`",
        "req/s",
        166389,
        f"{GO} 166,389 req/s",
        min_ratio=0.5,
    ),
    Scenario(
        "http ticket c50",
        "ticket",
        "HTTP `POST /cmd/ticket`, 50 conn.",
        "req/s",
        3042,
        f"{RQLITE} `POST /db/execute` 3,042 req/s, p50 15.5 ms",
        min_ratio=1.0,
    ),
    Scenario(
        "http ticket c1",
        "ticket",
        "HTTP `POST /cmd/ticket`, 1 conn.",
        "req/s",
        316,
        f"{RQLITE} `POST /db/execute` 316 req/s, p50 2.8 ms",
        min_ratio=1.0,
    ),
    Scenario(
        "http get c50",
        "kvdb",
        "kvdb HTTP `GET /cmd/get` (linearizable), 50 conn.",
        "req/s",
        9122,
        f"{RQLITE} linearizable GET 9,122 req/s",
        min_ratio=1.0,
    ),
    Scenario(
        "http get c1",
        "kvdb",
        "kvdb HTTP `GET /cmd/get` (linearizable), 1 conn.",
        "req/s",
        None,
        "none in the issue",
    ),
    Scenario(
        "failover ticket",
        "ticket",
        "failover after SIGKILL of the leader, ticket (first `TICKET`)",
        "s",
        1.63,
        f"{GO} 1.63 s median ({RQLITE} 2.47 s)",
        max_value=2.0,
    ),
    Scenario(
        "failover kvdb",
        "kvdb",
        "failover after SIGKILL of the leader, kvdb (first `SET`)",
        "s",
        1.63,
        f"{GO} 1.63 s median ({RQLITE} 2.47 s)",
        max_value=2.0,
    ),
    Scenario(
        "rss ticket",
        "ticket",
        "peak RSS per node, ticket",
        "MB",
        28,
        f"{GO} 24-28 MB",
        max_value=80.0,
    ),
    Scenario("rss kvdb", "kvdb", "peak RSS per node, kvdb", "MB", 59, f"{GO} 42-59 MB"),
]

# The write that proves a new leader, per example.
FAILOVER_WRITE: dict[str, tuple[str, ...]] = {
    "ticket": ("TICKET",),
    "kvdb": ("SET", "failover:probe", "x"),
}


def app_cases(app: str, args: argparse.Namespace) -> list[Case]:
    """app_bench's cases for the issue's scenarios of ``app``, in the issue's order."""
    cases = {c.key: c for c in (ticket_cases(args) if app == "ticket" else kvdb_cases(args))}
    get50 = cases.get("http get c50")
    if get50 is not None:
        cases["http get c1"] = replace(
            get50,
            key="http get c1",
            label=get50.label.replace("50 conn.", "1 conn."),
            connections=1,
        )
    keys = [s.key for s in SCENARIOS if s.app == app and s.key in cases]
    return [cases[k] for k in keys if not (args.skip_http and cases[k].kind == "http")]


# --- clusters of any uhaha-compatible program ---------------------------------------------


class UhahaCluster(ProcCluster):
    """A :class:`ProcCluster` that also knows the Go uhaha's ``RAFT INFO`` (``state``
    ``Leader``), and sends ``setup`` commands to the leader once the nodes are up."""

    def __init__(self, workdir: Path, program: list[str], setup: list[list[str]]) -> None:
        super().__init__(workdir, program)
        self.setup = setup

    def leader(self, among: list[Proc] | None = None) -> Proc | None:
        procs = among if among is not None else self.live()
        leaders = []
        for p in procs:
            try:
                if str(p.info().get("state", "")).lower() == "leader":
                    leaders.append(p)
            except (redis.RedisError, OSError):
                continue
        return leaders[0] if len(leaders) == 1 else None

    def start(self, n: int, extra: list[str] | None = None) -> Proc:
        first = super().start(n, extra)
        leader = self.wait_leader()
        for cmd in self.setup:
            try:
                leader.call(*cmd)
            except redis.RedisError as e:
                print(f"setup {' '.join(cmd)} failed: {e}", flush=True)
        return first


def program_for(app: str, args: argparse.Namespace) -> list[str]:
    given: str | None = getattr(args, f"{app}_program")
    if given is None:
        return example_program(app, args)
    # The nodes run with the repository root as their working directory: make the paths
    # given relative to ours absolute (not resolved: a venv's python is a symlink).
    words = shlex.split(given)
    return [
        str(Path(w).absolute()) if not w.startswith("-") and Path(w).exists() else w for w in words
    ]


# --- results ------------------------------------------------------------------------------


@dataclass
class Measured:
    """Our figure for one scenario."""

    value: float | None  # req/s median, failover s median, or RSS MB max over the nodes
    text: str
    p50_ms: float | None = None
    p99_ms: float | None = None


@dataclass
class Run:
    label: str
    date: str
    machine: str
    command: str
    source: str = ""
    programs: dict[str, str] = field(default_factory=dict)
    apps: list[AppResult] = field(default_factory=list)
    failovers: dict[str, list[Failover]] = field(default_factory=dict)
    failover_errors: dict[str, str] = field(default_factory=dict)


MAX_ERROR_SHARE = 0.01  # a wrk run with more failed requests than this is not counted


def error_share(sample: Sample) -> float:
    """Failed requests of a wrk run (non-2xx, socket errors, timeouts) per request."""
    failed = sum(
        int(n) for n in re.findall(r"(?:non-2xx|connect|read|write|timeout) (\d+)", sample.errors)
    )
    return failed / max(1, sample.requests)


def last_line(error: str) -> str:
    """The telling part of an error: its last line (a client's own message), shortened."""
    lines = [line for line in error.splitlines() if line.strip()]
    return lines[-1][:160] if lines else "?"


def measured(s: Scenario, run: Run) -> Measured:
    app = next((a for a in run.apps if a.app == s.app), None)
    if app is None:
        return Measured(None, "not run")
    if s.unit == "req/s":
        if s.key in app.failed:
            return Measured(None, f"failed: {last_line(app.failed[s.key])}")
        samples = app.samples.get(s.key)
        if not samples:
            return Measured(None, "not run")
        bad = [x for x in samples if error_share(x) > MAX_ERROR_SHARE]
        if bad:
            return Measured(None, f"errors in {len(bad)} of {len(samples)} runs: {bad[0].errors}")
        mid = median_sample(samples)
        rates = [x.rps for x in samples]
        spread = f"; runs {min(rates):,.0f}-{max(rates):,.0f}" if len(rates) > 1 else ""
        flags = sorted({x.errors for x in samples if x.errors})
        note = f" ({'; '.join(flags)})" if flags else ""
        return Measured(
            mid.rps,
            f"{mid.rps:,.0f} req/s, p50 {mid.p50_ms:.2f} ms, p99 {mid.p99_ms:.2f} ms{spread}{note}",
            mid.p50_ms,
            mid.p99_ms,
        )
    if s.unit == "s":
        if s.app in run.failover_errors:
            return Measured(None, f"failed: {last_line(run.failover_errors[s.app])}")
        secs = [f.seconds for f in run.failovers.get(s.app, [])]
        if not secs:
            return Measured(None, "not run")
        med = statistics.median(secs)
        all_s = ", ".join(f"{x:.2f}" for x in secs)
        return Measured(med, f"{med:.2f} s median of {len(secs)} ({all_s})")
    mb = list(app.rss_mb.values())
    if not mb:
        return Measured(None, "not measured")
    return Measured(max(mb), f"{min(mb):.0f}-{max(mb):.0f} MB ({len(mb)} nodes)")


@dataclass
class Reference:
    label: str  # what the column says when the figure came from a file
    rows: dict[str, dict[str, Any]]  # key -> {"value": ..., "text": ...}


def load_reference(path: Path | None) -> Reference | None:
    if path is None:
        return None
    data = json.loads(path.read_text())
    return Reference(str(data.get("label", path.name)), dict(data.get("rows", {})))


def fmt_value(value: float, unit: str) -> str:
    if unit == "req/s":
        return f"{value:,.0f} req/s"
    return f"{value:.2f} s" if unit == "s" else f"{value:.0f} MB"


MET, NOT_MET, NOT_MEASURED = "met", "not met", "not measured"


@dataclass
class Row:
    scenario: Scenario
    ours: Measured
    reference: float | None
    reference_text: str
    ratio: float | None  # higher is better: ours / ref for rates, ref / ours otherwise
    target_ratio: float | None  # the target in the same terms (for the chart)
    target_text: str
    met: str  # MET, NOT_MET, NOT_MEASURED, or "-" (no target)


def make_row(s: Scenario, ours: Measured, ref: Reference | None) -> Row:
    value, text = s.reference, s.reference_text + (" (issue 10)" if ref is not None else "")
    if ref is not None and s.key in ref.rows and ref.rows[s.key].get("value") is not None:
        value = float(ref.rows[s.key]["value"])
        p50 = ref.rows[s.key].get("p50_ms")
        text = f"{ref.label} {fmt_value(value, s.unit)}"
        text += f", p50 {float(p50):.2f} ms" if p50 is not None else ""
    ratio: float | None = None
    if value and ours.value:
        ratio = ours.value / value if s.higher_is_better else value / ours.value
    target_ratio: float | None = None
    target_text, met = "-", "-"
    if s.min_ratio is not None:
        target_text = f"ratio >= {s.min_ratio:.1f}"
        if value:
            target_text += f" ({fmt_value(s.min_ratio * value, s.unit)})"
            target_ratio = s.min_ratio
        if ratio is not None:
            met = MET if ratio >= s.min_ratio else NOT_MET
    elif s.max_value is not None:
        target_text = f"< {fmt_value(s.max_value, s.unit)}"
        target_ratio = value / s.max_value if value else None
        if ours.value is not None:
            met = MET if ours.value < s.max_value else NOT_MET
    if ours.value is None and met == "-" and (s.min_ratio or s.max_value):
        met = NOT_MEASURED
    return Row(s, ours, value, text, ratio, target_ratio, target_text, met)


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def comparison_table(rows: list[Row], label: str) -> list[str]:
    lines = [
        f"| scenario | {label} | reference | ratio | target | met? |",
        "|---|---|---|---:|---|---|",
    ]
    for r in rows:
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else "-"
        lines.append(
            f"| {r.scenario.label} | {cell(r.ours.text)} | {cell(r.reference_text)} | {ratio}"
            f" | {r.target_text} | {'**met**' if r.met == MET else r.met} |"
        )
    return lines


# --- the chart ------------------------------------------------------------------------------

COLOURS = ["#4878a8", "#e69138", "#6aa84f", "#8e7cc3", "#999999"]
TARGET_COLOUR = "#cc0000"


def write_chart(rows: list[Row], path: Path, title: str) -> str:
    """A bar per scenario (its ratio to the reference, higher is better), in groups
    coloured by kind, the target drawn across each bar, and bars that miss their
    target hatched. Returns what was done."""
    try:
        import matplotlib  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415
        from matplotlib.lines import Line2D  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415
        from matplotlib.patches import Patch  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415
    except ImportError:
        return "no chart: matplotlib is not installed (pip install -e '.[bench]')"
    shown = [r for r in rows if r.ratio is not None]
    if not shown:
        return "no chart: no ratio measured"
    xs: list[float] = []
    x = 0.0
    for i, r in enumerate(shown):
        if i > 0 and r.scenario.group != shown[i - 1].scenario.group:
            x += 0.6  # a gap between groups
        xs.append(x)
        x += 1.0
    groups = list(dict.fromkeys(r.scenario.group for r in shown))
    fig, ax = plt.subplots(figsize=(max(9.0, len(shown) + 4.0), 5.5), dpi=110)
    for xi, r in zip(xs, shown, strict=True):
        ratio = r.ratio or 0.0
        ax.bar(
            xi,
            ratio,
            width=0.7,
            color=COLOURS[groups.index(r.scenario.group) % len(COLOURS)],
            edgecolor="#222222",
            linewidth=0.6,
            hatch="//" if r.met == NOT_MET else None,
        )
        mark = {MET: " met", NOT_MET: " not met"}.get(r.met, "")
        ax.annotate(
            f"{ratio:.2f}{mark}",
            (xi, ratio),
            textcoords="offset points",
            xytext=(0, 3),
            ha="center",
            fontsize=7,
        )
        if r.target_ratio is not None:
            ax.hlines(
                r.target_ratio,
                xi - 0.45,
                xi + 0.45,
                colors=TARGET_COLOUR,
                linestyles="dashed",
                linewidth=2,
            )
    ax.axhline(1.0, color="#444444", linewidth=0.8, linestyle="dotted")
    ax.set_xticks(xs)
    ax.set_xticklabels([short_label(r.scenario) for r in shown], rotation=30, ha="right")
    ax.tick_params(axis="x", labelsize=8)
    ax.set_ylabel("ratio to the reference, higher is better\n(failover, RSS: reference / ours)")
    ax.set_title(title, fontsize=10)
    handles: list[Any] = [
        Patch(facecolor=COLOURS[i % len(COLOURS)], edgecolor="#222222", label=g)
        for i, g in enumerate(groups)
    ]
    handles += [
        Line2D([], [], color=TARGET_COLOUR, linestyle="dashed", linewidth=2, label="target"),
        Patch(facecolor="white", edgecolor="#222222", hatch="//", label="target not met"),
        Line2D([], [], color="#444444", linestyle="dotted", linewidth=0.8, label="parity"),
    ]
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    top = max([1.2] + [r.ratio or 0.0 for r in shown] + [r.target_ratio or 0.0 for r in shown])
    ax.set_ylim(0, top * 1.15)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return f"chart: {path}"


def short_label(s: Scenario) -> str:
    names = {
        "ticket c50": "TICKET c50",
        "ticket c50 P16": "TICKET c50 P16",
        "ticket c1": "TICKET c1",
        "set c50 P16": "SET c50 P16",
        "get c50 P16": "GET c50 P16",
        "http ticket c50": "POST ticket 50",
        "http ticket c1": "POST ticket 1",
        "http get c50": "GET /cmd/get 50",
        "http get c1": "GET /cmd/get 1",
        "failover ticket": "failover ticket",
        "failover kvdb": "failover kvdb",
        "rss ticket": "RSS ticket",
        "rss kvdb": "RSS kvdb",
    }
    return names.get(s.key, s.key)


# --- the section in RESULTS.md ------------------------------------------------------------


def tool_versions() -> str:
    out: list[str] = []
    for cmd in (["redis-benchmark", "--version"], ["wrk", "-v"]):
        if shutil.which(cmd[0]) is None:
            out.append(f"{cmd[0]} missing")
            continue
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
        first = (p.stdout or p.stderr).strip().splitlines()
        out.append(first[0] if first else cmd[0])
    return "; ".join(out)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def relative(text: str) -> str:
    """Paths under the repository root, relative (the section is read from the root)."""
    return text.replace(str(ROOT) + "/", "")


def section(
    *,
    run: Run,
    rows: list[Row],
    args: argparse.Namespace,
    reference: Reference | None,
    chart: Path | None,
    results: Path,
) -> str:
    ref_name = reference.label if reference is not None else "issue 10"
    out = [
        f"## Issue 10 side by side: {run.label} against {ref_name} (`bench/compare.py`),"
        f" {run.date}",
        "",
    ]
    if args.quick:
        out += [
            "**Quick validation run (`--quick`: one run, few requests,"
            f" {plural(args.failovers, 'kill')} per example). These figures are not results.**",
            "",
        ]
    stopped = [f"{a.app}: {a.stopped_early}" for a in run.apps if a.stopped_early]
    if stopped:
        out += [f"**Stopped early ({'; '.join(stopped)}): partial figures.**", ""]
    runs = min((len(v) for a in run.apps for v in a.samples.values()), default=0)
    out += [
        f"Machine: `{run.machine}`; CPU {cpu_model()}; {tool_versions()}.",
        "",
        f"Source: {run.source}.",
        "",
        "Command (from the repository root):",
        "",
        "```",
        run.command,
        "```",
        "",
        "Nodes: three per example, started through the command line by"
        " `tests.cluster.harness.ProcCluster`, nodes 2 and 3 with `-j` the first"
        " (fsync on, each node's default log):",
        "",
        "```",
        *[f"{a.app}: {relative(a.node_command)}" for a in run.apps],
        "```",
        "",
        f"Client commands against the leader, median run (ports vary; {plural(runs, 'run')}"
        " of every scenario in rotation, the table gives the median run):",
        "",
        "```",
    ]
    for a in run.apps:
        out += [relative(median_sample(s).command) for s in a.samples.values()]
    out += [
        "```",
        "",
        "Failover: SIGKILL of the leader, then every survivor is sent the example's write"
        f" ({', '.join(' '.join(FAILOVER_WRITE[a.app]) for a in run.apps)}) every"
        f" {args.poll_ms:g} ms with a {args.client_timeout:g} s client timeout; the time is"
        " until the first write a survivor accepts. The killed node is restarted and caught"
        f" up before the next kill ({args.failovers} kills per example). Peak RSS:"
        " `VmHWM` of each node after the throughput runs, before the kills.",
        "",
        "Ratio: ours / reference for request rates, reference / ours for failover time and"
        " RSS (the Go uhaha's upper figure), so above 1 is better everywhere. Targets"
        " (issue 10) are ratios against the reference column (against rqlite for HTTP when"
        " no file gives those rows); failover and RSS targets are absolute.",
        "",
    ]
    if reference is None:
        out += [
            "The reference figures are quoted from issue 10 (the Go uhaha with `redis-benchmark`,"
            " rqlite with `wrk`, 3 nodes, fsync on, on this machine kind); they were not measured"
            " in this run.",
        ]
    else:
        out.append(f"Reference column: `{args.reference}` ({reference.label}).")
    out += ["", *comparison_table(rows, f"{run.label} (median)"), ""]
    if chart is not None and chart.exists():
        rel = os.path.relpath(chart, results.parent)
        out += [f"![{run.label} / {ref_name}, ratios and targets]({rel})", ""]
    out += ["### Details", ""]
    for a in run.apps:
        cases = [c for c in app_cases(a.app, args) if c.key in a.samples]
        out += [f"{a.app}:", "", *table(cases, a), ""]
        idle = ", ".join(f"node {k} {v:.1f}%" for k, v in a.idle_cpu_percent.items())
        out.append(f"- idle: {a.idle_entries_per_s:.1f} log entries/s; CPU {idle}")
        rss = ", ".join(f"node {k} {v:.1f} MB" for k, v in sorted(a.rss_mb.items()))
        out.append(f"- peak RSS: {rss}")
        for f in run.failovers.get(a.app, []):
            out.append(
                f"- failover: node {f.old_leader} killed (term {f.term_before}), node"
                f" {f.new_leader} took writes in {f.seconds:.3f} s (term {f.term_after})"
            )
        if a.app in run.failover_errors:
            out.append(f"- failover failed: {cell(run.failover_errors[a.app])}")
        for key, error in a.failed.items():
            out.append(f"- {key} failed, not measured: {cell(error)}")
        if a.log_notes:
            out += ["", "Node log lines other than info (first 10):", "", "```"]
            out += [n[:200] for n in a.log_notes[:10]]
            out.append("```")
        out.append("")
    return "\n".join(out)


def append_section(results: Path, text: str) -> None:
    old = results.read_text() if results.exists() else "# Benchmark results\n"
    results.write_text(old.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n")


def chart_path(results: Path, day: str) -> Path:
    path = results.parent / f"results-{day}.png"
    if path.exists():  # an older section of the same day links to it: keep that one
        path = results.parent / f"results-{day}-{time.strftime('%H%M%S', time.gmtime())}.png"
    return path


def run_json(run: Run, rows: list[Row]) -> dict[str, Any]:
    return {
        "tool": "bench/compare.py",
        "label": run.label,
        "date": run.date,
        "machine": run.machine,
        "command": run.command,
        "source": run.source,
        "programs": run.programs,
        "rows": {
            r.scenario.key: {
                "value": r.ours.value,
                "unit": r.scenario.unit,
                "text": r.ours.text,
                "p50_ms": r.ours.p50_ms,
                "p99_ms": r.ours.p99_ms,
            }
            for r in rows
        },
        "apps": [asdict(a) for a in run.apps],
        "failovers": {k: [asdict(f) for f in v] for k, v in run.failovers.items()},
        "failover_errors": run.failover_errors,
    }


# --- main -----------------------------------------------------------------------------------


def measure_failovers(cluster: ProcCluster, app: str, args: argparse.Namespace, run: Run) -> None:
    write = FAILOVER_WRITE[app]
    for i in range(args.failovers):
        try:
            f = failover_once(cluster, args.client_timeout, args.poll_ms / 1000, 0.0, write)
        except (RuntimeError, AssertionError, OSError, redis.RedisError) as e:
            run.failover_errors[app] = f"{type(e).__name__}: {e}"[:400]
            print(f"failover {i + 1}: FAILED {run.failover_errors[app]}", flush=True)
            return
        run.failovers.setdefault(app, []).append(f)
        print(
            f"failover {i + 1}: {f.seconds:.3f} s (node {f.old_leader} killed,"
            f" node {f.new_leader} took {' '.join(write)}, term {f.term_before} ->"
            f" {f.term_after})",
            flush=True,
        )


def bench_one(app: str, args: argparse.Namespace, workdir: Path, run: Run) -> None:
    program = program_for(app, args)
    setup = [["SET", HTTP_GET_KEY, "xxx"]] if app == "kvdb" else []
    cluster = UhahaCluster(workdir / app, program, setup)
    run.programs[app] = relative(shlex.join(program))
    bench_in_cluster(
        app,
        cluster,
        app_cases(app, args),
        args,
        run.apps,
        then=lambda _result: measure_failovers(cluster, app, args, run),
    )


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--runs", type=int, default=None, help="runs of every scenario (9)")
    ap.add_argument("--quick", action="store_true", help="1 run, few requests: a check")
    ap.add_argument(
        "--ticket-program",
        default=None,
        help="ticket node command (default: python examples/ticket.py)",
    )
    ap.add_argument(
        "--kvdb-program", default=None, help="kvdb node command (default: python examples/kvdb.py)"
    )
    ap.add_argument("--label", default=None, help="name of our column")
    ap.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="take the reference column from this --json file of an earlier run",
    )
    ap.add_argument("--json", type=Path, default=None, help="write this run's figures here")
    ap.add_argument(
        "--results",
        type=Path,
        default=None,
        help="append the section here (default bench/RESULTS.md; with --quick a"
        " file in the work directory); the chart goes beside it",
    )
    ap.add_argument("--apps", default="ticket,kvdb", help="which examples")
    ap.add_argument("--skip-http", action="store_true", help="no wrk scenarios")
    ap.add_argument("--failovers", type=int, default=None, help="leader kills per example (5)")
    ap.add_argument("--poll-ms", type=float, default=5.0, help="failover poll interval")
    ap.add_argument(
        "--client-timeout", type=float, default=0.25, help="failover client timeout (s)"
    )
    add_load_args(ap, defaults_later=True)
    ap.add_argument(
        "--node-args",
        default="--localtime",
        help="extra arguments for every node (default --localtime: no NTP traffic off the machine)",
    )
    add_quiet_args(ap, per="example")
    ap.add_argument(
        "--tree",
        type=Path,
        default=None,
        help="run the examples and uhaha from this copy of the source (e.g. a"
        " `git archive` export)",
    )
    ap.add_argument("--workdir", type=Path, default=None, help="data dirs and node logs")
    args = ap.parse_args()
    quick = args.quick
    for name, full, short in (
        ("runs", 9, 1),
        ("requests", LOAD_DEFAULTS["requests"], 5000),
        ("pipelined_requests", LOAD_DEFAULTS["pipelined_requests"], 40000),
        ("c1_requests", LOAD_DEFAULTS["c1_requests"], 300),
        ("http_seconds", LOAD_DEFAULTS["http_seconds"], 3.0),
        ("failovers", 5, 2),
    ):
        if getattr(args, name) is None:
            setattr(args, name, short if quick else full)
    args.idle_seconds = 1.0 if quick else 3.0  # app_bench's idle entry-rate window
    args.node_arg = shlex.split(args.node_args)  # app_bench's name
    apps = [a.strip() for a in args.apps.split(",") if a.strip()]
    if not apps or any(a not in FAILOVER_WRITE for a in apps):
        ap.error(f"--apps: choose from {', '.join(FAILOVER_WRITE)}")
    args.apps = apps
    if args.runs < 1 or args.failovers < 0:
        ap.error("--runs must be at least 1, --failovers at least 0")
    if shutil.which("redis-benchmark") is None:
        ap.error("redis-benchmark not found (Debian: apt-get install redis-tools)")
    if not args.skip_http and shutil.which("wrk") is None:
        print("wrk not found (Debian: apt-get install wrk): skipping the HTTP scenarios")
        args.skip_http = True
    use_tree(ap, args)
    if args.label is None:
        given = args.ticket_program or args.kvdb_program
        args.label = "Python uhaha" if given is None else Path(shlex.split(given)[0]).name
    return args


def main() -> int:
    args = parse_args()
    reference = load_reference(args.reference)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="uhaha-compare-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results: Path = args.results or (
        workdir / "RESULTS-quick.md" if args.quick else ROOT / "bench" / "RESULTS.md"
    )
    for out in (results, args.json):
        if out is not None:  # fail now, not after the runs
            out.parent.mkdir(parents=True, exist_ok=True)
    now = time.gmtime()
    command = shlex.join([relative(sys.executable), "bench/compare.py", *sys.argv[1:]])
    run = Run(args.label, time.strftime("%Y-%m-%d %H:%M UTC", now), machine(), command)
    print(f"date: {run.date}\nmachine: {run.machine}\nworkdir: {workdir}")
    given: dict[str, str | None] = {a: getattr(args, f"{a}_program") for a in args.apps}
    parts = [f"{app}: `{cmd}`" for app, cmd in given.items() if cmd is not None]
    if None in given.values():
        tree = args.tree or ROOT
        parts.append(f"the examples and uhaha from {tree} ({tree_state(tree)})")
    run.source = "; ".join(parts)
    print(f"source: {run.source}")
    for app in args.apps:
        bench_one(app, args, workdir, run)
        if any("interrupted" in a.stopped_early for a in run.apps):
            break
    run.machine += f" (load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())})"

    rows = [make_row(s, measured(s, run), reference) for s in SCENARIOS if s.app in args.apps]
    rows = [r for r in rows if not (args.skip_http and r.scenario.key.startswith("http"))]
    if args.json is not None:
        args.json.write_text(json.dumps(run_json(run, rows), indent=1, default=str))
        print(f"figures: {args.json}")
    chart = chart_path(results, time.strftime("%Y-%m-%d", now))
    ref_name = reference.label if reference is not None else "issue 10"
    title = f"{run.label} / {ref_name} ({run.date}; {plural(args.runs, 'run')})"
    print(write_chart(rows, chart, title))
    text = section(run=run, rows=rows, args=args, reference=reference, chart=chart, results=results)
    append_section(results, text)
    print("\n" + "\n".join(comparison_table(rows, f"{run.label} (median)")))
    print(f"\nsection appended to {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
