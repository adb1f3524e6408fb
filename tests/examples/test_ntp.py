"""A node takes its replicated time from the NTP server given with --ntp
(a responder on loopback, one hour ahead), and --localtime ignores it."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import redis.asyncio as aioredis

from tests.cluster.harness import ROOT, free_port
from tests.machine.test_timesync import NtpResponder

HOUR = 3600 * 10**9


async def machine_now(port: int, proc: asyncio.subprocess.Process) -> int:
    """The first replicated time the node reports (polls with a deadline)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while loop.time() < deadline:
        assert proc.returncode is None, "the node exited"
        try:
            async with aioredis.Redis(port=port, socket_timeout=2) as r:
                info = await r.execute_command("MACHINE")  # type: ignore[no-untyped-call]
                now = int(info[b"now"] if isinstance(info, dict) else info[1])
                if now:
                    return now
        except (OSError, aioredis.RedisError):
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("no replicated time within 20 s")


async def run_node(tmp: Path, *flags: str) -> tuple[int, int, str]:
    port = free_port()
    log = tmp / f"node-{port}.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "examples" / "ticket.py"),
            "-a", f"127.0.0.1:{port}", "-d", str(tmp / f"d{port}"), *flags,
            stdout=out, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    try:
        now = await machine_now(port, proc)
    finally:
        proc.kill()
        await proc.wait()
    return now, time.time_ns(), log.read_text()


async def test_time_follows_the_ntp_server(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    transport, responder = await loop.create_datagram_endpoint(
        lambda: NtpResponder(HOUR), local_addr=("127.0.0.1", 0)
    )
    try:
        host, port = responder.address
        now, local, log = await run_node(tmp_path, "--ntp", f"{host}:{port}")
        assert responder.packets >= 1
        assert abs(now - (local + HOUR)) < 60 * 10**9, (now, local)
        assert "cannot reach internet time" not in log
        packets = responder.packets
        now, local, log = await run_node(tmp_path, "--ntp", f"{host}:{port}", "--localtime")
        assert responder.packets == packets  # --localtime asks nobody
        assert abs(now - local) < 60 * 10**9
    finally:
        transport.close()
