"""Taking what the server's receive has ready without suspending (wsproxy/stream/_nowait.py)."""

from __future__ import annotations

import asyncio
import types
from collections.abc import Awaitable, Generator
from typing import Any

import pytest

from wsproxy._types import Message
from wsproxy.stream._nowait import ServerReceive


def text(data: str) -> Message:
    return {"type": "websocket.receive", "text": data}


class QueueReceive:
    """A server's receive in the manner of uvicorn's: an `async def` that awaits a queue."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Message] = asyncio.Queue()
        self.calls = 0

    async def __call__(self) -> Message:
        self.calls += 1
        return await self.queue.get()


async def test_a_receive_with_a_message_ready_finishes_without_a_turn_of_the_loop() -> None:
    receive = QueueReceive()
    receive.queue.put_nowait(text("now"))
    rx = ServerReceive(receive)
    assert rx.ready() == text("now")
    assert (rx.started, rx.rest) == (None, None)


async def test_a_receive_that_would_wait_is_kept_and_finished_later_with_what_arrives() -> None:
    receive = QueueReceive()
    rx = ServerReceive(receive)
    assert rx.ready() is None
    assert rx.ready() is None  # a read is started already: not a second one
    assert receive.calls == 1
    receive.queue.put_nowait(text("later"))
    assert await rx.next() == text("later")
    assert receive.queue.empty()
    receive.queue.put_nowait(text("next"))
    assert await rx.next() == text("next")  # a new read once the kept one is done
    assert receive.calls == 2


def test_a_kept_receive_hands_on_what_it_yields_as_await_would() -> None:
    @types.coroutine
    def waits() -> Generator[str, Any, Message]:
        got = yield "first suspension"
        assert got == "sent by the task"
        return text("c")

    async def receive() -> Message:
        return await waits()

    rx = ServerReceive(receive)
    assert rx.ready() is None
    rest: Any = rx.next()  # a generator-based coroutine: driven as a task would drive it
    assert rest.send(None) == "first suspension"  # what the receive yielded, handed on to the task as is
    with pytest.raises(StopIteration) as finished:
        rest.send("sent by the task")
    assert finished.value.value == text("c")


async def test_a_kept_receive_cancelled_while_finishing_loses_nothing() -> None:
    receive = QueueReceive()
    rx = ServerReceive(receive)
    assert rx.ready() is None
    waiter = asyncio.ensure_future(rx.next())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    receive.queue.put_nowait(text("kept"))
    assert await receive.queue.get() == text("kept")  # the message went to nobody else


async def test_a_kept_receive_closed_unfinished_leaves_the_queue_usable() -> None:
    receive = QueueReceive()
    rx = ServerReceive(receive)
    assert rx.ready() is None
    rx.close()
    receive.queue.put_nowait(text("next"))
    assert await asyncio.wait_for(receive.queue.get(), 1) == text("next")


async def test_a_receive_that_fails_at_once_raises_at_the_next_read() -> None:
    async def fails() -> Message:
        raise OSError("reset")

    rx = ServerReceive(fails)
    assert rx.ready() is None
    with pytest.raises(OSError, match="reset"):
        await rx.next()


def test_a_receive_that_fails_at_once_and_is_never_read_is_closed() -> None:
    async def fails() -> Message:
        raise OSError("reset")

    rx = ServerReceive(fails)
    assert rx.ready() is None
    rx.close()  # no "never awaited" warning (the suite turns warnings into errors)
    assert rx.rest is None


class FutureReceive:
    """A server whose receive returns a Future, not a coroutine: it cannot be run by hand."""

    def __init__(self) -> None:
        self.futures: list[asyncio.Future[Message]] = []

    def __call__(self) -> Awaitable[Message]:
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        return future


async def test_a_receive_that_is_not_a_coroutine_falls_back_to_a_plain_await() -> None:
    receive = FutureReceive()
    rx = ServerReceive(receive)
    assert rx.ready() is None  # it cannot tell without waiting: nothing taken, nothing run by hand
    assert (rx.by_hand, rx.started, len(receive.futures)) == (False, None, 1)
    assert rx.ready() is None  # and it stops looking ahead
    assert len(receive.futures) == 1
    read = rx.next()
    assert read is receive.futures[0]  # the very awaitable the server returned, awaited as is
    receive.futures[0].set_result(text("a"))
    assert await read == text("a")
    read = rx.next()  # later reads are plain calls
    assert read is receive.futures[1]
    receive.futures[1].set_result(text("b"))
    assert await read == text("b")
    assert rx.ready() is None
    assert len(receive.futures) == 2
