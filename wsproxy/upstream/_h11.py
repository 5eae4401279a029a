"""A full-duplex HTTP/1.1 client connection: asyncio streams carrying an h11 state machine.

httpcore writes the whole request body before it reads any of the response, so a bidi call
through it would see no reply until the client half-closes. h11 itself has no such rule: a
client connection may read the response while its own side is still in SEND_BODY. Here one
task writes request events while another reads response events from the same connection.

A connection carries one call at a time; the pool (`_pool`) keeps idle ones for reuse.
A connection is reusable only when both sides of h11 finished their message cleanly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import h11

from wsproxy.upstream._call import ResponseHead
from wsproxy.upstream._errors import ClosedEarly, MalformedResponse, ReadTimeout

READ_CHUNK_SIZE = 64 * 1024
# Bounds the buffered, not yet parsed response head (status line + headers).
MAX_HEAD_SIZE = 64 * 1024


class H11Connection:
    """One HTTP/1.1 connection; a call's `send_body` and `next_event` may run in two tasks at once."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_SIZE)
        self._saw_eof = False
        self._reset: ConnectionResetError | None = None  # raised once the salvaged bytes are parsed
        self.idle_since = time.monotonic()
        self._on_release: Callable[[H11Connection], None] | None = None

    def start(
        self,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        *,
        bodyless: bool,
        on_release: Callable[[H11Connection], None],
    ) -> None:
        """Write the request head (and, for a bodyless request, its end) without waiting."""
        self._on_release = on_release
        data = self._h11.send(h11.Request(method=method, target=target, headers=headers))
        if bodyless:
            data = (data or b"") + (self._h11.send(h11.EndOfMessage()) or b"")
        self._writer.write(data or b"")

    async def send_body(self, data: bytes) -> None:
        await self._send(h11.Data(data=data))

    async def end_body(self) -> None:
        await self._send(h11.EndOfMessage())

    async def finish_body(self, data: bytes) -> None:
        # One write for the last chunk and the chunked terminator: an upstream that answers on the
        # first line and closes (uvicorn does, when the body has not ended) would otherwise get the
        # terminator after its close, answer it with a reset, and the reset discards the answer
        # still unread in our socket.
        pieces = (self._h11.send(h11.Data(data=data)), self._h11.send(h11.EndOfMessage()))
        self._writer.write(b"".join(piece for piece in pieces if piece))
        await self._writer.drain()

    async def _send(self, event: h11.Event) -> None:
        data = self._h11.send(event)
        if data:
            self._writer.write(data)
            await self._writer.drain()

    async def next_event(self, timeout: float | None) -> ResponseHead | bytes | None:
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                if self._saw_eof:
                    raise ClosedEarly("upstream closed the connection mid-response") from exc
                raise MalformedResponse(str(exc)) from exc
            if event is h11.NEED_DATA:
                if self._reset is not None:
                    raise self._reset
                try:
                    data = await asyncio.wait_for(self._reader.read(READ_CHUNK_SIZE), timeout)
                except asyncio.TimeoutError:
                    raise ReadTimeout from None
                except ConnectionResetError as exc:
                    # An upstream that answers before the request body ends and then closes (uvicorn
                    # does, with no lingering close) resets the connection when our next body bytes
                    # arrive. StreamReader raises the reset before the bytes it already holds, which
                    # may be the whole response: parse those first, and fail only if they fall short.
                    data = _take_buffered(self._reader)
                    if not data:
                        raise
                    self._reset = exc
                self._saw_eof = not data
                self._h11.receive_data(data)
            elif isinstance(event, h11.Response):
                return ResponseHead(event.status_code, list(event.headers))
            elif isinstance(event, h11.Data):
                return bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return None
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                raise ClosedEarly("upstream closed the connection before the response ended")
            # InformationalResponse (100 Continue, 103 Early Hints): nothing to forward.

    def release(self) -> None:
        on_release, self._on_release = self._on_release, None
        if on_release is not None:
            on_release(self)

    def is_reusable(self) -> bool:
        return self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE

    def is_stale(self, keepalive_expiry: float) -> bool:
        # An idle connection the server already closed has EOF queued in its reader.
        return (
            self._reader.at_eof()
            or self._writer.is_closing()
            or time.monotonic() - self.idle_since > keepalive_expiry
        )

    def recycle(self) -> None:
        self._h11.start_next_cycle()
        self.idle_since = time.monotonic()

    def close(self) -> None:
        # abort(), not close(): an unfinished message must not be flushed or waited for.
        self._writer.transport.abort()


def _take_buffered(reader: asyncio.StreamReader) -> bytes:
    """The bytes a StreamReader received but has not handed out (its buffer is not public API)."""
    buffer = getattr(reader, "_buffer", None)
    if not isinstance(buffer, bytearray):
        return b""
    data = bytes(buffer)
    buffer.clear()
    return data
