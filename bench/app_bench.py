"""The examples on a real 3-node cluster: TICKET and kvdb SET/GET over RESP and HTTP.

Every cluster is started through the real command line
(``python examples/ticket.py -n ID -a 127.0.0.1:PORT -d DIR [-j ...]``; fsync
on, the default sqlite log) by :class:`tests.cluster.harness.ProcCluster`;
every process is owned by this script and killed by PID. Against the leader:

- ``redis-benchmark`` (Debian redis-tools): ``TICKET`` with ``-c 50``,
  ``-c 50 -P 16`` and ``-c 1``; kvdb ``SET key:__rand_int__ xxx`` and
  ``GET key:__rand_int__`` with ``-r 100000``, with and without ``-P 16``.
- ``wrk`` (Debian): ``POST /cmd/ticket`` with 50 connections and with 1, and
  kvdb ``GET /cmd/get?arg=key:...`` with 50 connections.

The scenarios run in rotation, ``--runs`` times; the tables give the median
run. For every run it also records how many log entries the leader's
``last_index`` advanced by (less the background rate of tick entries, measured
on the idle cluster first), and the CPU time each node and the client used
(``/proc/PID/stat``), and how much CPU other processes used meanwhile (the
machine is shared; ``--quiet-wait`` waits, boundedly, for them to go quiet
before each run). After the runs: peak RSS (``VmHWM``) of every node, and the
node-log lines above info level. ``--profile SECONDS`` then samples the leader
with py-spy during one more run of each of ``--profile-cases`` (scenario keys:
``ticket c50``, ``ticket c50 P16``, ``ticket c1``, ``set c50 P16``, ``get c50
P16``, ``set c50``, ``get c50``) and prints the functions that cost most per
request. ``--tree DIR`` runs the nodes from a copy of the source (e.g. a
``git archive HEAD`` export) while this tree is being edited.

    .venv/bin/python bench/app_bench.py [--runs 3] [--profile 10]
    .venv/bin/python bench/app_bench.py --tree /tmp/uhaha-head --runs 9 --quiet-wait 90 \\
        --profile 10 --profile-cases "ticket c50 P16,ticket c1,get c50 P16"

Loads are bounded in count and time: a fixed request count and a subprocess
timeout for every ``redis-benchmark``; a duration, a request cap and a
timeout for every ``wrk``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cluster_bench import machine, peak_rss_mb, run_redis_benchmark_csv  # noqa: E402

from tests.cluster.harness import Proc, ProcCluster  # noqa: E402

BENCH_TIMEOUT = 300.0
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Issue 10: the Go uhaha (redis-benchmark) and rqlite (wrk) on this machine kind.
REFERENCE: dict[str, str] = {
    "ticket c50": "Go uhaha 9,426 req/s, p50 4.5 ms, p99 12.1 ms",
    "ticket c50 P16": "Go uhaha 125,313 req/s",
    "ticket c1": "Go uhaha 529 req/s, p50 1.6 ms",
    "set c50 P16": "Go uhaha 36,928 req/s",
    "get c50 P16": "Go uhaha 166,389 req/s",
    "http ticket c50": "rqlite POST /db/execute 3,042 req/s, p50 15.5 ms",
    "http ticket c1": "rqlite POST /db/execute 316 req/s, p50 2.8 ms",
    "http get c50": "rqlite linearizable GET 9,122 req/s",
}


@dataclass
class Case:
    """One scenario: a redis-benchmark command line or a wrk load."""

    key: str
    label: str
    kind: str  # "resp" or "http"
    options: list[str] = field(default_factory=list)  # redis-benchmark options
    command: list[str] = field(default_factory=list)  # redis-benchmark command
    requests: int = 0  # redis-benchmark -n
    method: str = "GET"  # wrk
    path: str = ""  # wrk
    body: str = ""  # wrk
    connections: int = 0  # wrk
    writes: bool = True  # does every request become a write?


@dataclass
class Sample:
    rps: float
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    avg_ms: float = float("nan")
    p95_ms: float = float("nan")
    max_ms: float = float("nan")
    entries_raw: int = 0  # how far the leader's last_index moved
    entries: float = 0.0  # the same, less the idle rate of tick entries
    leader_cpu_s: float = 0.0
    leader_sys_s: float = 0.0  # the kernel's part of leader_cpu_s
    follower_cpu_s: list[float] = field(default_factory=list)
    client_cpu_s: float = 0.0
    others_cpu_percent: float = 0.0  # CPU used by processes not in this benchmark
    load1: float = 0.0  # 1-minute load average at the end of the run
    errors: str = ""
    stderr: str = ""
    command: str = ""


@dataclass
class AppResult:
    app: str
    node_command: str
    idle_entries_per_s: float = 0.0
    idle_cpu_percent: dict[str, float] = field(default_factory=dict)
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    rss_mb: dict[str, float] = field(default_factory=dict)
    log_notes: list[str] = field(default_factory=list)
    profile: list[str] = field(default_factory=list)
    stopped_early: str = ""  # why fewer runs than asked for were made
    failed: dict[str, str] = field(default_factory=dict)  # scenario key -> first error


# --- measuring helpers ------------------------------------------------------------------


def last_index(p: Proc) -> int:
    """The node's last log index (``last_log_index`` in the Go uhaha's RAFT INFO)."""
    info = p.info()
    return int(info["last_index"] if "last_index" in info else info["last_log_index"])


def cpu_times(p: Proc) -> tuple[float, float]:
    """(user, system) CPU seconds of a node, from /proc/PID/stat: all its threads, plus
    its reaped children (the forked snapshot writer)."""
    assert p.popen is not None
    stat = Path(f"/proc/{p.popen.pid}/stat").read_text()
    utime, stime, cutime, cstime = map(int, stat[stat.rindex(")") + 2 :].split()[11:15])
    return (utime + cutime) / CLK_TCK, (stime + cstime) / CLK_TCK


def cpu_seconds(p: Proc) -> float:
    """utime + stime of a node."""
    return sum(cpu_times(p))


def children_cpu_seconds() -> float:
    """CPU of this script's reaped children: the load generators (nodes are never reaped
    during the runs)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def others_cpu_percent(procs: list[Proc], seconds: float) -> float:
    """How much CPU (percent of one core) processes other than ``procs`` use now."""
    busy0, own0 = machine_busy_seconds(), sum(cpu_seconds(p) for p in procs)
    time.sleep(seconds)
    busy1, own1 = machine_busy_seconds(), sum(cpu_seconds(p) for p in procs)
    return max(0.0, (busy1 - busy0) - (own1 - own0)) / seconds * 100


