"""The I/O shell: one WebSocket connection driven as one streaming HTTP request to the wrapped app.

Theory of operation. The app runs in the server's task with our `receive` and `send`. Its `receive` reads
the WebSocket directly (no pump task, no queue), so a message is taken from the socket only when the
app asks for more body: that is the backpressure, and it keeps the hot path free of task switches.
Its `send` splits the body into lines and sends each as a frame at once.

A client can also vanish while the app is not reading (it is busy, streaming a response, or done
with the body). So whenever the app has been away from `receive` for a tick (one second), and for
good once the body has ended, a reader task reads the socket ahead into a small bounded inbox: a
disconnect is seen within about a second, and the app gets `http.disconnect`, a raising `send`,
and after a grace period a cancellation. When the app comes back to `receive` it drains the inbox
and then reads inline again. A message after the end of the body is a protocol violation (1008).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Collection

from wsproxy import closecodes
from wsproxy._handshake import RequestPlan, plan_request
from wsproxy._lines import LineSplitter
from wsproxy._mux_session import MuxSession, offers_mux
from wsproxy._options import (
    DEFAULT_FORWARDED_HEADERS,
    DEFAULT_MAX_CALLS_PER_SOCKET,
    DEFAULT_MAX_LINE_SIZE,
    DEFAULT_MAX_MESSAGE_SIZE,
    ForwardedHeaders,
    ProxyOptions,
    RequestMutator,
)
from wsproxy._types import ASGIApp, Message, Receive, Scope, Send
from wsproxy.errors import ClientDisconnected, HandshakeRejected, MessageTooBig

logger = logging.getLogger("wsproxy")

TICK_SECONDS = 1.0  # how often an open stream checks for a vanished client and idleness
READ_AHEAD_BYTES = 64 * 1024  # what a stream may hold unread while its app is away (plus one message)
DISCONNECT_GRACE_SECONDS = 1.0  # how long the app may run on after its client is gone


class WebSocketProxyMiddleware:
    """Serve the wrapped app's streaming HTTP endpoints over WebSocket too.

    HTTP and lifespan scopes pass through untouched. Each WebSocket connection becomes one HTTP
    request to the app: every message (plus "\\n") is a piece of the request body, an empty message
    ends the body, and every line of the response body comes back as one text frame. See
    docs/protocol.md for the wire contract and docs/options.md for the options.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        method_override_param: str | None = "method",
        default_method: str = "GET",
        forwarded_headers: ForwardedHeaders = DEFAULT_FORWARDED_HEADERS,
        token_cookie_name: str | None = "token",
        request_mutator: RequestMutator | None = None,
        half_close_message: str | bytes | None = "",
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_line_size: int = DEFAULT_MAX_LINE_SIZE,
        allowed_origins: Collection[str] | None = None,
        max_connections: int | None = None,
        idle_timeout: float | None = None,
        max_calls_per_socket: int = DEFAULT_MAX_CALLS_PER_SOCKET,
    ) -> None:
        self.app = app
        self.options = ProxyOptions(
            method_override_param=method_override_param,
            default_method=default_method,
            forwarded_headers=forwarded_headers,
            token_cookie_name=token_cookie_name,
            request_mutator=request_mutator,
            half_close_message=half_close_message,
            max_message_size=max_message_size,
            max_line_size=max_line_size,
            allowed_origins=allowed_origins,
            max_connections=max_connections,
            idle_timeout=idle_timeout,
            max_calls_per_socket=max_calls_per_socket,
        )
        self._forwards = self.options.forwards()
        self._origins = self.options.origins()
        self._half_close = self.options.half_close_bytes()
        self.active_streams = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        message = await receive()
        if message["type"] != "websocket.connect":
            return  # the client left before the handshake completed
        try:
            plan = self._plan(scope)
        except HandshakeRejected as exc:
            logger.debug("refused %s: %d %s", scope.get("path"), exc.status, exc.message)
            await _deny(scope, send, exc.status, exc.message)
            return
        limit = self.options.max_connections
        if limit is not None and self.active_streams >= limit:
            logger.info("refused %s: %d streams open, the limit", scope.get("path"), limit)
            await _refuse_busy(scope, send)
            return
        self.active_streams += 1
        try:
            if offers_mux(scope):  # many calls on this socket: docs/protocol.md, "Multiplexing"
                await self._mux_session(scope, receive, send).run()
            else:
                await _Stream(self, plan, receive, send).run()
        finally:
            self.active_streams -= 1

    def _mux_session(self, scope: Scope, receive: Receive, send: Send) -> MuxSession:
        return MuxSession(
            scope,
            receive,
            send,
            plan_call=self._plan,
            run_stream=lambda plan, call_receive, call_send: _Stream(
                self, plan, call_receive, call_send
            ).run(),
            half_close=self._half_close,
            max_calls=self.options.max_calls_per_socket,
            max_message_size=self.options.max_message_size,
        )

    def _plan(self, scope: Scope) -> RequestPlan:
        plan = plan_request(scope, self.options, forwards=self._forwards, origins=self._origins)
        mutator = self.options.request_mutator
        if mutator is None:
            return plan
        try:
            mutated = mutator(scope, plan.scope)
        except HandshakeRejected:
            raise
        except Exception as exc:
            logger.exception("request_mutator raised for %s", scope.get("path"))
            raise HandshakeRejected(500, "internal error") from exc
        return RequestPlan(mutated, plan.subprotocol, plan.single_message)


