"""One timer per event loop that ticks every open stream once a second (idleness, a vanished client)."""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING

from wsproxy.stream._core import TICK_SECONDS

if TYPE_CHECKING:
    from wsproxy.stream._shell import Stream


class Ticker:
    """One timer per event loop ticks every open stream once a second.

    A timer per stream costs about 400 bytes on asyncio and 780 on uvloop (a libuv timer each);
    a set entry costs a few dozen, and memory per open stream is a target (docs/performance.md).
    """

    __slots__ = ("__weakref__", "fresh", "handle", "loop", "streams")
    # Held only by its streams and its timer, never by this registry (nor does it hold its loop): a
    # loop abandoned with streams still open is garbage with its ticker and streams, as without one.
    _by_loop: weakref.WeakValueDictionary[int, Ticker] = weakref.WeakValueDictionary()

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = weakref.ref(loop)
        self.streams: set[Stream] = set()
        self.fresh: set[Stream] = set()  # joined since the last tick
        self.handle: asyncio.TimerHandle | None = None

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> Ticker:
        ticker = cls._by_loop.get(id(loop))
        if ticker is None or ticker.loop() is not loop:  # (a loop gone, its id reused)
            ticker = cls._by_loop[id(loop)] = cls(loop)
        return ticker

    def add(self, stream: Stream) -> None:
        self.fresh.add(stream)
        if self.handle is None:
            self.handle = asyncio.get_running_loop().call_later(TICK_SECONDS, self._tick)

    def discard(self, stream: Stream) -> None:
        self.streams.discard(stream)
        self.fresh.discard(stream)

    def _tick(self) -> None:
        self.handle = None
        for stream in list(self.streams):  # a tick may end a stream (and so change the set)
            stream._tick()
        fresh = list(self.fresh)
        self.streams.update(fresh)
        self.fresh.clear()
        for stream in fresh:
            stream._tick(first=True)
        if self.streams or self.fresh:
            self.handle = asyncio.get_running_loop().call_later(TICK_SECONDS, self._tick)
