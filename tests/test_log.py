"""Log output: uhaha's text lines by default, JSON lines with ``--log-format json``
(time, level, pid, role, msg, and the exception when there is one), checked
on real nodes started through the command line."""

from __future__ import annotations

import io
import json
import logging
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.cluster.harness import ROOT, free_port, wait_for
from uhaha.log import JsonFormatter, UhahaFormatter, setup_logging

TICKET = [sys.executable, str(ROOT / "examples" / "ticket.py")]
RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
LEVELS = {"debug", "verb", "info", "warn", "error", "critical"}
ROLES = {"leader", "follower", "candidate", "none"}


def json_lines(text: str, pid: int) -> list[dict[str, Any]]:
    """Every line of ``text`` as a log object, checked field by field."""
    records = []
    for line in text.splitlines():
        record = json.loads(line)
        assert isinstance(record, dict), line
        assert RFC3339_MS.match(record["time"]), line
        assert record["level"] in LEVELS, line
        assert record["pid"] == pid, line
        assert record["role"] in ROLES, line
        assert isinstance(record["msg"], str), line
        assert set(record) <= {"time", "level", "pid", "role", "msg", "exception"}, line
        records.append(record)
    return records


def ready(address: str) -> bool:
    try:
        return httpx.get(f"http://{address}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_node_logs_json_lines_with_log_format_json(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    argv = [*TICKET, "-n", "1", "-a", address, "-d", str(tmp_path), "--localtime"]
    stderr_path, stdout_path = tmp_path / "stderr", tmp_path / "stdout"
    with stderr_path.open("wb") as err, stdout_path.open("wb") as out:
        node = subprocess.Popen(
            [*argv, "--log-format", "json", "-l", "debug"], stdout=out, stderr=err, cwd=ROOT
        )
    try:
        wait_for(lambda: ready(address), what="the node to be ready")
        assert httpx.post(f"http://{address}/cmd/ticket", timeout=5).json() == {"result": 1}
        # A request line uvicorn rejects: its warning goes through the same handler.
        with socket.create_connection(("127.0.0.1", int(address.split(":")[1]))) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n")
            s.recv(1024)
        node.send_signal(signal.SIGTERM)
        assert node.wait(20) == 0
    finally:
        if node.poll() is None:
            node.kill()
            node.wait(10)
    assert stdout_path.read_bytes() == b""
    records = json_lines(stderr_path.read_text(), node.pid)
    messages = [r["msg"] for r in records]
    assert any(m.startswith("server started on") for m in messages)
    assert "logs loaded: ready for commands" in messages
    assert "shutting down" in messages
    warning = next(r for r in records if r["msg"] == "Invalid HTTP request received.")
    assert warning["level"] == "warn"  # uvicorn's, through the same JSON handler
    loaded = next(r for r in records if r["msg"] == "logs loaded: ready for commands")
    assert loaded["role"] == "leader"


def test_the_default_stays_uhahas_text(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    argv = [*TICKET, "-n", "1", "-a", address, "-d", str(tmp_path), "--localtime"]
    node = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        wait_for(lambda: ready(address), what="the node to be ready")
        node.send_signal(signal.SIGTERM)
        _, err = node.communicate(timeout=20)
    finally:
        if node.poll() is None:
            node.kill()
            node.wait(10)
    lines = err.decode().splitlines()
    assert lines
    text_line = re.compile(rf"^{node.pid}:[LFCN] \d\d \w{{3}} \d{{4}} [\d:.]{{12}} [.\-*#] ")
    for line in lines:
        assert text_line.match(line), line


def test_a_start_up_failure_is_a_json_line_too(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(
            [*TICKET, "-a", f"127.0.0.1:{port}", "-d", str(tmp_path), "--log-format", "json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=ROOT,
        )
    assert out.returncode == 1
    records = [json.loads(line) for line in out.stderr.splitlines()]
    assert records[-1]["level"] == "critical"
    assert str(port) in records[-1]["msg"]
    assert all(RFC3339_MS.match(r["time"]) for r in records)


def test_a_bad_log_format_is_one_clear_line_and_status_2() -> None:
    for program in (TICKET, [sys.executable, "-m", "uhaha"]):
        out = subprocess.run(
            [*program, "--log-format", "xml"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=ROOT,
        )
        assert out.returncode == 2
        assert out.stdout == ""
        lines = out.stderr.splitlines()
        assert len(lines) == 1
        assert lines[0].endswith(": invalid log format 'xml': one of text, json"), lines


def test_json_formatter_fields_exception_and_one_line() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    setup_logging("debug", lambda: "F", stream, fmt="json")
    try:
        log = logging.getLogger("uhaha.test")
        try:
            raise ValueError("bad\nthing")
        except ValueError:
            log.exception("it failed: %s", "naïve\nline")
        log.info("plain")
    finally:
        # Back to text, as the other tests expect: the root logger is let go.
        setup_logging("info", lambda: "L", io.StringIO())
    assert (root.handlers, root.level) == saved
    assert isinstance(logging.getLogger("uhaha").handlers[0].formatter, UhahaFormatter)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and all(line.isascii() for line in lines)
    first, second = (json.loads(line) for line in lines)
    assert first["msg"] == "it failed: naïve\nline"
    assert first["level"] == "error" and first["role"] == "follower"
    assert "ValueError: bad\nthing" in first["exception"]
    assert "exception" not in second and second["level"] == "info"
    assert JsonFormatter(lambda: "X").fields("info", "m", 0.0)["time"] == "1970-01-01T00:00:00.000Z"