class _Stream:
    """One WebSocket connection proxied as one HTTP request."""

    # Slots: thousands of streams may be open at once, and a per-instance dict is about 1 KiB.
    __slots__ = (
        "app",
        "body_open",
        "cancel_handle",
        "cancelled_by_us",
        "close_code",
        "closed",
        "closer",
        "end_read",
        "gone",
        "gone_waiter",
        "half_close",
        "idle_ticks",
        "idle_timeout",
        "in_receive",
        "inbox",
        "inbox_bytes",
        "last_counts",
        "lines_out",
        "max_message_size",
        "messages_in",
        "path",
        "plan",
        "reader",
        "response_complete",
        "running",
        "single_message",
        "splitter",
        "status",
        "task",
        "tick_handle",
        "ws_receive",
        "ws_send",
    )

    def __init__(
        self, proxy: WebSocketProxyMiddleware, plan: RequestPlan, receive: Receive, send: Send
    ) -> None:
        self.app = proxy.app
        self.plan = plan
        self.path: str = plan.scope.get("path", "")
        self.ws_receive = receive
        self.ws_send = send
        self.half_close = proxy._half_close
        self.max_message_size = proxy.options.max_message_size
        self.idle_timeout = proxy.options.idle_timeout
        self.splitter = LineSplitter(proxy.options.max_line_size)
        self.single_message = plan.single_message

        self.body_open = True
        self.in_receive = False
        # Read ahead while the app was away; made on first use (an empty deque is 760 bytes, and
        # most streams never need one: memory per open stream counts with thousands of them).
        self.inbox: deque[Message] | None = None
        self.inbox_bytes = 0
        self.end_read = False  # the inbox holds the message that ends the body
        self.reader: asyncio.Task[None] | None = None
        self.closer: asyncio.Future[None] | None = None
        # The client left or we closed: no more frames either way. A bool plus a future made only
        # when the app waits for it, rather than an asyncio.Event (about 1 KiB per stream).
        self.gone = False
        self.gone_waiter: asyncio.Future[None] | None = None
        self.closed = False  # we sent the close frame (or the client's close arrived)
        self.close_code: int | None = None
        self.status: int | None = None
        self.response_complete = False
        self.task: asyncio.Task[object] | None = None  # the server's task, which runs the app
        self.running = False
        self.cancelled_by_us = False
        self.messages_in = 0
        self.lines_out = 0
        # Idleness is counted in ticks without traffic: no clock read per message.
        self.last_counts = (0, 0, True)
        self.idle_ticks = 0
        self.tick_handle: asyncio.TimerHandle | None = None
        self.cancel_handle: asyncio.TimerHandle | None = None

    async def run(self) -> None:
        started = time.monotonic()
        try:
            await self.ws_send({"type": "websocket.accept", "subprotocol": self.plan.subprotocol})
        except OSError:
            return  # the client left during the handshake
        # The app runs right here in the server's task (no task of its own: memory per stream).
        self.task = asyncio.current_task()
        self.tick_handle = asyncio.get_running_loop().call_later(TICK_SECONDS, self._tick)
        self.running = True
        try:
            await self._run_app()
        finally:
            self.running = False
            self._stop_background()
            logger.debug(
                "%s %s closed %s: %d messages in, %d lines out, %.3fs",
                self.plan.scope.get("method"),
                self.path,
                self.close_code,
                self.messages_in,
                self.lines_out,
                time.monotonic() - started,
            )

    async def _run_app(self) -> None:
        failure: BaseException | None = None
        try:
            await self.app(self.plan.scope, self.receive, self.send)
        except asyncio.CancelledError:
            if not self._cancelled_only_by_us():
                raise  # the server is cancelling this connection
            return  # cancelled by us after the client left
        except BaseException as exc:  # one app's failure ends only its own stream
            failure = exc
        finally:
            self.running = False
            if self.cancel_handle is not None:
                self.cancel_handle.cancel()
        if self.cancelled_by_us and self.task is not None and hasattr(self.task, "uncancel"):
            # The app swallowed our cancellation and returned: leave the server's task as it was.
            self.task.uncancel()
        if failure is not None:
            self._app_raised(failure)
            await self._close(*closecodes.close_for_exception(failure))
        elif not self.response_complete:
            await self._app_returned_early()

    def _cancelled_only_by_us(self) -> bool:
        if not self.cancelled_by_us:
            return False
        task = self.task
        if task is not None and hasattr(task, "uncancel"):  # Python 3.11+ counts cancellations
            return task.uncancel() == 0
        return True

    def _cancel_app(self) -> None:
        if self.running and self.task is not None:
            self.cancelled_by_us = True
            self.task.cancel()

    def _app_raised(self, exc: BaseException) -> None:
        if self.gone and isinstance(exc, OSError):
            return  # the app tripped over the client's absence: expected, not a bug
        if isinstance(exc, MessageTooBig):
            logger.info("%s: %s", self.path, exc)
        else:
            logger.error("app raised on %s", self.path, exc_info=exc)

    async def _app_returned_early(self) -> None:
        if self.closed:
            return  # we already ended the stream (a limit) or the client left
        if self.status is None:
            logger.error("app returned without a response on %s", self.path)
            await self._close(closecodes.INTERNAL_ERROR, "no response")
        else:
            logger.error("app returned before finishing its response on %s", self.path)
            await self._close(closecodes.INTERNAL_ERROR, "incomplete response")

    # The app's receive: the WebSocket read directly, one message per call.

    async def receive(self) -> Message:
        if not self.body_open or self.gone:
            await self._wait_gone()
            return {"type": "http.disconnect"}
        if self.inbox:
            message = self.inbox.popleft()
            self.inbox_bytes -= _size(message)
        else:
            if self.reader is not None:
                # Back in receive: stop reading ahead (uvicorn's receive is a cancel-safe queue get).
                self.reader.cancel()
                self.reader = None
            self.in_receive = True
            try:
                message = await self.ws_receive()
            finally:
                self.in_receive = False
        # What follows runs for every message, so it stays inline: a helper call costs more than
        # the rest of the work for small messages.
        if message["type"] != "websocket.receive":
            self._client_left(message)
            return {"type": "http.disconnect"}
        data = message.get("bytes")
        if data is None:
            data = message.get("text", "").encode()
        if data == self.half_close:
            self._end_body()
            return {"type": "http.request", "body": b"", "more_body": False}
        if len(data) > self.max_message_size:
            logger.info("%s: incoming message of %d bytes over the limit", self.path, len(data))
            await self._close(closecodes.MESSAGE_TOO_BIG, "message too big")
            return {"type": "http.disconnect"}
        self.messages_in += 1
        if 10 in data or 13 in data:  # b"\n", b"\r" (an int test skips the substring search setup)
            # Raw line breaks would split one message into two requests; in JSON they are whitespace.
            data = data.replace(b"\r", b" ").replace(b"\n", b" ")
        if self.single_message:
            self._end_body()
            return {"type": "http.request", "body": data + b"\n", "more_body": False}
        return {"type": "http.request", "body": data + b"\n", "more_body": True}

    async def _wait_gone(self) -> None:
        if self.gone:
            return
        if self.gone_waiter is None:
            self.gone_waiter = asyncio.get_running_loop().create_future()
        await asyncio.shield(self.gone_waiter)

    def _end_body(self) -> None:
        self.body_open = False
        if self.gone:
            return
        if self.inbox:
            self.closer = asyncio.ensure_future(self._violation())
        elif self.reader is None:
            self.reader = asyncio.get_running_loop().create_task(self._read_ahead())

    async def _read_ahead(self) -> None:
        """Read while the app is away: to the inbox while the body is open, a violation after it."""
        try:
            while self.inbox_bytes <= READ_AHEAD_BYTES or not self.body_open:
                message = await self.ws_receive()
                if message["type"] != "websocket.receive":
                    self._client_left(message)
                    return
                if self.end_read or not self.body_open:
                    await self._violation()
                    return
                if self.inbox is None:
                    self.inbox = deque()
                self.inbox.append(message)
                self.inbox_bytes += _size(message)
                self.end_read = self.single_message or _data(message) == self.half_close
        except OSError:
            self._client_left(None)
        finally:
            if self.reader is asyncio.current_task():
                self.reader = None

    async def _violation(self) -> None:
        await self._close(closecodes.POLICY_VIOLATION, "message after end of request body")

    # The app's send: lines out as frames, the close frame at the end.

    async def send(self, message: Message) -> None:
        if message["type"] != "http.response.body":
            self._start_response(message)
            return
        status = self.status
        if status is None or self.response_complete:
            raise RuntimeError(
                'Unexpected ASGI message "http.response.body" before "http.response.start" or after the end'
            )
        if self.gone:
            raise ClientDisconnected("the WebSocket client has gone away")
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
        if more_body:
            single = self.splitter.single_line(body)
            if single is not None:
                # The common case (one short line, nothing buffered), kept inline and apart from the
                # loop below on purpose: folding it in costs 0.15 us a message, 2% of 64 B throughput.
                frame: Message
                try:
                    frame = {"type": "websocket.send", "text": single.decode()}
                except UnicodeDecodeError:
                    frame = {"type": "websocket.send", "bytes": single}
                try:
                    await self.ws_send(frame)
                except OSError as exc:
                    self._client_left(None)
                    raise ClientDisconnected("the WebSocket client has gone away") from exc
                self.lines_out += 1
                return
        try:
            lines = self.splitter.feed_views(body) if body else ()
            if not more_body:
                self.response_complete = True
                lines = [*lines, *self.splitter.flush()]
        except MessageTooBig:
            logger.info("%s: response line over the limit", self.path)
            await self._close(closecodes.MESSAGE_TOO_BIG, "response line too big")
            raise ClientDisconnected("response line too big: stream closed with 1009") from None
        # The frames are sent right here, not in a helper coroutine: this runs for every message.
        for line in lines:
            try:
                frame = {"type": "websocket.send", "text": str(line, "utf-8")}
            except UnicodeDecodeError:
                frame = {"type": "websocket.send", "bytes": bytes(line)}
            try:
                await self.ws_send(frame)
            except OSError as exc:
                self._client_left(None)
                raise ClientDisconnected("the WebSocket client has gone away") from exc
            self.lines_out += 1
        if not more_body:
            await self._close(*closecodes.close_for_status(status))

    def _start_response(self, message: Message) -> None:
        kind = message["type"]
        if kind != "http.response.start":
            raise RuntimeError(
                f'Expected ASGI message "http.response.start" or "http.response.body", but got {kind!r}'
            )
        if self.status is not None:
            raise RuntimeError('Unexpected ASGI message "http.response.start" sent twice')
        self.status = int(message["status"])

    # Ending the stream.

    async def _close(self, code: int, reason: str = "") -> None:
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        self._mark_gone()
        with contextlib.suppress(OSError):  # a client already gone needs no close frame
            await self.ws_send({"type": "websocket.close", "code": code, "reason": reason})

    def _client_left(self, message: Message | None) -> None:
        if not self.closed:
            self.closed = True
            self.close_code = message.get("code", closecodes.GOING_AWAY) if message else None
        self._mark_gone()

    def _mark_gone(self) -> None:
        if self.gone:
            return
        self.gone = True
        if self.gone_waiter is not None and not self.gone_waiter.done():
            self.gone_waiter.set_result(None)
        if self.running and not self.response_complete:
            # The app hears of it through receive() and send(); if it does not finish, end it.
            # (After a complete response it may run on, as with Starlette's background tasks.)
            self.cancel_handle = asyncio.get_running_loop().call_later(
                DISCONNECT_GRACE_SECONDS, self._cancel_app
            )

    def _tick(self) -> None:
        if self.gone:
            return
        counts = (self.messages_in, self.lines_out, self.body_open)
        self.idle_ticks = self.idle_ticks + 1 if counts == self.last_counts else 0
        self.last_counts = counts
        if self.idle_timeout is not None and self.idle_ticks * TICK_SECONDS >= self.idle_timeout:
            logger.debug("%s: idle for %.0fs, closing", self.path, self.idle_ticks * TICK_SECONDS)
            self.closer = asyncio.ensure_future(self._close(closecodes.GOING_AWAY, "idle timeout"))
            return
        if (
            self.body_open
            and not self.in_receive
            and self.reader is None
            and self.inbox_bytes <= READ_AHEAD_BYTES
        ):
            self.reader = asyncio.get_running_loop().create_task(self._read_ahead())
        self.tick_handle = asyncio.get_running_loop().call_later(TICK_SECONDS, self._tick)

    def _stop_background(self) -> None:
        for handle in (self.tick_handle, self.cancel_handle):
            if handle is not None:
                handle.cancel()
        for task in (self.reader, self.closer):
            if task is not None and not task.done():
                task.cancel()


def _data(message: Message) -> bytes:
    data: bytes | None = message.get("bytes")
    if data is None:
        text: str = message.get("text", "")
        return text.encode()
    return data


def _size(message: Message) -> int:
    data = message.get("bytes")
    return len(data if data is not None else message.get("text", ""))


async def _deny(scope: Scope, send: Send, status: int, message: str) -> None:
    """Refuse the handshake with an HTTP status before accept: a JSON body where the server allows."""
    if "websocket.http.response" in scope.get("extensions", {}):
        body = json.dumps({"error": message, "status": status}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": closecodes.POLICY_VIOLATION})  # servers answer 403


async def _refuse_busy(scope: Scope, send: Send) -> None:
    if "websocket.http.response" in scope.get("extensions", {}):
        await _deny(scope, send, 503, "too many connections")
        return
    await send({"type": "websocket.accept"})
    await send(
        {"type": "websocket.close", "code": closecodes.TRY_AGAIN_LATER, "reason": "too many connections"}
    )
