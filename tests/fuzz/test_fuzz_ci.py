"""The fuzzing checks of CI: the corpus replays clean, and a short fuzz run finds nothing.

Each atheris harness runs as its own program (coverage-guided, libFuzzer)
for at most RUNS inputs or SECONDS seconds, whichever comes first, starting
from the committed corpus; any uncaught exception, a hang of one input
(-timeout) or memory growth (-rss_limit_mb) makes it exit non-zero. A
failure shows libFuzzer's report, and the crash file to replay is kept in
the test's temporary directory (`python fuzz/fuzz_<target>.py <crash file>`).
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fuzz.runner import ROOT, corpus_files, replay

TARGETS = ["resp", "sniff", "http_args"]
RUNS = 20_000
SECONDS = 8


@pytest.mark.parametrize("target", TARGETS)
def test_the_corpus_replays_clean(target: str) -> None:
    harness = importlib.import_module(f"fuzz.fuzz_{target}")
    replayed = list(replay(target, harness.test_one_input))
    assert len(replayed) == len(corpus_files(target)) >= 30


@pytest.mark.parametrize("target", TARGETS)
def test_a_short_fuzz_run_finds_nothing(target: str, tmp_path: Path) -> None:
    found = tmp_path / "new"
    found.mkdir()
    argv = [
        sys.executable,
        str(ROOT / "fuzz" / f"fuzz_{target}.py"),
        f"-runs={RUNS}",
        f"-max_total_time={SECONDS}",
        "-max_len=1024",  # short inputs: more of them in the time
        "-timeout=10",  # one input running longer is a hang
        "-rss_limit_mb=1024",
        f"-artifact_prefix={tmp_path}/",
        "-print_final_stats=1",
        str(found),  # new inputs go here, not into the committed corpus
        str(ROOT / "fuzz" / "corpus" / target),
    ]
    run = subprocess.run(
        argv, check=False, capture_output=True, text=True, timeout=SECONDS + 60, cwd=tmp_path
    )
    report = run.stdout + run.stderr
    crashes = [
        p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-"))
    ]
    assert run.returncode == 0 and not crashes, f"{crashes}\n{report[-4000:]}"
    done = re.search(r"Done (\d+) runs in (\d+) second", report)
    assert done is not None, report[-2000:]
    runs, seconds = int(done.group(1)), int(done.group(2))
    assert runs > len(corpus_files(target))  # it fuzzed, beyond replaying the seeds
    print(f"{target}: {runs} runs in {seconds} s ({runs / max(seconds, 1):.0f} execs/s)")
