"""An ASGI app that forwards every HTTP request to a remote HTTP/1.1 or HTTP/2 server, full duplex.

Wrap it in `WebSocketProxyMiddleware` to serve a separately running REST gateway over
WebSocket; plain HTTP requests pass through the same app, so one process fronts the gateway.

    app = WebSocketProxyMiddleware(UpstreamApp("http://127.0.0.1:8081"))

The request body streams out while the response streams back: a response line reaches the
client as soon as the upstream writes it, even while the client is still sending. How the body is
framed (none for GET/HEAD, `Connection: close` for open HTTP/1.1 bodies so Go's server answers at
once) is decided in `_request`; the transports are `_h11` and `_h2`, pooled by `_pool`.
Failures reach the client as one of the fixed messages in `_errors`
(502/503/504 JSON before the response starts, `UpstreamError` after it); details go to the log.
See docs/upstream.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from urllib.parse import urlsplit

from wsproxy._types import Message, Receive, Scope, Send
from wsproxy.errors import RequestBodyNotAllowed, UpstreamError
from wsproxy.stream._budget import PUMP_MESSAGES, TurnBudget
from wsproxy.upstream._call import ResponseHead, UpstreamCall
from wsproxy.upstream._errors import (
    ClosedEarly,
    ConnectTimeout,
    Failure,
    MalformedResponse,
    PoolTimeout,
    ReadTimeout,
    StreamReset,
    failure_of,
)
from wsproxy.upstream._pool import HTTP_VERSIONS, HttpVersion, Origin, UpstreamPool
from wsproxy.upstream._request import (
    Framing,
    forwarded_request_headers,
    framing_of,
    http1_framing_headers,
    response_headers,
)

__all__ = ["HTTP_VERSIONS", "HttpVersion", "UpstreamApp", "forwarded_request_headers"]

logger = logging.getLogger("wsproxy.upstream")

# Each pump charges a turn budget of PUMP_MESSAGES messages (wsproxy/stream/_budget.py), so one busy
# stream (data always ready on its socket, a server `send`/`receive` that does not yield) cannot
# starve the others. A message is at most one read (64 KiB) over HTTP/1.1, one DATA frame over HTTP/2.

_TRANSPORT_ERRORS = (OSError, ReadTimeout, ClosedEarly, StreamReset, MalformedResponse)


class _ClientGone(Exception):
    """The downstream client disconnected; the exchange stops without a response."""


class UpstreamApp:
    """Forward each HTTP request to `base_url` (http:// or https://, optional path prefix).

    Args:
        base_url: where requests go; the request path is appended to its path.
        http_version: "auto" (HTTP/1.1 for http://, HTTP/2 or 1.1 by ALPN for https://), "1.1",
            or "2" (h2c with prior knowledge for http://, ALPN h2 required for https://).
        connect_timeout: seconds to open a connection (and to wait for a free one, or a free
            HTTP/2 stream, when `max_connections` is reached); None waits forever.
        read_timeout: longest silence from the upstream, in seconds, while a response is
            awaited or streamed; None (the default) lets streams idle forever.
        max_connections: upstream connections at once; None means no cap. Over HTTP/1.1 each
            open stream holds one connection; over HTTP/2 streams share connections.
        max_keepalive_connections: idle HTTP/1.1 connections kept for reuse.
        keepalive_expiry: seconds an idle connection is kept.
        ssl_context: for https upstreams; defaults to the system's verified context. Its ALPN
            protocols are set from `http_version`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        http_version: HttpVersion = "auto",
        connect_timeout: float | None = 10.0,
        read_timeout: float | None = None,
        max_connections: int | None = None,
        max_keepalive_connections: int = 20,
        keepalive_expiry: float = 4.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"upstream must be an http:// or https:// URL, got {base_url!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"upstream URL must not have a query or fragment, got {base_url!r}")
        if max_connections is not None and max_connections < 1:
            raise ValueError(f"max_connections must be positive or None, got {max_connections!r}")
        if http_version not in HTTP_VERSIONS:
            raise ValueError(f"http_version must be one of {HTTP_VERSIONS}, got {http_version!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        self.base_url = base_url
        self.origin = Origin(parts.scheme, parts.hostname, port)
        self.http_version: HttpVersion = http_version
        self._prefix = parts.path.rstrip("/").encode()
        self._read_timeout = read_timeout
        if parts.scheme == "https" and ssl_context is None:
            ssl_context = ssl.create_default_context()
        self._ssl_context = ssl_context if parts.scheme == "https" else None
        self._connect_timeout = connect_timeout
        self._max_connections = max_connections
        self._max_keepalive_connections = max_keepalive_connections
        self._keepalive_expiry = keepalive_expiry
        # Created on first use, inside the server's event loop.
        self._pool: UpstreamPool | None = None

    @property
    def pool(self) -> UpstreamPool:
        if self._pool is None:
            self._pool = UpstreamPool(
                self.origin,
                ssl_context=self._ssl_context,
                http_version=self.http_version,
                connect_timeout=self._connect_timeout,
                max_connections=self._max_connections,
                max_keepalive_connections=self._max_keepalive_connections,
                keepalive_expiry=self._keepalive_expiry,
            )
        return self._pool

    async def aclose(self) -> None:
        """Close the idle upstream connections (and HTTP/2 connections with their streams)."""
        if self._pool is not None:
            await self._pool.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            raise RuntimeError(
                f"UpstreamApp serves HTTP only, got scope type {scope['type']!r}; "
                "wrap it in WebSocketProxyMiddleware for WebSockets"
            )
        method: str = scope["method"]
        headers = forwarded_request_headers(scope, self.origin.netloc)
        framing = framing_of(method, scope["headers"])
        target = self._prefix + (scope.get("raw_path") or scope["path"].encode())
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        bodyless = framing is Framing.BODYLESS
        try:
            # HTTP/2 ignores the HTTP/1.1 framing headers (it frames bodies itself).
            call = await self.pool.open_call(
                method, target, headers + http1_framing_headers(framing), bodyless=bodyless
            )
        except (ConnectTimeout, PoolTimeout, *_TRANSPORT_ERRORS) as exc:
            await _send_failure(send, exc, scope)
            return
        try:
            await _Exchange(call, receive, send, self._read_timeout, scope, bodyless=bodyless).run()
        finally:
            call.release()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


class _Exchange:
    """One request/response over one call: body out and response back at the same time."""

    def __init__(
        self,
        call: UpstreamCall,
        receive: Receive,
        send: Send,
        read_timeout: float | None,
        scope: Scope,
        *,
        bodyless: bool,
    ) -> None:
        self._call = call
        self._receive = receive
        self._send = send
        self._read_timeout = read_timeout
        self._scope = scope
        self._bodyless = bodyless
        self._response_started = False

    async def run(self) -> None:
        upload = asyncio.ensure_future(self._upload())
        download = asyncio.ensure_future(self._download())
        try:
            await asyncio.wait({upload, download}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # The upload never ends by itself while the download runs: after the body it
            # waits for the client's disconnect. So whichever finished, the other stops now.
            upload.cancel()
            download.cancel()
            await asyncio.gather(upload, download, return_exceptions=True)
        client_error = None if upload.cancelled() else upload.exception()
        if client_error is not None:
            raise client_error  # a body on a GET, or the server broke the ASGI contract
        if download.cancelled():
            return  # the client went away first; the unfinished call gets closed
        failure = download.exception()
        if failure is None or isinstance(failure, _ClientGone):
            return
        if not isinstance(failure, _TRANSPORT_ERRORS):
            raise failure
        if self._response_started:
            message = failure_of(failure).reason
            logger.warning("upstream failed mid-response on %s: %r", self._scope.get("path"), failure)
            raise UpstreamError(f"upstream failed mid-response: {message}") from failure
        await _send_failure(self._send, failure, self._scope)

    async def _upload(self) -> None:
        """Stream the request body out, then wait for the client's disconnect."""
        body_open = not self._bodyless
        budget = TurnBudget(PUMP_MESSAGES)
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                return
            if message["type"] != "http.request":
                raise RuntimeError(f'Expected ASGI message "http.request", but got {message["type"]!r}')
            body = message.get("body", b"")
            if self._bodyless and body:
                raise RequestBodyNotAllowed(f"{self._scope['method']} takes no request body")
            if body_open:
                try:
                    if message.get("more_body", False):
                        if body:
                            await self._call.send_body(body)
                    else:
                        body_open = False
                        await (self._call.finish_body(body) if body else self._call.end_body())
                except _TRANSPORT_ERRORS:
                    # The upstream stopped reading (it answered early, or died): the download
                    # side reports which; the rest of the body is not wanted.
                    body_open = False
            if budget.take(len(body)):
                await asyncio.sleep(0)

    async def _download(self) -> None:
        budget = TurnBudget(PUMP_MESSAGES)
        while True:
            event = await self._call.next_event(self._read_timeout)
            if isinstance(event, ResponseHead):
                message: Message = {
                    "type": "http.response.start",
                    "status": event.status,
                    "headers": response_headers(event.headers),
                }
                await self._forward(message)
                self._response_started = True
                size = 0
            elif event is None:
                await self._forward({"type": "http.response.body", "body": b"", "more_body": False})
                return
            else:
                await self._forward({"type": "http.response.body", "body": event, "more_body": True})
                size = len(event)
            if budget.take(size):  # every message sent on counts, the response head included
                await asyncio.sleep(0)

    async def _forward(self, message: Message) -> None:
        try:
            await self._send(message)
        except OSError as exc:
            # Our own server refusing a message means the client is gone, not the upstream.
            raise _ClientGone from exc


async def _send_failure(send: Send, exc: BaseException, scope: Scope) -> None:
    failure: Failure = failure_of(exc)
    logger.warning(
        "upstream failure on %s %s -> %d %s: %r",
        scope.get("method"),
        scope.get("path"),
        failure.status,
        failure.reason,
        exc,
    )
    body = json.dumps({"error": failure.error, "reason": failure.reason}).encode()
    start: Message = {
        "type": "http.response.start",
        "status": failure.status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": False})