def wait_until_quiet(procs: list[Proc], limit: float, max_wait: float) -> float:
    """Wait (at most ``max_wait`` s) until other processes use under ``limit``% of a core.

    The machine is shared; this keeps other engineers' test runs out of as many
    measurements as possible, and never waits unboundedly. Returns the last reading."""
    deadline = time.monotonic() + max_wait
    while True:
        others = others_cpu_percent(procs, 1.0)
        if others < limit or time.monotonic() >= deadline:
            return others


def idle_entry_rate(leader: Proc, seconds: float) -> float:
    """Entries per second the leader appends with no client load (the replicated tick)."""
    before = last_index(leader)
    time.sleep(seconds)
    return (last_index(leader) - before) / seconds


def redis_benchmark_cmd(leader: Proc, case: Case) -> list[str]:
    cmd = ["redis-benchmark", "-h", leader.host, "-p", str(leader.port)]
    return [*cmd, *case.options, "-n", str(case.requests), "--csv", *case.command]


def run_redis_benchmark(leader: Proc, case: Case) -> Sample:
    cmd = redis_benchmark_cmd(leader, case)
    started = time.monotonic()
    row, stderr = run_redis_benchmark_csv(cmd)
    seconds = time.monotonic() - started
    return Sample(
        rps=row["rps"],
        requests=case.requests,
        seconds=seconds,
        p50_ms=row["p50_latency_ms"],
        p99_ms=row["p99_latency_ms"],
        avg_ms=row["avg_latency_ms"],
        p95_ms=row["p95_latency_ms"],
        max_ms=row["max_latency_ms"],
        stderr=stderr,
        command=" ".join(cmd),
    )


WRK_SCRIPT = """\
wrk.method = {method}
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
local cap = {cap}
local count = 0
response = function(status, headers, body)
  count = count + 1
  if count >= cap then wrk.thread:stop() end
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %d %d %d %d %d %d\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, summary.errors.status, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout))
end
"""


