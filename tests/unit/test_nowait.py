"""Taking what a receive has ready without suspending (wsproxy/stream/_nowait.py)."""

from __future__ import annotations

import asyncio

import pytest

from wsproxy.stream._nowait import Ready, Started, resume, try_now


async def ready() -> str:
    return "now"


async def test_a_receive_with_a_message_ready_finishes_without_a_turn_of_the_loop() -> None:
    assert try_now(ready()) == Ready("now")


async def test_a_receive_that_would_wait_is_kept_and_finished_later_with_what_arrives() -> None:
    queue: asyncio.Queue[str] = asyncio.Queue()
    started = try_now(queue.get())
    assert isinstance(started, Started)
    queue.put_nowait("later")
    assert await resume(started) == "later"
    assert queue.empty()


async def test_a_kept_receive_cancelled_while_finishing_loses_nothing() -> None:
    queue: asyncio.Queue[str] = asyncio.Queue()
    started = try_now(queue.get())
    assert isinstance(started, Started)
    waiter = asyncio.ensure_future(resume(started))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    queue.put_nowait("kept")
    assert await queue.get() == "kept"  # the message went to nobody else


async def test_a_kept_receive_closed_unfinished_leaves_the_queue_usable() -> None:
    queue: asyncio.Queue[str] = asyncio.Queue()
    started = try_now(queue.get())
    assert isinstance(started, Started)
    started.coro.close()
    queue.put_nowait("next")
    assert await asyncio.wait_for(queue.get(), 1) == "next"


async def test_an_awaitable_that_is_not_a_coroutine_is_awaited_by_one() -> None:
    done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    done.set_result("done")
    assert try_now(done) == Ready("done")
    pending: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    started = try_now(pending)
    assert isinstance(started, Started)
    asyncio.get_running_loop().call_soon(pending.set_result, "soon")
    assert await resume(started) == "soon"


async def test_a_receive_that_fails_at_once_raises_where_it_was_started() -> None:
    async def fails() -> str:
        raise OSError("reset")

    with pytest.raises(OSError, match="reset"):
        try_now(fails())
