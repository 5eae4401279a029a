"""What every kind of call shares once its frames are decoded: iterating the response, `result()`,
and the status, headers and trailers.

A transport subclass (one socket per call, or one call on a mux socket) only says how to take the next
step, `_advance()`: feed a frame to `_decoder` and its messages into `_ready`, or decide the outcome
(`_ended`, `_error`).
"""

from __future__ import annotations

import asyncio
import collections
import math
from typing import Any, TypeVar

from wsproxy.client._decoder import ResponseDecoder
from wsproxy.client._errors import CallError, DeadlineExceededError

# The service's own deadline answer (HTTP 504, close 4504) gets this long to arrive before the
# client gives up on its own: the two clocks start at about the same time.
DEADLINE_GRACE_SECONDS = 1.0
# gRPC's wire format allows at most 8 digits per unit.
_MAX_TIMEOUT_DIGITS = 99_999_999

_Stream = TypeVar("_Stream", bound="ResponseStream")


class ResponseStream:
    """The response side of a call: async iteration over its messages, then its outcome."""

    def __init__(self, decoder: ResponseDecoder) -> None:
        self._decoder = decoder
        self._ready: collections.deque[Any] = collections.deque()
        self._ended = False  # the outcome is decided (and read, or abandoned)
        self._error: CallError | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self._deadline: float | None = None  # loop time after which the client gives up

    def _start_deadline(self, timeout: float | None) -> None:
        if timeout is not None:
            self._deadline = asyncio.get_running_loop().time() + timeout + DEADLINE_GRACE_SECONDS

    @property
    def status(self) -> int | None:
        """The HTTP status the app answered with, once its status frame arrived (else None)."""
        return self._decoder.status

    @property
    def headers(self) -> list[tuple[str, str]]:
        """The app's response headers (names lower-case), once the status frame arrived (else [])."""
        return self._decoder.headers

    @property
    def trailers(self) -> list[tuple[str, str]]:
        """The app's HTTP trailers, once they arrived after the last line (else [])."""
        return self._decoder.trailers

    async def initial_metadata(self) -> list[tuple[str, str]]:
        """Wait for the status frame and return the response headers.

        Returns [] when there is no status frame to wait for (`status=False`, or a server without
        the status contract). The lines that arrive meanwhile are kept for iteration.

        Raises:
            CallError: the status is an error (HTTPStatusError, once the error body has arrived),
                or the call ended before any status.
        """
        while self._decoder.awaiting_status and not self._ended:
            await self._step()
        while self._decoder.failed and not self._ended:
            await self._step()
        if self._error is not None and (self.status is None or self._decoder.failed):
            raise self._error
        return self.headers

    async def close(self) -> None:
        raise NotImplementedError

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
            await self._step()
        return self._ready.popleft()

    async def _step(self) -> None:
        if self._deadline is None:
            await self._advance()
        else:
            await self._advance_before_deadline(self._deadline)

    async def _advance_before_deadline(self, deadline: float) -> None:
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            if remaining <= 0:
                raise TimeoutError
            async with asyncio.timeout(remaining):
                await self._advance()
        except TimeoutError:
            await self.close()  # abandon the call: the app sees the client go away
            self._ended = True
            self._error = DeadlineExceededError("the call's timeout ran out before it ended")

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


def grpc_timeout(timeout: float) -> str:
    """`timeout` seconds in gRPC's wire format (`Grpc-Timeout`): whole milliseconds, rounded up, or a
    coarser unit when that needs more than 8 digits."""
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    for unit, per_second in (("m", 1000), ("S", 1), ("M", 1 / 60), ("H", 1 / 3600)):
        value = math.ceil(timeout * per_second)
        if value <= _MAX_TIMEOUT_DIGITS:
            return f"{value}{unit}"
    raise ValueError(f"timeout too large: {timeout!r}")