def run_wrk(leader: Proc, case: Case, seconds: float, cap: int, workdir: Path) -> Sample:
    threads = min(2, case.connections)
    per_thread_cap = max(1, cap // threads)
    script = workdir / f"wrk-{case.key.replace(' ', '-')}.lua"
    script.write_text(
        WRK_SCRIPT.format(
            method=json.dumps(case.method), body=json.dumps(case.body), cap=per_thread_cap
        )
    )
    url = f"http://{leader.host}:{leader.port}{case.path}"
    cmd = ["wrk", "-t", str(threads), "-c", str(case.connections), "-d", f"{seconds:g}s"]
    cmd += ["--timeout", "5s", "-s", str(script), url]
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=seconds + 60, check=False, cwd=workdir
    )
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {out.returncode}: {out.stderr.strip()}")
    m = re.search(r"^RESULT (.*)$", out.stdout, re.M)
    if m is None:
        raise RuntimeError(f"unexpected wrk output: {out.stdout!r}")
    n, dur_us, p50_us, p99_us, mean_us, status, conn, read, write, tmo = map(int, m[1].split())
    errors = {"non-2xx": status, "connect": conn, "read": read, "write": write, "timeout": tmo}
    err = ", ".join(f"{k} {v}" for k, v in errors.items() if v)
    if n >= per_thread_cap * threads:
        # wrk's duration is the -d time even when the threads stopped early.
        err = (err + "; " if err else "") + "request cap reached: rate is a lower bound"
    return Sample(
        rps=n / (dur_us / 1e6),
        requests=n,
        seconds=dur_us / 1e6,
        p50_ms=p50_us / 1000,
        p99_ms=p99_us / 1000,
        avg_ms=mean_us / 1000,
        errors=err,
        stderr=out.stderr.strip(),
        command=" ".join(cmd) + f"   # {script.name}: {case.method} body {case.body!r}",
    )


def measure(
    cluster: ProcCluster, case: Case, args: argparse.Namespace, workdir: Path, idle_rate: float
) -> Sample:
    leader = cluster.wait_leader()
    followers = [p for p in cluster.live() if p is not leader]
    if args.quiet_wait > 0:
        wait_until_quiet([leader, *followers], args.quiet_limit, args.quiet_wait)
    cpu_before = [cpu_seconds(p) for p in [leader, *followers]]
    sys_before = cpu_times(leader)[1]
    client_before = children_cpu_seconds()
    busy_before = machine_busy_seconds()
    before = last_index(leader)
    started = time.monotonic()
    if case.kind == "resp":
        s = run_redis_benchmark(leader, case)
    else:
        s = run_wrk(leader, case, args.http_seconds, args.http_cap, workdir)
    elapsed = time.monotonic() - started
    after = last_index(leader)
    cpu_after = [cpu_seconds(p) for p in [leader, *followers]]
    s.client_cpu_s = children_cpu_seconds() - client_before
    s.leader_cpu_s = cpu_after[0] - cpu_before[0]
    s.leader_sys_s = cpu_times(leader)[1] - sys_before
    s.follower_cpu_s = [a - b for a, b in zip(cpu_after[1:], cpu_before[1:], strict=True)]
    s.entries_raw = after - before
    s.entries = max(0.0, s.entries_raw - idle_rate * elapsed)
    ours = sum(cpu_after) - sum(cpu_before) + s.client_cpu_s
    busy = machine_busy_seconds() - busy_before
    s.others_cpu_percent = max(0.0, busy - ours) / elapsed * 100
    s.load1 = os.getloadavg()[0]
    if cluster.wait_leader() is not leader:
        s.errors = (s.errors + "; " if s.errors else "") + "the leader changed during the run"
    return s


def log_notes(cluster: ProcCluster) -> list[str]:
    """Every node-log line that is not plain info (``*``), grouped with numbers masked."""
    notes: list[str] = []
    for p in cluster.procs.values():
        if not p.log_path.exists():
            continue
        counts: Counter[str] = Counter()
        first: dict[str, str] = {}
        for line in p.log().splitlines():
            m = re.match(r"^\d+:(\w) (\d+ \w+ \d+ [\d:.]+) (\S) (.*)$", line)
            if m is None:
                key = "(unformatted) " + re.sub(r"\d+", "N", line)[:160]
            elif m[3] == "*":
                continue
            else:
                key = f"{m[3]} " + re.sub(r"\d+", "N", m[4])[:160]
            counts[key] += 1
            first.setdefault(key, line[:300])
        for key, n in counts.most_common():
            notes.append(f"node {p.node_id}: {n} x  {first[key]}")
    return notes


