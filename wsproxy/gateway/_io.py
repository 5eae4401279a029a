"""The ASGI side of one gateway request: reading JSON values from the body, writing the response.

Both pumps charge wsproxy's yield budget (wsproxy/_stream.py) and give the event loop a turn when it
is spent: the server's receive and send need not suspend, and one busy call must not hold the loop.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable
from typing import Any

import grpc

from wsproxy._stream import YieldBudget
from wsproxy.gateway._jsonstream import JSONValueSplitter, ValueTooLarge
from wsproxy.gateway._status import GatewayError
from wsproxy.gateway._types import Receive, Send

JSON_HEADERS = [(b"content-type", b"application/json")]


class ClientGone(Exception):
    """The HTTP client disconnected (http.disconnect, or send() failed)."""


class RequestReader:
    """Hands out the request body one JSON value at a time, then waits for the client to leave.

    Only one task may use it at a time: the body is read by whoever needs it, and the disconnect
    watch only starts once nothing more is wanted from the body.
    """

    def __init__(self, receive: Receive, *, max_value_size: int) -> None:
        self._receive = receive
        self._splitter = JSONValueSplitter(max_value_size=max_value_size)
        self._values: deque[bytes] = deque()
        self._body_done = False
        self._budget = YieldBudget()

    async def next_value(self) -> Any | None:
        """The next decoded JSON value, or None once the body has ended."""
        while not self._values:
            if self._body_done:
                return None
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            if self._budget.charge(len(message.get("body", b""))):
                await asyncio.sleep(0)
            try:
                self._values.extend(self._splitter.feed(message.get("body", b"")))
            except ValueTooLarge as exc:
                raise GatewayError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
            if not message.get("more_body", False):
                self._body_done = True
                tail = self._splitter.close()
                if tail is not None:
                    self._values.append(tail)
        raw = self._values.popleft()
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise GatewayError(grpc.StatusCode.INVALID_ARGUMENT, f"request body is not JSON: {exc}") from None

    async def wait_disconnect(self) -> None:
        """Returns when the client goes away; body bytes nobody asked for are read and dropped."""
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                return
            if self._budget.charge(len(message.get("body", b""))):
                await asyncio.sleep(0)


class ResponseWriter:
    """Writes a grpc-gateway response: a bare message, `{"result": ...}` lines, or a status error."""

    def __init__(self, send: Send, encode: Callable[[Any], bytes]) -> None:
        self._send = send
        self._encode = encode
        self.started = False
        self.finished = False
        self._budget = YieldBudget()

    async def message(self, message: Any, headers: list[tuple[bytes, bytes]]) -> None:
        await self._start(200, headers)
        await self._body(self._encode(message), more=False)

    async def stream_item(self, message: Any, headers: list[tuple[bytes, bytes]]) -> None:
        await self._start(200, headers)
        await self._body(b'{"result":' + self._encode(message) + b"}\n", more=True)

    async def end_stream(self, headers: list[tuple[bytes, bytes]]) -> None:
        await self._start(200, headers)
        await self._body(b"", more=False)

    async def error(self, body: dict[str, Any], status: int, headers: list[tuple[bytes, bytes]]) -> None:
        """Before any message: the status JSON with `status`; mid-stream: an `{"error": ...}` line."""
        if self.finished:
            return
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        if self.started:
            await self._body(b'{"error":' + payload + b"}\n", more=False)
        else:
            await self._start(status, headers)
            await self._body(payload, more=False)

    async def _start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        if not self.started:
            self.started = True
            await self._call(
                {"type": "http.response.start", "status": status, "headers": JSON_HEADERS + headers}
            )

    async def _body(self, body: bytes, *, more: bool) -> None:
        self.finished = not more
        await self._call({"type": "http.response.body", "body": body, "more_body": more})

    async def _call(self, message: dict[str, Any]) -> None:
        try:
            await self._send(message)
        except OSError:
            raise ClientGone from None
        if self._budget.charge(len(message.get("body", b""))):
            await asyncio.sleep(0)
