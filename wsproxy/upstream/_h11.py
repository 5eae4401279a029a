"""A full-duplex HTTP/1.1 client connection: an upstream socket (`_socket`) carrying an h11 state machine.

httpcore writes the whole request body before it reads any of the response, so a bidi call
through it would see no reply until the client half-closes. h11 itself has no such rule: a
client connection may read the response while its own side is still in SEND_BODY. Here one
task writes request events while another reads response events from the same connection.

h11 frames the request and parses the response head; the hot path of a streaming call bypasses
it on both sides, since its cost per event was a fifth of what a 64 KiB message cost the front:
request chunks of a chunked body are framed here (h11's chunked writer keeps no state, so h11
still ends the body), and a chunked response body is decoded by `_chunked`, whole chunks at once.

A connection carries one call at a time; the pool (`_pool`) keeps idle ones for reuse.
A connection is reusable only when both messages ended cleanly and h11 allows keep-alive.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

import h11

from wsproxy.upstream._call import ResponseHead
from wsproxy.upstream._chunked import ChunkedBody
from wsproxy.upstream._errors import ClosedEarly, MalformedResponse, ReadTimeout
from wsproxy.upstream._socket import UpstreamSocket

# Bounds the buffered, not yet parsed response head (status line + headers).
MAX_HEAD_SIZE = 64 * 1024


class H11Connection:
    """One HTTP/1.1 connection; a call's `send_body` and `next_event` may run in two tasks at once."""

    def __init__(self, sock: UpstreamSocket) -> None:
        self._sock = sock
        self._h11 = _new_h11()
        self._head_request = False
        self._chunked_request = False  # request body chunks are framed here, not by h11
        self._body: ChunkedBody | None = None  # a chunked response body, decoded here
        self._early = b""  # body bytes that arrived with the response head
        self._pieces: deque[bytes] = deque()  # decoded body pieces not yet handed out
        self._saw_eof = False
        self.idle_since = time.monotonic()
        self._on_release: Callable[[H11Connection], None] | None = None
        self.reused = False  # an earlier call ran on it

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
        self._head_request = method == "HEAD"
        self._chunked_request = (b"transfer-encoding", b"chunked") in headers
        data = self._h11.send(h11.Request(method=method, target=target, headers=headers))
        if bodyless:
            data = (data or b"") + (self._h11.send(h11.EndOfMessage()) or b"")
        self._sock.write(data or b"")

    async def send_body(self, data: bytes) -> None:
        if self._chunked_request and self._h11.our_state is h11.SEND_BODY:
            self._sock.writelines((b"%x\r\n" % len(data), data, b"\r\n"))
            await self._sock.drain()
        else:
            await self._send(h11.Data(data=data))

    async def end_body(self) -> None:
        await self._send(h11.EndOfMessage())

    async def finish_body(self, data: bytes) -> None:
        # One write for the last chunk and the chunked terminator: an upstream that answers on the
        # first line and closes (uvicorn does, when the body has not ended) would otherwise get the
        # terminator after its close, answer it with a reset, and the reset discards the answer
        # still unread in our socket.
        pieces = (self._h11.send(h11.Data(data=data)), self._h11.send(h11.EndOfMessage()))
        self._sock.write(b"".join(piece for piece in pieces if piece))
        await self._sock.drain()

    async def _send(self, event: h11.Event) -> None:
        data = self._h11.send(event)
        if data:
            self._sock.write(data)
            await self._sock.drain()

    async def next_event(self, timeout: float | None) -> ResponseHead | bytes | None:
        if self._body is not None:
            return await self._next_chunks(timeout)
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                if self._saw_eof:
                    raise ClosedEarly("upstream closed the connection mid-response") from exc
                raise MalformedResponse(str(exc)) from exc
            if event is h11.NEED_DATA:
                data = await self._read(timeout)
                self._saw_eof = not data
                self._h11.receive_data(data)
            elif isinstance(event, h11.Response):
                if _is_chunked(event) and not self._head_request:
                    # From here on h11 sees no more bytes; `recycle` gives the next call a new one.
                    self._body = ChunkedBody()
                    self._early = self._h11.trailing_data[0]
                return ResponseHead(event.status_code, list(event.headers))
            elif isinstance(event, h11.Data):
                return bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return None
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                raise ClosedEarly("upstream closed the connection before the response ended")
            # InformationalResponse (100 Continue, 103 Early Hints): nothing to forward.

    async def _next_chunks(self, timeout: float | None) -> bytes | None:
        """The data of the next whole chunks of a chunked body, or None at its end."""
        body = self._body
        assert body is not None
        while not self._pieces:
            if body.done:
                return None
            data, self._early = self._early or await self._read(timeout), b""
            if not data:
                raise ClosedEarly("upstream closed the connection mid-response")
            self._pieces.extend(body.feed(data))
        return self._pieces.popleft()

    async def _read(self, timeout: float | None) -> bytes:
        """The next bytes from the upstream; b"" at EOF.

        An upstream that answers before the request body ends and then closes (uvicorn does, with
        no lingering close) resets the connection when our next body bytes arrive; the socket
        hands out every byte that came before the reset (maybe the whole answer) before it raises.
        """
        try:
            if timeout is None:
                return await self._sock.read()
            return await asyncio.wait_for(self._sock.read(), timeout)
        except asyncio.TimeoutError:
            raise ReadTimeout from None

    def release(self) -> None:
        on_release, self._on_release = self._on_release, None
        if on_release is not None:
            on_release(self)

    def is_reusable(self) -> bool:
        # h11's our_state is DONE only while both messages allow keep-alive.
        their_done = self._body.done if self._body is not None else self._h11.their_state is h11.DONE
        return self._h11.our_state is h11.DONE and their_done

    def is_stale(self, keepalive_expiry: float) -> bool:
        # An idle connection the server already closed has EOF queued in its reader.
        return (
            self._sock.at_eof()
            or self._sock.is_closing()
            or time.monotonic() - self.idle_since > keepalive_expiry
        )

    def recycle(self) -> None:
        self.reused = True
        if self._body is None:
            self._h11.start_next_cycle()
        else:  # h11 saw only the head of the last response
            self._h11 = _new_h11()
            self._body = None
            self._pieces.clear()
        self.idle_since = time.monotonic()

    def close(self) -> None:
        # abort(), not close(): an unfinished message must not be flushed or waited for.
        self._sock.abort()


def _new_h11() -> h11.Connection:
    return h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_SIZE)


def _is_chunked(response: h11.Response) -> bool:
    """h11's framing rule for a response with a body: Transfer-Encoding (h11 accepts only
    chunked) wins over Content-Length. No body at all for 1xx, 204 and 304 (and HEAD requests)."""
    if response.status_code in (204, 304):
        return False
    return any(name == b"transfer-encoding" for name, _ in response.headers)