# --- profile ------------------------------------------------------------------------------


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def profile_leader(
    cluster: ProcCluster, case: Case, *, requests: int, rate: int, workdir: Path
) -> list[str]:
    """Sample the leader with py-spy through one redis-benchmark run of ``case``.

    py-spy is attached before the load starts and stopped (SIGINT) when it ends,
    so the analysed samples cover exactly ``requests`` requests (idle samples are
    not recorded). A second, shorter run is recorded as a speedscope flame graph.
    """
    spy = py_spy()
    if spy is None:
        return ["py-spy not found (pip install py-spy): no profile"]
    leader = cluster.wait_leader()
    assert leader.popen is not None
    name = case.key.replace(" ", "-")
    raw = workdir / f"profile-{name}.txt"
    speedscope = workdir / f"profile-{name}.speedscope.json"
    pid = str(leader.popen.pid)
    lines: list[str] = []
    for out, fmt, n in ((raw, "raw", requests), (speedscope, "speedscope", requests // 3)):
        spy_cmd = [spy, "record", "-p", pid, "-r", str(rate), "--nonblocking"]
        spy_cmd += ["-d", f"{BENCH_TIMEOUT:g}", "-f", fmt, "-o", str(out)]
        spy_proc = subprocess.Popen(spy_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            time.sleep(1.0)  # py-spy attached and sampling
            cpu0, w0 = cpu_seconds(leader), time.monotonic()
            s = run_redis_benchmark(leader, replace(case, requests=n))
            cpu1, w1 = cpu_seconds(leader), time.monotonic()
        finally:
            if spy_proc.poll() is None:
                spy_proc.send_signal(signal.SIGINT)
            _, err = spy_proc.communicate(timeout=60)
        if fmt == "raw":
            lines += [
                f"profile: {' '.join(spy_cmd)}  (stopped with SIGINT after the load)",
                f"load: {s.command}",
                f"{s.rps:,.0f} req/s under the profiler (p50 {s.p50_ms:.2f} ms); leader CPU"
                f" {cpu1 - cpu0:.2f} s in {w1 - w0:.2f} s"
                f" ({(cpu1 - cpu0) / (w1 - w0) * 100:.0f}% of one core,"
                f" {(cpu1 - cpu0) / n * 1e6:.1f} us/request)",
            ]
            if not raw.exists():
                return [*lines, f"py-spy wrote nothing: {err.decode(errors='replace')[-500:]}"]
            lines += analyse_profile(raw.read_text(), rate, n)
    lines.append(f"raw collapsed stacks: {raw}; speedscope: {speedscope}")
    return lines


def _frame(frame: str) -> tuple[str, str]:
    """``fn (path/file.py:123)`` -> (``fn (file.py)``, ``file.py`` relative-ish)."""
    m = re.match(r"^(.*) \((.*?)(?::\d+)?\)$", frame)
    if m is None:
        return frame, frame
    path = m[2]
    for marker in ("/uhaha/", "/site-packages/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "/uhaha/":
                path = "uhaha/" + path
            break
    return f"{m[1]} ({path})", path


def analyse_profile(raw: str, rate: int, requests: int, top: int = 25) -> list[str]:
    """Self and inclusive time per function (main thread; other threads summed apart)."""
    self_t: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    by_file: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        n = int(count_s)
        frames = stack.split(";")
        thread_name = frames[0] if frames[0].startswith(("process", "thread")) else ""
        if thread_name:
            frames = frames[1:]
        # py-spy without --threads gives no thread frame: tell threads apart by their root
        # (a stack py-spy could not unwind to its root counts as the event loop's).
        root = frames[0] if frames else ""
        is_main = not root.startswith("Thread._bootstrap")
        threads["event loop" if is_main else "worker threads (aiosqlite, executor)"] += n
        if not is_main:
            continue
        total += n
        names = [_frame(f) for f in frames]
        self_t[names[-1][0]] += n
        by_file[names[-1][1]] += n
        for name in {nm for nm, _ in names}:
            incl[name] += n

    def us(n: int) -> str:
        return f"{n / rate / requests * 1e6:6.2f} us"

    waiting = self_t["EpollSelector.select (selectors.py)"]
    if waiting:  # asyncio's own loop
        where = (
            f" {us(waiting)} in EpollSelector.select (the epoll_wait syscall: woken but waiting"
            f" for a core, counted as active by py-spy) and {us(total - waiting)} running code"
        )
    else:  # uvloop: its C code (epoll, socket I/O, callbacks) has no Python frame
        where = (
            " the event loop's own C code (uvloop: epoll, socket I/O and callbacks) counts as"
            " self time of the frame that started it (Runner.run)"
        )
    out = [
        "samples: " + "; ".join(f"{k}: {v} ({v / rate:.2f} s)" for k, v in threads.most_common(6)),
        f"event loop not idle: {total} samples = {us(total)}/request, of which{where}",
        "",
        f"top {top} by self time (event loop; per request):",
    ]
    out += [f"  {us(n)}  {n / total * 100:5.1f}%  {name}" for name, n in self_t.most_common(top)]
    out += ["", f"top {top} by inclusive time (event loop; per request):"]
    out += [f"  {us(n)}  {n / total * 100:5.1f}%  {name}" for name, n in incl.most_common(top)]
    out += ["", "self time by file (event loop):"]
    out += [f"  {us(n)}  {n / total * 100:5.1f}%  {name}" for name, n in by_file.most_common(20)]
    return out


# --- scenarios ----------------------------------------------------------------------------


def ticket_cases(args: argparse.Namespace) -> list[Case]:
    return [
        Case("ticket c50", "`TICKET -c 50`", "resp", ["-c", "50"], ["TICKET"], args.requests),
        Case(
            "ticket c50 P16",
            "`TICKET -c 50 -P 16`",
            "resp",
            ["-c", "50", "-P", "16"],
            ["TICKET"],
            args.pipelined_requests,
        ),
        Case("ticket c1", "`TICKET -c 1`", "resp", ["-c", "1"], ["TICKET"], args.c1_requests),
        Case(
            "http ticket c50",
            "HTTP `POST /cmd/ticket`, 50 conn.",
            "http",
            method="POST",
            path="/cmd/ticket",
            body="[]",
            connections=50,
        ),
        Case(
            "http ticket c1",
            "HTTP `POST /cmd/ticket`, 1 conn.",
            "http",
            method="POST",
            path="/cmd/ticket",
            body="[]",
            connections=1,
        ),
    ]


def kvdb_cases(args: argparse.Namespace) -> list[Case]:
    r = ["-r", "100000"]
    set_cmd = ["SET", "key:__rand_int__", "xxx"]
    get_cmd = ["GET", "key:__rand_int__"]
    p16 = ["-c", "50", "-P", "16", *r]
    c50 = ["-c", "50", *r]
    n, n50 = args.pipelined_requests, args.requests
    return [
        Case("set c50 P16", "kvdb `SET -c 50 -P 16 -r 100000`", "resp", p16, set_cmd, n),
        Case(
            "get c50 P16", "kvdb `GET -c 50 -P 16 -r 100000`", "resp", p16, get_cmd, n, writes=False
        ),
        Case("set c50", "kvdb `SET -c 50 -r 100000`", "resp", c50, set_cmd, n50),
        Case("get c50", "kvdb `GET -c 50 -r 100000`", "resp", c50, get_cmd, n50, writes=False),
        Case(
            "http get c50",
            "kvdb HTTP `GET /cmd/get?arg=key:000000000001`, 50 conn.",
            "http",
            method="GET",
            path="/cmd/get?arg=key:000000000001",
            connections=50,
            writes=False,
        ),
    ]


# --- reporting ----------------------------------------------------------------------------


def median_sample(samples: list[Sample]) -> Sample:
    return sorted(samples, key=lambda s: s.rps)[len(samples) // 2]


def table(cases: list[Case], result: AppResult) -> list[str]:
    lines = [
        "| scenario | req/s median | best | p50 | p99 | avg (ms, median run) |"
        " requests / log entry | CPU us/request leader, followers, client |"
        " others' CPU % median (max) | all runs, req/s |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for case in cases:
        samples = result.samples.get(case.key, [])
        if not samples:
            continue
        mid = median_sample(samples)
        all_rps = " / ".join(f"{s.rps:,.0f}" for s in samples)
        reqs = sum(s.requests for s in samples)
        entries = sum(s.entries for s in samples)
        per_entry = f"{reqs / entries:.1f}" if case.writes and entries >= 1 else "-"
        if not case.writes:
            per_entry = f"({sum(s.entries_raw for s in samples)} entries, ticks)"
        fol = "/".join(f"{x / mid.requests * 1e6:.0f}" for x in mid.follower_cpu_s)
        cpu = (
            f"{mid.leader_cpu_s / mid.requests * 1e6:.0f}, {fol},"
            f" {mid.client_cpu_s / mid.requests * 1e6:.0f}"
        )
        flags = {s.errors for s in samples if s.errors}
        note = (" (" + "; ".join(sorted(flags)) + ")") if flags else ""
        others = [s.others_cpu_percent for s in samples]
        best = max(s.rps for s in samples)
        lines.append(
            f"| {case.label}{note} | **{mid.rps:,.0f}** | {best:,.0f} | {mid.p50_ms:.2f}"
            f" | {mid.p99_ms:.2f} | {mid.avg_ms:.2f} | {per_entry} | {cpu}"
            f" | {statistics.median(others):.0f} ({max(others):.0f}) | {all_rps} |"
        )
    return lines


def comparison(all_cases: list[Case], results: list[AppResult]) -> list[str]:
    lines = [
        "| scenario | Python (median) | reference (issue 10) | ratio |",
        "|---|---|---|---:|",
    ]
    for case in all_cases:
        ref = REFERENCE.get(case.key)
        samples = next((r.samples[case.key] for r in results if case.key in r.samples), None)
        if ref is None or not samples:
            continue
        mid = median_sample(samples)
        m = re.search(r"([\d,]+) req/s", ref)
        ratio = f"{mid.rps / float(m[1].replace(',', '')):.2f}" if m else "-"
        lines.append(
            f"| {case.label} | {mid.rps:,.0f} req/s, p50 {mid.p50_ms:.2f} ms,"
            f" p99 {mid.p99_ms:.2f} ms | {ref} | {ratio} |"
        )
    return lines


def tree_state(tree: Path) -> str:
    """The commit, and how many files differ from it, when ``tree`` is a git checkout."""
    head = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    if head.returncode != 0:
        marker = tree / "COMMIT"  # written next to a `git archive` export, by hand
        return f"export of {marker.read_text().strip()}" if marker.exists() else "not git"
    status = subprocess.run(
        ["git", "-C", str(tree), "status", "--short", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    )
    changed = len(status.stdout.splitlines())
    return f"HEAD {head.stdout.strip()}, {changed} tracked files modified"


# --- main -----------------------------------------------------------------------------------


# The load options' defaults: app_bench's, and compare.py's full (not --quick) run.
LOAD_DEFAULTS: dict[str, int | float] = {
    "requests": 20000,
    "pipelined_requests": 200000,
    "c1_requests": 2000,
    "http_seconds": 8.0,
}


def add_load_args(ap: argparse.ArgumentParser, *, defaults_later: bool = False) -> None:
    """The client loads' options: --requests, --pipelined-requests, --c1-requests,
    --http-seconds, --http-cap. With ``defaults_later`` the first four default to None and
    their help names the :data:`LOAD_DEFAULTS` value (the caller picks a default per mode)."""
    helps = {
        "requests": "-n of the -c 50 runs",
        "pipelined_requests": "-n with -P 16",
        "c1_requests": "-n of the -c 1 runs",
        "http_seconds": "wrk -d",
    }
    for name, help_text in helps.items():
        default = LOAD_DEFAULTS[name]
        ap.add_argument(
            "--" + name.replace("_", "-"),
            type=type(default),
            default=None if defaults_later else default,
            help=f"{help_text} ({str(default).removesuffix('.0')})"
            if defaults_later
            else help_text,
        )
    ap.add_argument("--http-cap", type=int, default=1_000_000, help="wrk request cap per run")


def add_quiet_args(ap: argparse.ArgumentParser, *, per: str) -> None:
    """--quiet-wait, --quiet-limit, and --budget (minutes per ``per``, an app or example)."""
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        help="before each run, wait up to this many seconds for other processes to go quiet",
    )
    ap.add_argument(
        "--quiet-limit",
        type=float,
        default=15.0,
        help="'quiet': other processes use less than this percent of one core",
    )
    ap.add_argument(
        "--budget",
        type=float,
        default=0.0,
        help=f"minutes per {per} after which no new run starts (0: no limit)",
    )


def use_tree(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Resolve ``--tree`` and have the nodes import uhaha from it (PYTHONPATH comes before
    the editable install); an error if it holds no uhaha package."""
    if args.tree is not None:
        args.tree = args.tree.resolve()
        if not (args.tree / "uhaha" / "__init__.py").exists():
            ap.error(f"--tree {args.tree}: no uhaha package there")
        os.environ["PYTHONPATH"] = str(args.tree)


def example_program(app: str, args: argparse.Namespace) -> list[str]:
    """The command line of an example's node, from ``--tree`` or this repository."""
    tree: Path = args.tree or ROOT
    return [sys.executable, str(tree / "examples" / f"{app}.py")]


def app_cluster(app: str, args: argparse.Namespace, workdir: Path) -> ProcCluster:
    appdir = workdir / app
    appdir.mkdir(parents=True, exist_ok=True)
    return ProcCluster(appdir, program=example_program(app, args))


def bench_in_cluster(
    app: str,
    cluster: ProcCluster,
    cases: list[Case],
    args: argparse.Namespace,
    results: list[AppResult],
    *,
    then: Callable[[AppResult], None] | None = None,
) -> AppResult:
    """One app's whole turn: :func:`bench_app` in ``cluster``, its result appended to
    ``results``, then (unless interrupted) ``then(result)`` while the nodes still run.
    Always kills the nodes afterwards and adds their log notes to the result; prints the
    tail of the node logs if anything failed."""
    ok = False
    try:
        result = bench_app(app, cluster, cases, args)
        results.append(result)
        if then is not None and "interrupted" not in result.stopped_early:
            then(result)
        ok = True
    finally:
        cluster.close()  # SIGKILL by PID, every node this script started
        if results and results[-1].app == app:
            results[-1].log_notes = log_notes(cluster)
        if not ok:
            print(cluster.logs()[-20000:], file=sys.stderr)
    return result


def profile_cases(
    cluster: ProcCluster, cases: list[Case], args: argparse.Namespace, result: AppResult
) -> None:
    """``--profile``: py-spy on the leader during one more run of each ``--profile-cases``
    case (RESP ones), added to ``result.profile`` and printed."""
    for key in args.profile_cases.split(","):
        case = next((c for c in cases if c.key == key.strip()), None)
        if case is None or case.kind != "resp":
            continue
        rps = median_sample(result.samples[case.key]).rps if args.runs else 5000.0
        result.profile += [f"#### profile of `{case.key}`", ""]
        result.profile += profile_leader(
            cluster,
            case,
            requests=max(500, int(rps * args.profile)),
            rate=args.profile_rate,
            workdir=cluster.workdir,
        )
        result.profile.append("")
    print("\n".join(result.profile), flush=True)


def bench_app(
    app: str, cluster: ProcCluster, cases: list[Case], args: argparse.Namespace
) -> AppResult:
    appdir = cluster.workdir
    program = cluster.program
    extra = list(args.node_arg)
    result = AppResult(app, " ".join([*program, "-n ID -a 127.0.0.1:PORT -d DIR", *extra]))
    print(f"\n== {app}: {result.node_command} (joined with -j); logs in {appdir}", flush=True)
    cluster.start(3, extra=extra)
    leader = cluster.wait_leader()
    procs = cluster.live()
    cpu0 = [cpu_seconds(p) for p in procs]
    result.idle_entries_per_s = idle_entry_rate(leader, args.idle_seconds)
    for p, c0 in zip(procs, cpu0, strict=True):
        result.idle_cpu_percent[p.node_id] = (cpu_seconds(p) - c0) / args.idle_seconds * 100
    print(
        f"3 nodes up; leader node {leader.node_id} at {leader.address};"
        f" idle: {result.idle_entries_per_s:.1f} entries/s, CPU "
        + ", ".join(f"{k}: {v:.1f}%" for k, v in result.idle_cpu_percent.items()),
        flush=True,
    )
    deadline = time.monotonic() + args.budget * 60 if args.budget > 0 else float("inf")
    try:
        for run in range(args.runs):
            if run > 0 and time.monotonic() > deadline:
                result.stopped_early = f"time budget ({args.budget:g} min) spent after {run} runs"
                break
            run_cases(cluster, cases, args, result, run)
    except KeyboardInterrupt:
        result.stopped_early = "interrupted (SIGINT); the runs so far are reported"
    if result.stopped_early:
        print(result.stopped_early, flush=True)
    for p in cluster.live():
        result.rss_mb[p.node_id] = peak_rss_mb(p)
    print("peak RSS (VmHWM) MB: " + ", ".join(f"{k}: {v:.1f}" for k, v in result.rss_mb.items()))
    return result


def run_cases(
    cluster: ProcCluster, cases: list[Case], args: argparse.Namespace, result: AppResult, run: int
) -> None:
    for case in cases:
        if case.key in result.failed:
            continue  # failed once (e.g. a server without this command): not tried again
        try:
            s = measure(cluster, case, args, cluster.workdir, result.idle_entries_per_s)
        except (
            RuntimeError,
            AssertionError,
            OSError,
            subprocess.SubprocessError,
            redis.RedisError,
        ) as e:
            result.failed[case.key] = f"{type(e).__name__}: {e}"[:400]
            print(f"run {run + 1} {case.key}: FAILED {result.failed[case.key]}", flush=True)
            continue
        result.samples.setdefault(case.key, []).append(s)
        print(
            f"run {run + 1} {case.key}: {s.rps:,.0f} req/s p50 {s.p50_ms:.2f}"
            f" p99 {s.p99_ms:.2f} ms; {s.requests:,} requests, {s.entries_raw} entries"
            f" ({s.entries:.0f} net); CPU s leader {s.leader_cpu_s:.2f}"
            f" (sys {s.leader_sys_s:.2f}) followers"
            f" {'/'.join(f'{x:.2f}' for x in s.follower_cpu_s)} client"
            f" {s.client_cpu_s:.2f}; others {s.others_cpu_percent:.0f}% load {s.load1:.2f}"
            f"{'; ' + s.errors if s.errors else ''}",
            flush=True,
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--runs", type=int, default=3, help="runs of every scenario")
    add_load_args(ap)
    add_quiet_args(ap, per="app")
    ap.add_argument("--idle-seconds", type=float, default=3.0, help="idle entry-rate window")
    ap.add_argument("--apps", default="ticket,kvdb", help="which examples")
    ap.add_argument("--skip-http", action="store_true", help="no wrk scenarios")
    ap.add_argument(
        "--profile",
        type=float,
        default=0.0,
        help="profile the leader with py-spy for about this many seconds per profiled scenario",
    )
    ap.add_argument(
        "--profile-cases",
        default="ticket c50 P16",
        help="comma-separated scenario keys to profile (e.g. 'ticket c50 P16,ticket c1')",
    )
    ap.add_argument("--profile-rate", type=int, default=200, help="py-spy samples/s")
    ap.add_argument("--workdir", type=Path, default=None, help="data dirs and node logs")
    ap.add_argument("--json", type=Path, default=None, help="write every sample here")
    ap.add_argument(
        "--tree",
        type=Path,
        default=None,
        help="run the examples and the uhaha package from this copy of the source (e.g. a"
        " `git archive HEAD` export, to measure a fixed commit while the tree is being"
        " edited); default: this repository",
    )
    ap.add_argument(
        "--node-arg",
        action="append",
        default=["--localtime"],
        help="extra argument for every node (repeatable; --localtime is always passed:"
        " no NTP traffic off the machine)",
    )
    args = ap.parse_args()
    if args.skip_http or shutil.which("wrk") is None:
        if not args.skip_http:
            print("wrk not found: skipping the HTTP scenarios")
        args.skip_http = True

    use_tree(ap, args)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="uhaha-app-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print(f"machine: {machine()}")
    print(f"workdir: {workdir}")
    print(f"source: {args.tree or ROOT} ({tree_state(args.tree or ROOT)})")
    apps = {"ticket": ticket_cases(args), "kvdb": kvdb_cases(args)}
    results: list[AppResult] = []
    all_cases: list[Case] = []
    for app in args.apps.split(","):
        cases = [c for c in apps[app] if not (args.skip_http and c.kind == "http")]
        all_cases += cases
        cluster = app_cluster(app, args, workdir)
        profile = partial(profile_cases, cluster, cases, args) if args.profile > 0 else None
        result = bench_in_cluster(app, cluster, cases, args, results, then=profile)
        print(f"load average after {app}: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if args.json:
            args.json.write_text(json.dumps([asdict(r) for r in results], indent=1, default=str))
        if "interrupted" in result.stopped_early:
            break

    print(f"\nmachine at the end: {machine()}")
    for r in results:
        cases = [c for c in all_cases if c.key in r.samples]
        print(f"\n### {r.app}: {r.node_command}\n")
        if r.stopped_early:
            print(f"stopped early: {r.stopped_early}\n")
        idle_cpu = ", ".join(f"node {k} {v:.1f}%" for k, v in r.idle_cpu_percent.items())
        print(f"idle: {r.idle_entries_per_s:.1f} log entries/s (ticks); CPU {idle_cpu}\n")
        print("\n".join(table(cases, r)))
        for key, error in r.failed.items():
            print(f"{key}: failed, not measured: {error}")
        rss = ", ".join(f"node {k}: {v:.1f} MB" for k, v in sorted(r.rss_mb.items()))
        print(f"\npeak RSS (VmHWM) after the runs: {rss}")
        print("\ncommands (median run):")
        for c in cases:
            print("  " + median_sample(r.samples[c.key]).command)
        stderr = {s.stderr for ss in r.samples.values() for s in ss if s.stderr}
        if stderr:
            print("client stderr: " + " | ".join(sorted(stderr)))
        if r.log_notes:
            print("\nnode logs, lines other than info:")
            print("\n".join("  " + n for n in r.log_notes[:60]))
    print("\n### against issue 10\n")
    print("\n".join(comparison(all_cases, results)))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
