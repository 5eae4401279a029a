"""The entry: plan the request, authenticate, limit, then hand the socket to a stream or a mux session.

Theory of operation. `WebSocketProxyMiddleware` passes HTTP and lifespan scopes to the app untouched,
and so the upgrades the `passthrough_paths` option leaves to the app's own WebSocket routes.
For a WebSocket it maps the handshake to the HTTP request the app will see (wsproxy/_handshake.py),
runs the `authenticate` hook, refuses what the options forbid (origin, the connection limit) with an
HTTP status before the accept, and then gives the connection to one of two runners: a single stream
(wsproxy/stream/: the socket is one HTTP request) or, when the client offers `wsproxy.mux.v1`, a
mux session (wsproxy/mux/: many calls on one socket, each run as a stream).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Collection
from typing import TYPE_CHECKING

from wsproxy import closecodes
from wsproxy._auth import Authenticate, authenticate_request
from wsproxy._handshake import RequestPlan, offers_status, plan_request
from wsproxy._options import (
    DEFAULT_FORWARDED_HEADERS,
    DEFAULT_MAX_CALLS_PER_SOCKET,
    DEFAULT_MAX_LINE_SIZE,
    DEFAULT_MAX_MESSAGE_SIZE,
    ForwardedHeaders,
    PassthroughPaths,
    ProxyOptions,
    RequestMutator,
)
from wsproxy._types import ASGIApp, Receive, Scope, Send
from wsproxy.errors import HandshakeRejected
from wsproxy.mux import MuxSession, offers_mux
from wsproxy.operations import chain, log_stream, metrics_for
from wsproxy.stream import Stream, StreamObserver, StreamSettings, StreamStats, run_stream

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

logger = logging.getLogger("wsproxy")

__all__ = ["StreamObserver", "StreamSettings", "StreamStats", "WebSocketProxyMiddleware", "run_stream"]


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
        on_stream_start: StreamObserver | None = None,
        on_stream_end: StreamObserver | None = None,
        authenticate: Authenticate | None = None,
        metrics: bool | CollectorRegistry = False,
        access_log: bool = False,
        max_calls_per_socket: int = DEFAULT_MAX_CALLS_PER_SOCKET,
        passthrough_paths: PassthroughPaths | None = None,
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
            passthrough_paths=passthrough_paths,
        )
        self._passthrough = self.options.passthrough()
        self._forwards = self.options.forwards()
        self._origins = self.options.origins()
        if authenticate is not None and not callable(authenticate):
            raise TypeError("authenticate must be an async function: (http_scope) -> None")
        self._authenticate = authenticate
        if not isinstance(metrics, bool) and not hasattr(metrics, "register"):
            raise TypeError("metrics must be True, False or a prometheus_client CollectorRegistry")
        if not isinstance(access_log, bool):
            raise TypeError(f"access_log must be True or False, got {access_log!r}")
        self._metrics = None if metrics is False else metrics_for(None if metrics is True else metrics)
        started = self._metrics.stream_started if self._metrics else None
        ended = self._metrics.stream_ended if self._metrics else None
        self.settings = StreamSettings.from_options(
            self.options,
            on_stream_start=chain(started, on_stream_start),
            on_stream_end=chain(ended, log_stream if access_log else None, on_stream_end),
        )
        self.active_streams = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket" or (
            self._passthrough is not None and self._passthrough(scope["path"])
        ):
            await self.app(scope, receive, send)  # HTTP, lifespan, and the app's own WebSocket routes
            return
        message = await receive()
        if message["type"] != "websocket.connect":
            return  # the client left before the handshake completed
        mux = offers_mux(scope)
        try:
            # On a mux socket each call asks for the status on its own (OPEN's "status").
            plan = self._plan(scope, report_status=not mux and offers_status(scope))
            if self._authenticate is not None:
                await authenticate_request(self._authenticate, plan.scope)
        except HandshakeRejected as exc:
            logger.debug("refused %s: %d %s", scope.get("path"), exc.status, exc.message)
            if self._metrics is not None:
                self._metrics.handshake_refused(exc.status)
            await _deny(scope, send, exc.status, exc.message)
            return
        limit = self.options.max_connections
        if limit is not None and self.active_streams >= limit:
            logger.info("refused %s: %d streams open, the limit", scope.get("path"), limit)
            if self._metrics is not None:
                self._metrics.handshake_refused(503)
            await _refuse_busy(scope, send)
            return
        self.active_streams += 1
        try:
            if mux:  # many calls on this socket: docs/protocol.md, "Multiplexing"
                await self._mux_session(scope, receive, send).run()
            else:
                await Stream(self.app, plan, self.settings, receive, send).run()
        finally:
            self.active_streams -= 1

    def _mux_session(self, scope: Scope, receive: Receive, send: Send) -> MuxSession:
        return MuxSession(
            scope,
            receive,
            send,
            plan_call=self._plan,
            run_stream=lambda plan, call_receive, call_send: run_stream(
                self.app, plan, self.settings, call_receive, call_send
            ),
            half_close=self.options.half_close_bytes(),
            max_calls=self.options.max_calls_per_socket,
            max_message_size=self.options.max_message_size,
            idle_timeout=self.options.idle_timeout,
            authenticate_call=self._authenticate_call if self._authenticate is not None else None,
        )

    async def _authenticate_call(self, request_scope: Scope) -> None:
        """`authenticate` for one call of a mux socket: the connection passed it, each call does too."""
        assert self._authenticate is not None
        await authenticate_request(self._authenticate, request_scope)

    def _plan(self, scope: Scope, *, report_status: bool = False) -> RequestPlan:
        plan = plan_request(
            scope, self.options, forwards=self._forwards, origins=self._origins, report_status=report_status
        )
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
        return dataclasses.replace(plan, scope=mutated)


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
