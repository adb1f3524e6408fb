"""Start-up problems end the process with one clear line and a non-zero status."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from .harness import ROOT, ProcCluster, free_port


def uhaha(
    *args: str, timeout: float = 30, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "uhaha", *args],
        check=False,
        cwd=ROOT,
        env=None if env is None else {**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert lines, "no error message"
    return lines[-1]


def test_help_and_version() -> None:
    r = uhaha("-h")
    assert r.returncode == 0
    assert r.stdout.startswith("Usage: uhaha [-n id] [-a addr] [options]")
    r = uhaha("-v")
    assert r.returncode == 0 and r.stdout.startswith("uhaha ")


def test_bad_flag() -> None:
    r = uhaha("--frobnicate")
    assert r.returncode == 2
    assert one_line(r.stderr) == "uhaha: unknown flag '--frobnicate' (see -h)"


def test_unknown_event_loop_choice() -> None:
    r = uhaha("-a", f"127.0.0.1:{free_port()}", env={"UHAHA_LOOP": "tokio"})
    assert r.returncode == 2
    assert one_line(r.stderr) == "uhaha: UHAHA_LOOP='tokio': expected asyncio or uvloop"


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = uhaha("-a", f"127.0.0.1:{port}", "-d", str(tmp_path))
    assert r.returncode == 1
    assert one_line(r.stderr).endswith(f"address 127.0.0.1:{port} is already in use")


def test_data_directory_not_usable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    r = uhaha("-a", f"127.0.0.1:{free_port()}", "-d", str(blocker / "data"))
    assert r.returncode == 1
    line = one_line(r.stderr)
    assert str(blocker) in line and line.startswith("uhaha: ")


def test_data_directory_in_use(tmp_path: Path) -> None:
    c = ProcCluster(tmp_path)
    try:
        first = c.start(1)
        r = uhaha("-a", f"127.0.0.1:{free_port()}", "-d", str(first.data_dir))
        assert r.returncode == 1
        line = one_line(r.stderr)
        assert "in use by another process" in line and line.startswith("uhaha: ")
    finally:
        c.close()
