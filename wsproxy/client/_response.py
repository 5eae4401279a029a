"""What every kind of call shares once its frames are decoded: iterating the response and `result()`.

A transport subclass (one socket per call, or one call on a mux socket) only says how to take the next
step, `_advance()`: read a frame into `_ready`, or decide the outcome (`_ended`, `_error`).
"""

from __future__ import annotations

import collections
from typing import Any, TypeVar

from wsproxy.client._errors import CallError

_Stream = TypeVar("_Stream", bound="ResponseStream")


class ResponseStream:
    """The response side of a call: async iteration over its messages, then its outcome."""

    def __init__(self) -> None:
        self._ready: collections.deque[Any] = collections.deque()
        self._ended = False  # the outcome is decided (and read, or abandoned)
        self._error: CallError | None = None
        self.close_code: int | None = None
        self.close_reason = ""

    async def _advance(self) -> None:
        """Make progress: decode more messages into `_ready`, or decide the outcome."""
        raise NotImplementedError

    def __aiter__(self: _Stream) -> _Stream:
        return self

    async def __anext__(self) -> Any:
        while not self._ready:
            if self._ended:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            await self._advance()
        return self._ready.popleft()

    async def result(self) -> Any:
        """The one response message of a unary or client-streaming call, once the call ended."""
        messages = [message async for message in self]
        if len(messages) != 1:
            raise CallError(
                f"expected one response message, got {len(messages)}",
                code=self.close_code,
                reason=self.close_reason,
            )
        return messages[0]
