"""One upstream connection's transport, as an asyncio Protocol: received bytes straight to their parser.

asyncio's StreamReader copies every received block into its buffer and out again, and wakes a
reader task for it; at 64 KiB a message those copies and hops were a visible share of the front's
cost. Here the transport's own bytes objects are handed on as they are:

- HTTP/2 (`on_data`): each block goes to the h2 connection inside `data_received`, no task at all.
  h2's flow-control windows bound what the server may send, so reading never pauses.
- HTTP/1.1 (`read`): blocks wait in a queue for the call's `next_event`; reading pauses while more
  than `READ_LIMIT` bytes wait (beyond the block a waiting reader is about to take), so a client
  that stops reading stops the upstream (TCP backpressure).

Everything received is handed out before the way the connection ended: an upstream that answers
and then resets the connection (uvicorn does, when the request body arrives after its answer)
still has its answer read. Writes wait in `drain` while the transport is over its high-water mark.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable, Iterable
from typing import cast

READ_LIMIT = 64 * 1024  # bytes received but not yet taken before reading pauses (HTTP/1.1)


class UpstreamSocket(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._blocks: deque[bytes] = deque()
        self._buffered = 0
        self._reading_paused = False
        self._eof = False
        self._lost: BaseException | None = None  # the error the connection ended with, if any
        self._arrived: asyncio.Future[None] | None = None
        self._writing_paused = False
        self._drained: asyncio.Future[None] | None = None
        self._on_data: Callable[[bytes], None] | None = None
        self._on_end: Callable[[BaseException | None], None] | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass of it

    def data_received(self, data: bytes) -> None:
        if self._on_data is not None:
            self._on_data(data)
            return
        self._blocks.append(data)
        self._buffered += len(data)
        # A reader already waiting takes this block in a moment: pausing for it would cost two
        # system calls per large message for nothing.
        taken_soon = self._arrived is not None and not self._arrived.done()
        if self._buffered > READ_LIMIT and not taken_soon and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._ended(None)
        # Over TLS the transport must close; over TCP keep our side open as StreamReader does.
        return self.transport is None or self.transport.get_extra_info("ssl_object") is None

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        if exc is not None and self._lost is None:
            self._lost = exc
        self._ended(exc)
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # Reading

    def deliver_to(
        self, on_data: Callable[[bytes], None], on_end: Callable[[BaseException | None], None]
    ) -> None:
        """Hand every received block to `on_data` (those already waiting at once), and the end of the
        connection (None for EOF, else the error) to `on_end`, once."""
        self._on_data, self._on_end = on_data, on_end
        while self._blocks:
            on_data(self._blocks.popleft())
        self._buffered = 0
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        if self._eof:
            self._ended(self._lost)

    async def read(self) -> bytes:
        """The next received block; b"" at EOF. Raises the error the connection ended with (a reset)
        once everything received before it has been read."""
        while not self._blocks:
            if self._eof:
                if self._lost is not None:
                    raise self._lost
                return b""
            self._arrived = asyncio.get_running_loop().create_future()
            try:
                await self._arrived
            finally:
                self._arrived = None
        data = self._blocks.popleft()
        self._buffered -= len(data)
        if self._reading_paused and self._buffered <= READ_LIMIT and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        return data

    def at_eof(self) -> bool:
        """The upstream closed (or the connection ended) and everything it sent has been read."""
        return self._eof and not self._blocks

    # Writing

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def writelines(self, pieces: Iterable[bytes]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.writelines(pieces)

    async def drain(self) -> None:
        """Wait while the transport holds more than its high-water mark; raise if the connection is gone."""
        if self._lost is not None:
            raise self._lost
        if self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("upstream connection closed")
        if self._writing_paused:
            self._drained = asyncio.get_running_loop().create_future()
            await self._drained
            if self._lost is not None:
                raise self._lost

    # The connection

    def is_closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def ssl_object(self) -> ssl.SSLObject | None:
        if self.transport is None:
            return None
        return cast(ssl.SSLObject | None, self.transport.get_extra_info("ssl_object"))

    def _wake(self) -> None:
        if self._arrived is not None and not self._arrived.done():
            self._arrived.set_result(None)

    def _ended(self, exc: BaseException | None) -> None:
        self._wake()
        on_end, self._on_end = self._on_end, None
        if on_end is not None:
            on_end(exc)
