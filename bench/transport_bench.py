"""Throughput and latency of one peer link of the HTTP transport, on loopback.

The receiver runs in a child process (Hypercorn serving an HttpTransport's
routes, h2c), so that sender and receiver each have a core. The sender pushes a
realistic mix of Raft messages as fast as its queue accepts them: appends of a
few 100-byte entries, heartbeats, and the responses a follower sends back.
Counting is done by the receiver's ``deliver`` callback; the parent reads the
counters over HTTP before and after the measured interval.

    .venv/bin/python bench/transport_bench.py                 # 5 s, one way
    .venv/bin/python bench/transport_bench.py --replies       # the receiver answers
    .venv/bin/python bench/transport_bench.py --pingpong 2000 # one message in flight
    .venv/bin/python bench/transport_bench.py --profile       # cProfile both sides
    .venv/bin/python bench/transport_bench.py --codec         # codec alone, no network

With ``--replies`` the parent serves too, and the child answers every append
with an AppendResponse and every heartbeat with a HeartbeatResponse on its own
stream, as a follower does. ``--pingpong`` sends one heartbeat at a time and
waits for its response: the round-trip time a Raft commit pays per hop.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import BaseRoute, Route

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from uhaha.raft.messages import (
    AppendRequest,
    AppendResponse,
    Entry,
    Heartbeat,
    HeartbeatResponse,
    Message,
)
from uhaha.transport import FrameDecoder, HttpTransport, encode_frame

SENDER, RECEIVER = "1", "2"


def message_mix(entries: int, entry_bytes: int) -> list[Message]:
    """Ten messages in the proportions a busy leader's link carries: mostly
    appends, some heartbeats, and responses (which a follower would send)."""
    data = b"x" * entry_bytes
    out: list[Message] = []
    index = 1000
    for i in range(6):
        batch = tuple(Entry(7, index + k, data=data) for k in range(entries))
        out.append(AppendRequest(7, SENDER, RECEIVER, index - 1, 7, batch, index - 1))
        index += entries
        if i % 3 == 0:
            out.append(Heartbeat(7, SENDER, RECEIVER, index - 1, i))
    out.append(AppendResponse(7, SENDER, RECEIVER, index))
    out.append(HeartbeatResponse(7, SENDER, RECEIVER, 3))
    return out


def reply_to(msg: Message) -> Message | None:
    """What a follower answers."""
    if isinstance(msg, AppendRequest):
        last = msg.entries[-1].index if msg.entries else msg.prev_index
        return AppendResponse(msg.term, msg.to, msg.frm, last)
    if isinstance(msg, Heartbeat):
        return HeartbeatResponse(msg.term, msg.to, msg.frm, msg.seq)
    return None


def profile_route() -> BaseRoute:
    """POST /profile starts cProfile in this process; DELETE stops it and answers
    the top functions."""
    profiler = cProfile.Profile()

    async def profile(request: Request) -> PlainTextResponse:
        if request.method == "POST":
            profiler.enable()
            return PlainTextResponse("")
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        return PlainTextResponse(out.getvalue())

    return Route("/profile", profile, methods=["POST", "DELETE"])


def hypercorn_config(port: int) -> Config:
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 0.5
    return config


# --- the receiver (child process) ------------------------------------------


async def receiver(port: int, reply_port: int | None) -> None:
    counts = {"messages": 0, "bytes": 0}
    transport: HttpTransport

    def deliver(msg: Message) -> None:
        counts["messages"] += 1
        if isinstance(msg, AppendRequest):
            counts["bytes"] += sum(len(e.data) for e in msg.entries)
        if reply_port is not None:
            reply = reply_to(msg)
            if reply is not None:
                transport.send((reply,))

    async def count(_: Request) -> JSONResponse:
        return JSONResponse(counts)

    transport = HttpTransport(RECEIVER, deliver)
    if reply_port is not None:
        transport.set_peers({SENDER: f"127.0.0.1:{reply_port}"})
        await transport.start()
    app = Starlette(routes=[*transport.routes(), Route("/count", count), profile_route()])
    await serve(app, hypercorn_config(port))  # type: ignore[arg-type]


# --- the sender (this process) ---------------------------------------------


class Replies:
    """The sender's deliver callback: counts replies, wakes a ping-pong waiter."""

    def __init__(self) -> None:
        self.count = 0
        self.event = asyncio.Event()

    def __call__(self, msg: Message) -> None:
        self.count += 1
        self.event.set()


async def read_counts(client: httpx.AsyncClient, port: int) -> dict[str, int]:
    counts: dict[str, int] = (await client.get(f"http://127.0.0.1:{port}/count")).json()
    return counts


async def wait_connected(transport: HttpTransport) -> None:
    deadline = time.monotonic() + 10
    while not transport.stats()[RECEIVER].connected:
        if time.monotonic() > deadline:
            raise SystemExit("the sender did not connect")
        await asyncio.sleep(0.01)


