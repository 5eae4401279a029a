"""The bounded pipe between the gateway and an in-process servicer: order, backpressure, end, cancellation."""

from __future__ import annotations

import asyncio

import pytest

from wsproxy.gateway._pipe import END, Pipe, PipeClosed


async def test_items_come_out_in_order_then_end_after_close() -> None:
    pipe: Pipe[int] = Pipe(3)
    for item in (1, 2, 3):
        await pipe.put(item)
    pipe.close()
    assert [await pipe.get() for _ in range(5)] == [1, 2, 3, END, END]


async def test_put_waits_while_full_and_resumes_when_one_is_taken() -> None:
    pipe: Pipe[int] = Pipe(2)
    await pipe.put(1)
    await pipe.put(2)
    third = asyncio.create_task(pipe.put(3))
    await asyncio.sleep(0)
    assert not third.done()  # full: the writer is held back
    assert await pipe.get() == 1
    await asyncio.wait_for(third, 1)
    assert [await pipe.get(), await pipe.get()] == [2, 3]


async def test_get_waits_for_a_put() -> None:
    pipe: Pipe[str] = Pipe(1)
    getter = asyncio.create_task(pipe.get())
    await asyncio.sleep(0)
    assert not getter.done()
    await pipe.put("x")
    assert await asyncio.wait_for(getter, 1) == "x"


async def test_close_fails_waiting_and_later_puts_and_ends_waiting_gets() -> None:
    full: Pipe[int] = Pipe(1)
    await full.put(1)
    blocked = asyncio.create_task(full.put(2))
    empty: Pipe[int] = Pipe(1)
    waiting = asyncio.create_task(empty.get())
    await asyncio.sleep(0)
    full.close()
    empty.close()
    with pytest.raises(PipeClosed):
        await blocked
    with pytest.raises(PipeClosed):
        await full.put(3)
    assert await waiting is END
    assert await full.get() == 1  # what was queued before the close still comes out


async def test_a_cancelled_getter_does_not_swallow_the_next_item() -> None:
    pipe: Pipe[int] = Pipe(1)
    cancelled = asyncio.create_task(pipe.get())
    alive = asyncio.create_task(pipe.get())
    await asyncio.sleep(0)
    cancelled.cancel()
    await pipe.put(7)
    assert await asyncio.wait_for(alive, 1) == 7


async def test_a_cancelled_putter_passes_its_turn_on() -> None:
    pipe: Pipe[int] = Pipe(1)
    await pipe.put(0)
    cancelled = asyncio.create_task(pipe.put(1))
    alive = asyncio.create_task(pipe.put(2))
    await asyncio.sleep(0)
    assert await pipe.get() == 0  # wakes the first putter ...
    cancelled.cancel()  # ... which is cancelled before it runs
    await asyncio.wait_for(alive, 1)
    assert await pipe.get() == 2


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity must be at least 1, got 0"):
        Pipe(0)
