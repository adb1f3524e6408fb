"""TimeSource against a small NTP server of our own on loopback."""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import pytest

from uhaha.timesync import DEFAULT_SERVERS, NTP_PORT, TimeSource

NTP_EPOCH_DELTA = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01
PACKET = struct.Struct("!BBBb11I")
MS = 1_000_000
LOG = "uhaha.timesync"


def ntp_timestamp(ns: int) -> tuple[int, int]:
    seconds, rest = divmod(ns, 1_000_000_000)
    return seconds + NTP_EPOCH_DELTA, (rest << 32) // 1_000_000_000


class NtpResponder(asyncio.DatagramProtocol):
    """Answers NTP client requests with this machine's clock plus ``offset_ns``.

    ``answer=False`` makes it silent; ``mode`` and ``echo_origin`` make bad replies.
    Counts every packet it receives.
    """

    def __init__(self, offset_ns: int) -> None:
        self.offset_ns = offset_ns
        self.answer = True
        self.mode = 4
        self.echo_origin = True
        self.packets = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.packets += 1
        if not self.answer or len(data) < PACKET.size or self.transport is None:
            return
        fields = PACKET.unpack(data[: PACKET.size])
        version = (fields[0] >> 3) & 7
        now = time.time_ns() + self.offset_ns
        sec, frac = ntp_timestamp(now)
        origin = (fields[13], fields[14]) if self.echo_origin else ntp_timestamp(now - 3600 * 10**9)
        reply = PACKET.pack(
            (0 << 6) | (version << 3) | self.mode,
            1,  # stratum: a primary server
            fields[2],
            -20,
            0,
            0,
            int.from_bytes(b"TEST", "big"),
            sec,
            frac,  # reference
            *origin,  # originate: the client's transmit time, echoed
            sec,
            frac,  # receive
            sec,
            frac,  # transmit
        )
        self.transport.sendto(reply, addr)

    @property
    def address(self) -> tuple[str, int]:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return str(host), int(port)


@pytest.fixture
async def ntp() -> AsyncIterator[NtpResponder]:
    loop = asyncio.get_running_loop()
    transport, responder = await loop.create_datagram_endpoint(
        lambda: NtpResponder(37_500 * MS), local_addr=("127.0.0.1", 0)
    )
    try:
        yield responder
    finally:
        transport.close()


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds; fail at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        await asyncio.sleep(0.01)


def source(ntp: NtpResponder, **kwargs: Any) -> TimeSource:
    kwargs.setdefault("timeout", 0.5)
    return TimeSource(servers=[ntp.address], **kwargs)


async def test_measures_the_offset_and_follows_it(ntp: NtpResponder) -> None:
    clock = source(ntp)
    assert not clock.synced and clock.offset_ns == 0
    await clock.start()
    try:
        assert clock.synced
        assert abs(clock.offset_ns - 37_500 * MS) < 50 * MS
        assert clock.server == f"127.0.0.1:{ntp.address[1]}"
        assert clock.last_error is None
        for _ in range(3):
            assert abs(clock.now_ns() - (time.time_ns() + 37_500 * MS)) < 50 * MS
    finally:
        await clock.close()
    assert ntp.packets == 1


async def test_no_answer_falls_back_to_the_local_clock_and_warns_once(
    ntp: NtpResponder, caplog: pytest.LogCaptureFixture
) -> None:
    ntp.answer = False
    clock = source(ntp, timeout=0.2)
    with caplog.at_level(logging.WARNING, logger=LOG):
        assert not await clock.sync()
        assert not await clock.sync()
    warnings = [r.getMessage() for r in caplog.records if r.name == LOG]
    assert warnings == ["cannot reach internet time: using the local clock"]
    assert not clock.synced and clock.offset_ns == 0
    assert clock.last_error is not None and "127.0.0.1" in clock.last_error
    assert abs(clock.now_ns() - time.time_ns()) < 50 * MS
    assert ntp.packets == 2


