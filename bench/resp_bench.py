"""RESP round trips and pipelined throughput through the front door.

A server process runs a FrontDoor whose dispatcher answers PING and ECHO
synchronously (no cluster: this measures the RESP layer and the front door
only); this process is the client, over one loopback connection:

- unpipelined: one PING, wait for +PONG, repeat (round trips/s);
- pipelined: bursts of --depth PINGs in one write, all replies read
  (commands/s).

    python bench/resp_bench.py [--seconds 3] [--depth 1000] [--redis-benchmark]

With --redis-benchmark, redis-benchmark (Debian redis-tools) is run against
the same server too, as an independent client.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable

from starlette.applications import Starlette

from uhaha.frontdoor import FrontDoor
from uhaha.resp import Connection, Reply, RespHandler, SimpleString

PING = b"*1\r\n$4\r\nPING\r\n"
PONG = b"+PONG\r\n"


class PingDispatcher:
    def submit(self, conn: Connection, args: list[bytes]) -> Reply | Awaitable[Reply]:
        if args[0].upper() == b"PING":
            return SimpleString("PONG")
        return args[1] if len(args) > 1 else None

    def opened(self, conn: Connection) -> None:
        pass

    def closed(self, conn: Connection) -> None:
        pass


async def serve() -> None:
    door = FrontDoor(Starlette(), RespHandler(PingDispatcher()))
    await door.start("127.0.0.1", 0)
    print(door.address[1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until EOF
    await door.close()


async def unpipelined(port: int, seconds: float) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(100):
            writer.write(PING)
            if await reader.readexactly(len(PONG)) != PONG:
                raise AssertionError("unexpected reply")
        count += 100
        now = time.perf_counter()
        if now >= deadline:
            writer.close()
            return count / (now - start)


async def pipelined(port: int, seconds: float, depth: int) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    burst, expected = PING * depth, PONG * depth
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        writer.write(burst)
        if await reader.readexactly(len(expected)) != expected:
            raise AssertionError("unexpected replies")
        count += depth
        now = time.perf_counter()
        if now >= deadline:
            writer.close()
            return count / (now - start)


def redis_benchmark(port: int, pipeline: int) -> str:
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-t", "ping_mbulk", "-n", "200000", "-c", "1",
         "-P", str(pipeline), "-q"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    return out.strip().splitlines()[-1].split("\r")[-1].strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--depth", type=int, default=1000)
    parser.add_argument("--redis-benchmark", action="store_true")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve())
        return
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        rtt = asyncio.run(unpipelined(port, args.seconds))
        print(f"unpipelined: {rtt:,.0f} round trips/s ({1e6 / rtt:.0f} us each)")
        rate = asyncio.run(pipelined(port, args.seconds, args.depth))
        print(f"pipelined, {args.depth} per write: {rate:,.0f} commands/s")
        if args.redis_benchmark:
            print(f"redis-benchmark -c 1 -P 1:   {redis_benchmark(port, 1)}")
            print(f"redis-benchmark -c 1 -P 100: {redis_benchmark(port, 100)}")
    finally:
        server.communicate(b"", timeout=30)


if __name__ == "__main__":
    main()
