"""A bounded FIFO between two tasks, with an end: the request and response streams of an in-process call.

Theory of operation: `put` waits while the pipe holds `capacity` items (the backpressure gRPC's flow
control would give), `get` waits while it is empty. `close()` ends the stream: later `put`s raise
`PipeClosed`, and `get` hands out what is still queued, then `END` for ever. Waiters are plain
futures woken in order; a waiter that was cancelled is skipped, so cancelling a task never loses
an item or wakes the wrong one.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Final, Generic, TypeVar

T = TypeVar("T")


class _End:
    def __repr__(self) -> str:
        return "END"


END: Final = _End()


class PipeClosed(Exception):
    """put() on a pipe that was closed."""


class Pipe(Generic[T]):
    __slots__ = ("_capacity", "_closed", "_getters", "_items", "_putters")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self._capacity = capacity
        self._items: deque[T] = deque()
        self._getters: deque[asyncio.Future[None]] = deque()
        self._putters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    async def put(self, item: T) -> None:
        while len(self._items) >= self._capacity and not self._closed:
            waiter = asyncio.get_running_loop().create_future()
            self._putters.append(waiter)
            try:
                await waiter
            except BaseException:
                self._wake(self._putters)  # pass the turn on: this putter will not use it
                raise
        if self._closed:
            raise PipeClosed
        self._items.append(item)
        self._wake(self._getters)

    async def get(self) -> T | _End:
        while not self._items:
            if self._closed:
                return END
            waiter = asyncio.get_running_loop().create_future()
            self._getters.append(waiter)
            try:
                await waiter
            except BaseException:
                self._wake(self._getters)
                raise
        item = self._items.popleft()
        self._wake(self._putters)
        return item

    def close(self) -> None:
        self._closed = True
        for waiters in (self._getters, self._putters):
            while waiters:
                self._wake(waiters)

    @staticmethod
    def _wake(waiters: deque[asyncio.Future[None]]) -> None:
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
