"""A lean WebSocket client for load generation, so the client is never the bottleneck.

Frames to send are serialized (and masked) once by websockets' sans-I/O `Frame` and then written
as prebuilt bytes; frames from the server are parsed just far enough to count them, check their
length and see the close frame. A payload is never copied: the parser skips over it, so 1 MiB
replies cost the client almost nothing.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections import deque
from collections.abc import Callable
from typing import cast

from websockets.frames import Close, Frame, Opcode

_CLOSE = 8


def client_frame(payload: bytes, *, text: bool = True) -> bytes:
    """One masked client frame, ready to write as many times as needed."""
    frame = Frame(Opcode.TEXT if text else Opcode.BINARY, payload)
    return frame.serialize(mask=True)


CLOSE_FRAME = Frame(Opcode.CLOSE, Close(1000, "").serialize()).serialize(mask=True)


class HandshakeFailed(Exception):
    pass


class Connection(asyncio.Protocol):
    """One WebSocket: handshake, then counting replies and timing them against their requests."""

    def __init__(self, host: str, path: str, *, expected_size: int | None = None) -> None:
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.expected_size = expected_size
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None
        self.replies = 0
        self.wrong_size = 0
        self.sent_at: deque[float] = deque()  # send times of the requests not yet answered
        self.on_replies: Callable[[Connection, int, float], None] | None = None
        self._handshake = b""
        self._pending = b""  # an incomplete frame header (or close frame) from the last chunk
        self._skip = 0  # payload bytes of the current frame still to come

    # Sending

    def send(self, frames: bytes, count: int) -> None:
        assert self.transport is not None
        self.sent_at.extend([time.perf_counter()] * count)
        self.transport.write(frames)

    async def close(self, timeout: float = 5.0) -> None:
        """The closing handshake: our close frame, the server's, then the server closes TCP."""
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(CLOSE_FRAME)
        try:
            await asyncio.wait_for(asyncio.shield(self.lost), timeout)
        except TimeoutError:
            self.transport.abort()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass of it
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(HandshakeFailed("connection closed during the handshake"))
        if not self.lost.done():
            self.lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        if not self.opened.done():
            data = self._finish_handshake(data)
            if not data:
                return
        if self._pending:
            data = self._pending + data
            self._pending = b""
        self._frames(data)

    def _finish_handshake(self, data: bytes) -> bytes:
        self._handshake += data
        head, sep, rest = self._handshake.partition(b"\r\n\r\n")
        if not sep:
            return b""
        if not head.startswith(b"HTTP/1.1 101"):
            self.opened.set_exception(HandshakeFailed(head.split(b"\r\n", 1)[0].decode()))
            assert self.transport is not None
            self.transport.close()
            return b""
        self.opened.set_result(None)
        return rest

    def _frames(self, data: bytes) -> None:
        end = len(data)
        pos = 0
        count = 0
        if self._skip:
            if self._skip > end:
                self._skip -= end
                return
            pos = self._skip
            self._skip = 0
            count = 1
        expected = self.expected_size
        while end - pos >= 2:
            opcode = data[pos] & 0x0F
            length = data[pos + 1] & 0x7F
            header = 2
            if length == 126:
                if end - pos < 4:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 4], "big")
                header = 4
            elif length == 127:
                if end - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                header = 10
            if opcode == _CLOSE:
                if end - pos < header + length:
                    break
                payload = data[pos + header : pos + header + length]
                self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                pos += header + length
                continue
            if expected is not None and length != expected:
                self.wrong_size += 1
            available = end - pos - header
            if available < length:
                self._skip = length - available
                pos = end
                break
            pos += header + length
            count += 1
        if pos < end:
            self._pending = data[pos:]
        if count:
            self.replies += count
            if self.on_replies is not None:
                self.on_replies(self, count, time.perf_counter())


async def open_connection(host: str, port: int, path: str, *, expected_size: int | None = None) -> Connection:
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(
        lambda: Connection(f"{host}:{port}", path, expected_size=expected_size), host, port
    )
    await conn.opened
    return conn
