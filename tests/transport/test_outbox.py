"""The per-peer outbox: bounded, drops everything stale on overflow, drains in chunks."""

from __future__ import annotations

import asyncio

import pytest

from uhaha.transport.outbox import Outbox


def test_take_joins_everything_pending_under_the_limit() -> None:
    box = Outbox(10, 1000)
    for frame in (b"aa", b"bbb", b"c"):
        assert box.put(frame) == 0
    assert (len(box), box.nbytes) == (3, 6)
    assert box.take(100) == (b"aabbbc", 3)
    assert (len(box), box.nbytes) == (0, 0)


def test_take_stops_near_the_limit_but_always_takes_one() -> None:
    box = Outbox(10, 1000)
    for frame in (b"x" * 40, b"y" * 40, b"z" * 40):
        box.put(frame)
    assert box.take(85) == (b"x" * 40 + b"y" * 40, 2)
    assert box.take(10) == (b"z" * 40, 1)
    assert box.take(10) == (b"", 0)


def test_overflow_in_messages_drops_everything_queued() -> None:
    box = Outbox(3, 1000)
    for frame in (b"1", b"2", b"3"):
        assert box.put(frame) == 0
    assert box.put(b"4") == 3
    assert box.take(100) == (b"4", 1)


def test_overflow_in_bytes_drops_everything_queued() -> None:
    box = Outbox(100, 10)
    assert box.put(b"123456") == 0
    assert box.put(b"7890") == 0
    assert box.put(b"x") == 2
    assert box.take(100) == (b"x", 1)


def test_a_frame_larger_than_the_bound_is_dropped_itself() -> None:
    box = Outbox(100, 10)
    box.put(b"keep")
    assert box.put(b"y" * 11) == 1
    assert box.take(100) == (b"keep", 1)


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Outbox(0, 10)


async def test_wait_returns_once_something_is_queued() -> None:
    box = Outbox(10, 100)
    waiter = asyncio.create_task(box.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    box.put(b"x")
    await asyncio.wait_for(waiter, 5)
    await asyncio.wait_for(box.wait(), 5)  # returns at once while non-empty
