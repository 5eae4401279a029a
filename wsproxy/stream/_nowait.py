"""Take what an awaitable has ready without suspending, and keep it for later when it has nothing.

ASGI gives an app no way to ask a server whether a message is waiting: `receive()` either returns
at once or suspends. The stream wants to know, so that messages that already arrived together go to
the app together, as one body chunk (docs/performance.md). `try_now()` runs the server's receive
coroutine by hand up to its first suspension: if it finishes, its result is here with no turn of the
loop spent; if it suspends, the started coroutine is kept as a `Started` and finished later by
`resume()`, which hands the task exactly what the coroutine yields and sends back what the task
sends, as `await` itself does. Nothing is read twice or lost: the coroutine runs once, in order.
"""

from __future__ import annotations

import types
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any, Generic, NamedTuple, TypeVar

T = TypeVar("T")


class Started(NamedTuple, Generic[T]):
    """A coroutine run by hand up to its first suspension, and what it yielded there."""

    coro: Coroutine[Any, Any, T]
    yielded: Any


class Ready(NamedTuple, Generic[T]):
    value: T


def try_now(awaitable: Awaitable[T]) -> Ready[T] | Started[T]:
    """Run `awaitable` until it finishes or first suspends. Its exception, if it raises at once, propagates.

    A coroutine (what `async def` servers return) is run itself; any other awaitable by one that
    awaits it.
    """
    coro = as_coroutine(awaitable)
    try:
        yielded = coro.send(None)
    except StopIteration as stop:
        return Ready(stop.value)
    return Started(coro, yielded)


@types.coroutine
def resume(started: Started[T]) -> Generator[Any, Any, T]:
    """Await the rest of a coroutine that `try_now()` started (what `await` would have done)."""
    coro, yielded = started
    result: T
    while True:
        try:
            sent = yield yielded
        except BaseException as exc:  # a cancellation, or a close: the coroutine gets it where it waits
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                result = stop.value
                return result
        else:
            try:
                yielded = coro.send(sent)
            except StopIteration as stop:
                result = stop.value
                return result


def as_coroutine(awaitable: Awaitable[T]) -> Coroutine[Any, Any, T]:
    """`awaitable` itself if it is a coroutine (what `async def` servers return), else one awaiting it."""
    return awaitable if type(awaitable) is types.CoroutineType else _awaiting(awaitable)


def failed(exc: Exception) -> Started[Any]:
    """A start that raises `exc` when resumed: a receive that failed at once, for the next read to raise."""
    return Started(_raising(exc), None)


async def _awaiting(awaitable: Awaitable[T]) -> T:
    return await awaitable


async def _raising(exc: Exception) -> Any:
    raise exc