async def test_retries_until_a_server_answers(
    ntp: NtpResponder, caplog: pytest.LogCaptureFixture
) -> None:
    ntp.answer = False
    clock = source(ntp, timeout=0.2, retry_interval=0.05, refresh_interval=3600)
    with caplog.at_level(logging.INFO, logger=LOG):
        await clock.start()
        try:
            assert not clock.synced
            await until(lambda: ntp.packets >= 3)
            ntp.answer = True
            await until(lambda: clock.synced)
            assert abs(clock.offset_ns - 37_500 * MS) < 50 * MS
        finally:
            await clock.close()
    messages = [r.getMessage() for r in caplog.records if r.name == LOG]
    assert messages[0] == "cannot reach internet time: using the local clock"
    assert messages.count(messages[0]) == 1
    assert messages[-1].startswith("internet time from 127.0.0.1:")


async def test_refreshes_in_the_background(ntp: NtpResponder) -> None:
    clock = source(ntp, refresh_interval=0.05)
    await clock.start(wait=False)
    try:
        await until(lambda: clock.synced)
        ntp.offset_ns = 40_000 * MS
        await until(lambda: abs(clock.offset_ns - 40_000 * MS) < 50 * MS)
    finally:
        await clock.close()
    await clock.close()  # idempotent
    assert clock.synced  # and the last offset stays in use


async def test_localtime_never_touches_the_network(ntp: NtpResponder) -> None:
    clock = source(ntp, localtime=True, refresh_interval=0.01, retry_interval=0.01)
    await clock.start()
    assert not await clock.sync()
    assert abs(clock.now_ns() - time.time_ns()) < 50 * MS
    await asyncio.sleep(0.05)  # give a (wrongly) started refresher its chance to send
    await clock.close()
    assert ntp.packets == 0
    assert not clock.synced


async def test_local_clock_jumping_back_does_not_show() -> None:
    wall = iter([1_000, 2_000, 500, 1_999, 3_000])
    clock = TimeSource(localtime=True, wall_clock=lambda: next(wall))
    assert [clock.now_ns() for _ in range(5)] == [1_000, 2_000, 2_000, 2_000, 3_000]


async def test_between_syncs_time_is_counted_on_the_monotonic_clock(ntp: NtpResponder) -> None:
    mono = [10**12]
    clock = source(ntp, monotonic_clock=lambda: mono[0])
    assert await clock.sync()
    first = clock.now_ns()
    assert abs(first - (time.time_ns() + 37_500 * MS)) < 50 * MS
    mono[0] += 5 * 10**9
    assert clock.now_ns() == first + 5 * 10**9  # the wall clock is not consulted
    # A new measurement lower than what was already handed out: time waits.
    ntp.offset_ns = -10_000 * MS
    assert await clock.sync()
    held = clock.now_ns()
    assert held == first + 5 * 10**9
    mono[0] += 10**9
    assert clock.now_ns() == held  # still behind: held, never back


@pytest.mark.parametrize("fault", ["mode", "origin"])
async def test_bad_replies_are_refused(ntp: NtpResponder, fault: str) -> None:
    if fault == "mode":
        ntp.mode = 3  # a client's packet, not a server's reply
    else:
        ntp.echo_origin = False  # not an answer to our request
    clock = source(ntp)
    assert not await clock.sync()
    assert not clock.synced
    assert clock.last_error is not None


async def test_server_list_and_next_tick() -> None:
    clock = TimeSource(["a.example", ("b.example", 1234)], localtime=True)
    assert clock.servers == (("a.example", NTP_PORT), ("b.example", 1234))
    assert TimeSource().servers == tuple((s, NTP_PORT) for s in DEFAULT_SERVERS)
    seeds = set()
    last = 0
    for _ in range(20):
        ts, seed = clock.next_tick()
        assert ts >= last and abs(ts - time.time_ns()) < 50 * MS
        assert -(2**63) <= seed < 2**63
        last = ts
        seeds.add(seed)
    assert len(seeds) == 20


async def test_start_twice_is_an_error(ntp: NtpResponder) -> None:
    async with source(ntp) as clock:
        assert clock.synced
        with pytest.raises(RuntimeError):
            await clock.start()
