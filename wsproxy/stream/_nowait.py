"""The server's receive, for a stream that takes what the server already holds without waiting.

Theory of operation. ASGI gives an app no way to ask a server whether a message is waiting:
`receive()` either returns at once or suspends. The stream wants to know, so that messages that
arrived together go to the app together, as one body chunk (the core's `join`, docs/performance.md).
`ServerReceive.ready()` calls the server's receive and runs the coroutine it returns by hand, up to
its first suspension: if it finishes, its message is there with no turn of the loop spent; if it
suspends, the started coroutine is kept, and the stream's next read (`next()`) finishes it with
`resume()`, which hands the task exactly what the coroutine yields and sends back what the task
sends, as `await` itself does. Nothing is read twice or lost: the coroutine runs once, in order.

The assumption, made here and nowhere else: a server's `receive()` returns a coroutine that may be
advanced by hand, and finished later by another await, from another task (the reader ahead) or after
being cancelled there. It holds for uvicorn's websockets-sansio, wsproto and legacy websockets
implementations and for hypercorn (each an `async def receive` awaiting asyncio queues or futures,
which do not care which task waits): tests/integration/test_liveness.py floods each of the four on
both loops, and test_middleware.py, test_reliability.py and test_promises.py run every uvicorn
implementation, with joining and the reader ahead both at work. A server whose
`receive()` returns anything else (a Future, an object with `__await__`) is never run by hand: that
awaitable is awaited plainly by the next read, and the stream stops looking ahead (no joining).
"""

from __future__ import annotations

import types
from collections.abc import Awaitable, Coroutine, Generator
from types import CoroutineType
from typing import Any

from wsproxy._types import Message, Receive


class ServerReceive:
    """The server's `receive`: `next()` is the stream's next read, `ready()` a message already there."""

    __slots__ = ("by_hand", "receive", "rest", "started", "yielded")

    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        self.started: Coroutine[Any, Any, Message] | None = None  # run by hand, suspended
        self.yielded: Any = None  # what `started` yielded where it suspended
        self.rest: Awaitable[Message] | None = None  # the next read, if not a new one nor `started`
        self.by_hand = True  # the server's receive returns coroutines (see the assumption above)

    def next(self) -> Awaitable[Message]:
        """The server's next message: the receive `ready()` started, if it did, else a new one."""
        started = self.started
        if started is not None:
            self.started = None
            yielded, self.yielded = self.yielded, None
            return resume(started, yielded)
        rest = self.rest
        if rest is None:
            return self.receive()
        self.rest = None
        return rest

    def ready(self) -> Message | None:
        """A message the server holds already, taken without waiting; None if it has none (then the
        receive started for it is kept for `next()`), or if a read is started already."""
        if self.started is not None or self.rest is not None or not self.by_hand:
            return None
        read = self.receive()
        if type(read) is not CoroutineType:
            # Not a coroutine: not run by hand (the assumption above). Awaited plainly by `next()`.
            self.by_hand = False
            self.rest = read
            return None
        try:
            yielded = read.send(None)
        except StopIteration as stop:
            message: Message = stop.value
            return message
        except Exception as exc:  # the receive failed at once: the next read raises it
            self.rest = _raising(exc)
            return None
        self.started = read
        self.yielded = yielded
        return None

    def close(self) -> None:
        """The stream has ended: close a receive started and never finished."""
        started, rest = self.started, self.rest
        self.started = self.yielded = self.rest = None
        if started is not None:
            started.close()
        if isinstance(rest, CoroutineType):
            rest.close()


@types.coroutine
def resume(coro: Coroutine[Any, Any, Message], yielded: Any) -> Generator[Any, Any, Message]:
    """Await the rest of a coroutine run by hand up to its first suspension, where it yielded
    `yielded` (what `await` would have done: the task's sends and throws go to the coroutine)."""
    try:
        while True:
            try:
                sent = yield yielded
            except BaseException as exc:  # a cancellation, or a close: the coroutine gets it where it waits
                yielded = coro.throw(exc)
            else:
                yielded = coro.send(sent)
    except StopIteration as stop:
        message: Message = stop.value
        return message


async def _raising(exc: Exception) -> Message:
    raise exc
