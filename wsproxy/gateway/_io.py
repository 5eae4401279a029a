"""The ASGI side of one gateway request: reading JSON values from the body, writing the response.

Both pumps charge wsproxy's turn budget (wsproxy/stream/_budget.py) and give the event loop a turn when it
is spent: the server's receive and send need not suspend, and one busy call must not hold the loop.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from google.protobuf import json_format

from wsproxy.gateway._fields import JSON_NULL
from wsproxy.gateway._jsonstream import JSONValueSplitter, ValueTooLarge
from wsproxy.gateway._status import GatewayError
from wsproxy.gateway._types import Receive, Send
from wsproxy.stream._budget import GATEWAY_PUMP_MESSAGES, TurnBudget

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
        self._budget = TurnBudget(GATEWAY_PUMP_MESSAGES)

    async def next_value(self) -> Any | None:
        """The next decoded JSON value (JSON_NULL for `null`), or None once the body has ended."""
        while not self._values:
            if self._body_done:
                return None
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            if self._budget.take(len(message.get("body", b""))):
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
            value = json.loads(raw)
            return JSON_NULL if value is None else value
        except RecursionError:
            raise GatewayError(
                grpc.StatusCode.INVALID_ARGUMENT, "request body is nested too deeply"
            ) from None
        except ValueError as exc:
            raise GatewayError(grpc.StatusCode.INVALID_ARGUMENT, f"request body is not JSON: {exc}") from None

    async def read_form(self, limit: int) -> bytes:
        """The whole body as raw bytes (an `application/x-www-form-urlencoded` one); no JSON values follow."""
        body = bytearray()
        while not self._body_done:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            body += message.get("body", b"")
            if len(body) > limit:
                raise GatewayError(
                    grpc.StatusCode.INVALID_ARGUMENT, f"form body is longer than {limit} bytes"
                )
            self._body_done = not message.get("more_body", False)
        return bytes(body)

    async def wait_disconnect(self) -> None:
        """Returns when the client goes away; body bytes nobody asked for are read and dropped."""
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                return
            if self._budget.take(len(message.get("body", b""))):
                await asyncio.sleep(0)


Headers = list[tuple[bytes, bytes]]
Trailers = Sequence[tuple[bytes, bytes]]


class ResponseWriter:
    """Writes a grpc-gateway response: a bare message, `{"result": ...}` lines, or a status error.

    `trailers`: the client asked for trailers (`TE: trailers`) and the server can send them (the
    ASGI `http.response.trailers` extension); then a unary answer or an error ends with the call's
    trailer metadata. `pending_error`: an error to end the stream with once the call's replies are out.
    `streaming`: the answer is a stream, so any error is an `{"error": ...}` line.
    """

    def __init__(self, send: Send, encode: Callable[[Any], bytes]) -> None:
        self._send = send
        self.encode = encode
        self.trailers = False
        self.pending_error: GatewayError | None = None
        self.streaming = False
        self.started = False
        self.finished = False
        self._trailers_due = False
        self._budget = TurnBudget(GATEWAY_PUMP_MESSAGES)

    async def message(self, message: Any, headers: Headers, trailers: Trailers = ()) -> None:
        encoded = self._encoded(message)
        if encoded is None:
            await self.error(_unprintable(), 500, headers, trailers)
            return
        await self._start(200, headers, with_trailers=self.trailers)
        await self._body(encoded, more=False)
        await self._trailers(trailers)

    async def stream_item(self, message: Any, headers: Headers) -> None:
        if self.finished:
            return
        encoded = self._encoded(message)
        if encoded is None:
            await self.error(_unprintable(), 500, headers)
            return
        await self._start(200, headers)
        await self._body(b'{"result":' + encoded + b"}\n", more=True)

    def _encoded(self, message: Any) -> bytes | None:
        """None when the message has no JSON form (e.g. a FieldMask path in camelCase): protojson
        refuses those too, and grpc-gateway answers the marshal error as UNKNOWN (HTTP 500)."""
        try:
            return self.encode(message)
        except (ValueError, TypeError, AttributeError, json_format.Error):
            return None

    async def end_stream(self, headers: list[tuple[bytes, bytes]]) -> None:
        await self._start(200, headers)
        await self._body(b"", more=False)

    async def error(
        self,
        body: dict[str, Any],
        status: int,
        headers: Headers,
        trailers: Trailers = (),
    ) -> None:
        """The status JSON with `status`; in a stream, an `{"error": ...}` line, with `status` when
        it is the first line (runtime.handleForwardResponseStreamError).

        UNAUTHENTICATED also says `WWW-Authenticate: <message>`, as runtime.DefaultHTTPErrorHandler does.
        """
        if self.finished:
            return
        # "replace": a message may quote a client's lone surrogate, which has no UTF-8 form.
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")
        if self.started or self.streaming:
            await self._start(status, headers)
            await self._body(b'{"error":' + payload + b"}\n", more=False)
            return
        if body.get("code") == grpc.StatusCode.UNAUTHENTICATED.value[0]:
            challenge = str(body.get("message", "")).encode("latin-1", "replace").replace(b"\r", b" ")
            headers = [*headers, (b"www-authenticate", challenge.replace(b"\n", b" "))]
        await self._start(status, headers, with_trailers=self.trailers)
        await self._body(payload, more=False)
        await self._trailers(trailers)

    async def _start(self, status: int, headers: Headers, *, with_trailers: bool = False) -> None:
        if not self.started:
            self.started = True
            start: dict[str, Any] = {
                "type": "http.response.start",
                "status": status,
                "headers": JSON_HEADERS + headers,
            }
            if with_trailers:
                start["trailers"] = True
            self._trailers_due = with_trailers
            await self._call(start)

    async def _trailers(self, trailers: Trailers) -> None:
        if self._trailers_due:
            self._trailers_due = False
            await self._call(
                {"type": "http.response.trailers", "headers": list(trailers), "more_trailers": False}
            )

    async def _body(self, body: bytes, *, more: bool) -> None:
        self.finished = not more
        await self._call({"type": "http.response.body", "body": body, "more_body": more})

    async def _call(self, message: dict[str, Any]) -> None:
        try:
            await self._send(message)
        except OSError:
            raise ClientGone from None
        if self._budget.take(len(message.get("body", b""))):
            await asyncio.sleep(0)


def _unprintable() -> dict[str, Any]:
    return {
        "code": grpc.StatusCode.UNKNOWN.value[0],
        "message": "the response has no JSON form",
        "details": [],
    }
