"""The RESP connection handler over real sockets: order, pipelining, errors, backpressure."""

from __future__ import annotations

import asyncio

from tests.resp.conftest import Running, Start
from tests.resp.doubles import EVERY_TYPE, command, read_replies, read_until_closed, until
from uhaha.resp import Error, ParserLimits


async def test_ping_echo_and_an_inline_command(resp: Running) -> None:
    reader, writer = await resp.connect()
    writer.write(command("PING") + command("ECHO", "hi") + b"echo 'in line'\r\n")
    assert await read_replies(reader, 3) == [b"PONG", b"hi", b"in line"]
    writer.close()


async def test_ten_thousand_pipelined_commands_in_one_write(resp: Running) -> None:
    reader, writer = await resp.connect()
    writer.write(b"".join(command("INCR", "n") for _ in range(10_000)))
    replies = await read_replies(reader, 10_000, timeout=30)
    assert replies == list(range(1, 10_001))
    writer.close()


async def test_a_slow_earlier_command_still_answers_first(resp: Running) -> None:
    reader, writer = await resp.connect()
    writer.write(command("SLOW", "0.05", "first") + command("PING") + command("ECHO", "third"))
    assert await read_replies(reader, 3) == [b"first", b"PONG", b"third"]
    writer.close()


async def test_ready_replies_wait_behind_a_pending_one(resp: Running) -> None:
    reader, writer = await resp.connect()
    writer.write(command("GATE", "g") + command("ECHO", "later") + command("INCR", "x"))
    await until(lambda: len(resp.dispatcher.submitted) == 3, what="three submissions")
    # Submitted synchronously in order, while the gate still holds the first.
    assert [a[0] for a in resp.dispatcher.submitted] == [b"GATE", b"ECHO", b"INCR"]
    assert resp.dispatcher.counters[b"x"] == 1
    # Nothing may be written yet: the first reply is not ready.
    assert not await _anything_within(reader, 0.1)
    resp.dispatcher.gates[b"g"].set()
    assert await read_replies(reader, 3) == [b"opened g", b"later", 1]
    writer.close()


async def _anything_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        await asyncio.wait_for(reader.read(1), seconds)
    except TimeoutError:
        return False
    return True


async def test_exceptions_become_errors_for_that_command_only(resp: Running) -> None:
    reader, writer = await resp.connect()
    writer.write(command("FAIL") + command("AFAIL") + command("BAD") + command("PING"))
    fail, afail, bad, pong = await read_replies(reader, 4)
    assert fail == Error("ERR boom forged")  # the CRLF cannot forge a reply
    assert afail == Error("ERR async boom")
    assert isinstance(bad, Error) and bad.startswith("ERR cannot encode the reply")
    assert pong == b"PONG"
    writer.close()


async def test_every_reply_type_in_resp2_and_resp3(resp: Running) -> None:
    reader, writer = await resp.connect()
    writer.write(command("TYPES") + command("HELLO", "3") + command("TYPES"))
    resp2, hello, resp3 = await read_replies(reader, 3)
    assert hello[b"proto"] == 3
    assert resp2 == [
        None, 1, 0, 42, -7, b"1180591620717411303424", b"1.5", b"3", b"text \xc3\xa9",
        b"bin\x00\xff", b"OK", Error("ERR custom failure"), [1, [2, b"x"]], [],
        [b"k", 1, b"n", [None]], [b"member"],
    ]  # fmt: skip
    # hiredis gives RESP3 big numbers as their digits and sets as lists.
    assert resp3 == [
        None, True, False, 42, -7, b"1180591620717411303424", 1.5, 3.0, b"text \xc3\xa9",
        b"bin\x00\xff", b"OK", Error("ERR custom failure"), [1, [2, b"x"]], [],
        {b"k": 1, b"n": [None]}, [b"member"],
    ]  # fmt: skip
    assert len(resp3) == len(EVERY_TYPE)
    writer.close()


async def test_quit_answers_ok_and_closes_after_earlier_replies(resp: Running) -> None:
    reader, writer = await resp.connect()
    writer.write(command("SLOW", "0.02", "a") + command("QUIT") + command("INCR", "never"))
    data = await read_until_closed(reader)
    assert data == b"$1\r\na\r\n+OK\r\n"
    assert resp.dispatcher.counters[b"never"] == 0
    await until(lambda: resp.dispatcher.closed_ids, what="closed() called")
    writer.close()