async def throughput(
    transport: HttpTransport, replies: Replies, port: int, args: argparse.Namespace
) -> dict[str, Any]:
    mix = message_mix(args.entries, args.entry_bytes)
    wire = sum(len(encode_frame(m)) for m in mix) / len(mix)
    stop = False

    async def pump() -> None:
        # Keep the queue topped up: as fast as it accepts, without overflowing it.
        while not stop:
            if transport.stats()[RECEIVER].queued < args.high_water:
                transport.send(mix)
                await asyncio.sleep(0)
            else:
                await asyncio.sleep(0.0005)

    async with httpx.AsyncClient() as client:
        task = asyncio.create_task(pump())
        await asyncio.sleep(args.warmup)
        before, replies0, t0 = await read_counts(client, port), replies.count, time.monotonic()
        profiler = cProfile.Profile() if args.profile else None
        if profiler:
            await client.post(f"http://127.0.0.1:{port}/profile")
            profiler.enable()
        await asyncio.sleep(args.seconds)
        if profiler:
            profiler.disable()
            receiver_profile = (await client.delete(f"http://127.0.0.1:{port}/profile")).text
        after, replies1, t1 = await read_counts(client, port), replies.count, time.monotonic()
        stop = True
        await task
    if profiler:
        print("=== sender ===")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        print("=== receiver ===")
        print(receiver_profile)
    elapsed = t1 - t0
    messages = after["messages"] - before["messages"]
    result = {
        "seconds": round(elapsed, 2),
        "messages_per_s": round(messages / elapsed),
        "entry_mb_per_s": round((after["bytes"] - before["bytes"]) / elapsed / 1e6, 2),
        "wire_mb_per_s": round(messages * wire / elapsed / 1e6, 2),
        "avg_frame_bytes": round(wire),
    }
    if args.replies:
        result["replies_per_s"] = round((replies1 - replies0) / elapsed)
    return result


async def pingpong(transport: HttpTransport, replies: Replies, count: int) -> dict[str, Any]:
    rtts = []
    for seq in range(count):
        replies.event.clear()
        start = time.perf_counter()
        transport.send((Heartbeat(7, SENDER, RECEIVER, 0, seq),))
        await asyncio.wait_for(replies.event.wait(), 5)
        rtts.append(time.perf_counter() - start)
    rtts.sort()
    return {
        "round_trips": count,
        "median_ms": round(statistics.median(rtts) * 1e3, 3),
        "p99_ms": round(rtts[int(len(rtts) * 0.99)] * 1e3, 3),
        "round_trips_per_s": round(count / sum(rtts)),
    }


async def sender(port: int, reply_port: int | None, args: argparse.Namespace) -> dict[str, Any]:
    replies = Replies()
    transport = HttpTransport(SENDER, replies)
    server: asyncio.Task[None] | None = None
    shutdown = asyncio.Event()
    if reply_port is not None:
        app = Starlette(routes=transport.routes())
        config = hypercorn_config(reply_port)
        server = asyncio.create_task(serve(app, config, shutdown_trigger=shutdown.wait))  # type: ignore[arg-type]
    transport.set_peers({RECEIVER: f"127.0.0.1:{port}"})
    await transport.start()
    await wait_connected(transport)
    if args.pingpong:
        result = await pingpong(transport, replies, args.pingpong)
    else:
        result = await throughput(transport, replies, port, args)
    stats = transport.stats()[RECEIVER]
    result.update(dropped=stats.dropped, errors=stats.errors)
    if server is not None and reply_port is not None:
        # The order a node stops in (see HttpTransport.close): stop accepting,
        # then close the transport, then let Hypercorn finish.
        shutdown.set()
        await asyncio.to_thread(wait_refusing, reply_port)
    await transport.close()
    if server is not None:
        await server
    return result


def codec_only(args: argparse.Namespace) -> dict[str, Any]:
    """Encode and decode the same mix with no network: the codec's ceiling."""
    mix = message_mix(args.entries, args.entry_bytes)
    rounds = 20000
    t = time.perf_counter()
    frames = [encode_frame(m) for _ in range(rounds) for m in mix]
    t_enc = time.perf_counter() - t
    stream = b"".join(frames)
    decoder = FrameDecoder()
    t = time.perf_counter()
    n = 0
    for start in range(0, len(stream), 16384):
        for _ in decoder.feed(stream[start : start + 16384]):
            n += 1
    t_dec = time.perf_counter() - t
    assert n == len(frames)
    return {
        "encode_us_per_msg": round(t_enc / n * 1e6, 2),
        "decode_us_per_msg": round(t_dec / n * 1e6, 2),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_listening(port: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def wait_refusing(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return
        time.sleep(0.005)
    raise SystemExit("the server did not stop accepting")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--entries", type=int, default=3, help="entries per append")
    parser.add_argument("--entry-bytes", type=int, default=100)
    parser.add_argument("--high-water", type=int, default=2000, help="queued messages")
    parser.add_argument("--replies", action="store_true", help="the receiver answers")
    parser.add_argument("--pingpong", type=int, default=0, help="round trips, one at a time")
    parser.add_argument("--profile", action="store_true", help="cProfile both sides")
    parser.add_argument("--codec", action="store_true", help="measure the codec alone")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--reply-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.codec:
        print(json.dumps(codec_only(args)))
        return
    if args.serve:
        asyncio.run(receiver(args.serve, args.reply_port))
        return
    port = free_port()
    reply_port = free_port() if args.replies or args.pingpong else None
    command = [sys.executable, __file__, "--serve", str(port)]
    if reply_port is not None:
        command += ["--reply-port", str(reply_port)]
    child = subprocess.Popen(command)
    try:
        wait_listening(port)
        print(json.dumps(asyncio.run(sender(port, reply_port, args))))
    finally:
        child.terminate()
        child.wait(10)


if __name__ == "__main__":
    main()