async def test_connection_close_from_the_dispatcher(resp: Running) -> None:
    reader, writer = await resp.connect()
    writer.write(command("PING") + command("KILL") + command("PING"))
    assert await read_until_closed(reader) == b"+PONG\r\n+OK\r\n"
    writer.close()


async def test_protocol_error_closes_only_that_connection(resp: Running) -> None:
    good_reader, good_writer = await resp.connect()
    reader, writer = await resp.connect()
    writer.write(command("PING") + b"*1\r\n:5\r\n" + command("PING"))
    data = await read_until_closed(reader)
    assert data == b"+PONG\r\n-ERR Protocol error: expected '$', got ':'\r\n"
    good_writer.write(command("PING"))
    assert await read_replies(good_reader, 1) == [b"PONG"]
    good_writer.close()
    writer.close()


async def test_half_closed_client_gets_its_replies(resp: Running) -> None:
    reader, writer = await resp.connect()
    writer.write(b"PING\r\nECHO bye\r\n")
    writer.write_eof()  # like `printf 'PING\r\n' | nc`
    assert await read_until_closed(reader) == b"+PONG\r\n$3\r\nbye\r\n"
    writer.close()


async def test_pending_replies_bound_what_is_read(start_resp: Start) -> None:
    running = await start_resp(max_pending=8)
    reader, writer = await running.connect()
    burst = command("GATE", "g") + b"".join(command("INCR", "n") for _ in range(1000))
    writer.write(burst)
    await writer.drain()
    await until(lambda: len(running.dispatcher.submitted) >= 8, what="8 submissions")
    await asyncio.sleep(0.05)  # give a wrongly unbounded server time to run ahead
    # The gate holds the first reply: no more than max_pending commands run.
    assert len(running.dispatcher.submitted) == 8
    running.dispatcher.gates[b"g"].set()
    replies = await read_replies(reader, 1001)
    assert replies == [b"opened g", *range(1, 1001)]
    writer.close()


async def test_a_client_that_never_reads_stops_being_served(resp: Running) -> None:
    _, writer = await resp.connect()
    big = b"x" * 60_000
    request = command("ECHO", big)
    sent = 0
    # Writes stall once both socket buffers and the server's high-water
    # mark are full, because the server stops reading.
    while True:
        writer.write(request * 16)
        sent += 16
        try:
            await asyncio.wait_for(writer.drain(), 0.5)
        except TimeoutError:
            break
        assert sent < 50_000, "the server kept reading from a client that never reads"
    submitted = len(resp.dispatcher.submitted)
    assert submitted < sent
    writer.transport.abort()
    await until(lambda: resp.dispatcher.closed_ids, what="closed() called")


async def test_limits_are_enforced_and_reported(start_resp: Start) -> None:
    running = await start_resp(limits=ParserLimits(max_bulk=100, max_array=4, max_inline=50))
    cases = {
        b"*1\r\n$101\r\n": b"bulk length 101 exceeds the limit of 100 bytes",
        b"*5\r\n": b"multibulk length 5 exceeds the limit of 4",
        b"*-3\r\n": b"invalid multibulk length -3",
        b"*1\r\n$-2\r\n": b"invalid bulk length -2",
        b"*1x\r\n": b"invalid multibulk length",
        b"x" * 51: b"too big inline request",
        b'ECHO "open\r\n': b"unbalanced quotes in request",
    }
    for sent, message in cases.items():
        reader, writer = await running.connect()
        writer.write(sent)
        data = await read_until_closed(reader)
        assert data == b"-ERR Protocol error: " + message + b"\r\n", sent
        writer.close()


async def test_idle_timeout_spares_a_client_owed_a_reply(start_resp: Start) -> None:
    """A client waiting for a slow command's reply is not idle; once answered,
    it is closed ``idle_timeout`` s after that, not before."""
    idle = 0.3
    resp = await start_resp(idle_timeout=idle)
    loop = asyncio.get_running_loop()
    reader, writer = await resp.connect()
    writer.write(command("SLOW", "1.0", "done"))  # owed its reply for 1 s
    assert await read_replies(reader, 1) == [b"done"]
    answered = loop.time()
    assert await read_until_closed(reader) == b""
    assert loop.time() - answered >= idle * 0.9  # timers may fire a hair early
    writer.close()
