"""An ASGI app that forwards every HTTP request to a remote HTTP/1.1 server, full duplex.

Wrap it in `WebSocketProxyMiddleware` to serve a separately running REST gateway over
WebSocket; plain HTTP requests pass through the same app, so one process fronts the gateway.

    app = WebSocketProxyMiddleware(UpstreamApp("http://127.0.0.1:8081"))

The request body streams out while the response streams back: a response line reaches the
client as soon as the upstream writes it, even while the client is still sending. See
docs/upstream.md for the failure mapping (502/504 before the response starts, `UpstreamError`
after it started).
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import socket
import ssl
from collections.abc import Iterable
from urllib.parse import urlsplit

import h11

from wsproxy._h11_client import (
    ConnectionPool,
    ConnectTimeout,
    H11Connection,
    Origin,
    PoolTimeout,
    ReadTimeout,
)
from wsproxy._types import Message, Receive, Scope, Send
from wsproxy.errors import UpstreamError

__all__ = ["UpstreamApp"]

# RFC 9110 section 7.6.1: meaningful for one connection only, never forwarded.
HOP_BY_HOP_HEADERS = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Our own server already answered these for its client; forwarding them would repeat them.
REQUEST_ONLY_DROPPED = frozenset({b"host", b"expect", b"x-forwarded-proto", b"x-forwarded-host"})


class _ClientGone(Exception):
    """The downstream client disconnected; the exchange stops without a response."""


class _Failure(Exception):
    """The upstream failed before the response started: answered with `status` and a JSON body."""

    def __init__(self, status: int, error: str, reason: str) -> None:
        super().__init__(f"{error}: {reason}")
        self.status = status
        self.error = error
        self.reason = reason


class UpstreamApp:
    """Forward each HTTP request to `base_url` (http:// or https://, optional path prefix).

    Args:
        base_url: where requests go; the request path is appended to its path.
        connect_timeout: seconds to open a connection (and to wait for a free one when
            `max_connections` is reached); None waits forever.
        read_timeout: longest silence from the upstream, in seconds, while a response is
            awaited or streamed; None (the default) lets streams idle forever.
        max_connections: upstream connections in use at once; None means no cap. Each open
            stream holds one connection for its whole life.
        max_keepalive_connections: idle connections kept for reuse.
        keepalive_expiry: seconds an idle connection is kept.
        ssl_context: for https upstreams; defaults to the system's verified context.
    """

    def __init__(
        self,
        base_url: str,
        *,
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
        port = parts.port or (443 if parts.scheme == "https" else 80)
        self.base_url = base_url
        self.origin = Origin(parts.scheme, parts.hostname, port)
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
        self._pool: ConnectionPool | None = None

    async def aclose(self) -> None:
        """Close the idle upstream connections (connections in use close when their call ends)."""
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
        if self._pool is None:
            self._pool = ConnectionPool(
                self.origin,
                ssl_context=self._ssl_context,
                connect_timeout=self._connect_timeout,
                max_connections=self._max_connections,
                max_keepalive_connections=self._max_keepalive_connections,
                keepalive_expiry=self._keepalive_expiry,
            )
        try:
            conn = await self._pool.acquire()
        except (ConnectTimeout, PoolTimeout) as exc:
            await _send_failure(send, _failure_of(exc))
            return
        except OSError as exc:
            await _send_failure(send, _failure_of(exc))
            return
        exchange = _Exchange(conn, receive, send, self._read_timeout)
        try:
            await exchange.run(self._request_event(scope))
        finally:
            self._pool.release(conn)

    def _request_event(self, scope: Scope) -> h11.Request:
        target = self._prefix + (scope.get("raw_path") or scope["path"].encode())
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        return h11.Request(
            method=scope["method"],
            target=target,
            headers=forwarded_request_headers(scope, self.origin.netloc),
        )

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
    """One request/response over one connection: body out and response back at the same time."""

    def __init__(self, conn: H11Connection, receive: Receive, send: Send, read_timeout: float | None):
        self._conn = conn
        self._receive = receive
        self._send = send
        self._read_timeout = read_timeout
        self._response_started = False

    async def run(self, request: h11.Request) -> None:
        try:
            await self._conn.send(request)
        except OSError as exc:
            await _send_failure(self._send, _failure_of(exc))
            return
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
        broken_contract = None if upload.cancelled() else upload.exception()
        if broken_contract is not None:
            raise broken_contract  # the server broke the ASGI contract; not the upstream's fault
        if download.cancelled():
            return  # the client went away first; the unfinished connection gets closed
        failure = download.exception()
        if failure is None or isinstance(failure, _ClientGone):
            return
        if not isinstance(failure, (OSError, h11.ProtocolError, ReadTimeout)):
            raise failure
        if self._response_started:
            raise UpstreamError(f"upstream failed mid-response: {_describe(failure)}") from failure
        await _send_failure(self._send, _failure_of(failure))

    async def _upload(self) -> None:
        """Stream the request body out, then wait for the client's disconnect."""
        body_open = True
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                return
            if message["type"] != "http.request":
                raise RuntimeError(f'Expected ASGI message "http.request", but got {message["type"]!r}')
            if not body_open:
                continue
            try:
                if message.get("body"):
                    await self._conn.send(h11.Data(data=message["body"]))
                if not message.get("more_body", False):
                    body_open = False
                    await self._conn.send(h11.EndOfMessage())
            except (OSError, h11.LocalProtocolError):
                # The upstream stopped reading (it answered early, or died): the download
                # side reports which; the rest of the body is not wanted.
                body_open = False

    async def _download(self) -> None:
        while True:
            event = await self._conn.next_event(self._read_timeout)
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                headers = _response_headers(event.headers)
                await self._forward(
                    {"type": "http.response.start", "status": event.status_code, "headers": headers}
                )
                self._response_started = True
            elif isinstance(event, h11.Data):
                await self._forward(
                    {"type": "http.response.body", "body": bytes(event.data), "more_body": True}
                )
            elif isinstance(event, h11.EndOfMessage):
                await self._forward({"type": "http.response.body", "body": b"", "more_body": False})
                return
            else:  # ConnectionClosed (or PAUSED) before the response ended
                raise ConnectionResetError(errno.ECONNRESET, "upstream closed the connection")

    async def _forward(self, message: Message) -> None:
        try:
            await self._send(message)
        except OSError as exc:
            # Our own server refusing a message means the client is gone, not the upstream.
            raise _ClientGone from exc


def forwarded_request_headers(scope: Scope, upstream_netloc: str) -> list[tuple[bytes, bytes]]:
    """The client's headers minus hop-by-hop ones, with Host and X-Forwarded-* for the upstream."""
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    named_in_connection = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == b"connection"
        for token in value.split(b",")
    }
    dropped = HOP_BY_HOP_HEADERS | REQUEST_ONLY_DROPPED | named_in_connection
    out = [(b"host", upstream_netloc.encode())]
    forwarded_for: list[bytes] = []
    original_host = b""
    has_length = False
    for name, value in headers:
        lower = name.lower()
        if lower == b"host":
            original_host = value
        elif lower == b"x-forwarded-for":
            forwarded_for.append(value)
        elif lower == b"content-length":
            has_length = True
            out.append((lower, value))
        elif lower not in dropped:
            out.append((lower, value))
    client = scope.get("client")
    if client:
        chain = b", ".join(forwarded_for)
        last = chain.rsplit(b",", 1)[-1].strip()
        # uvicorn's proxy-headers support may already have made the last hop our client.
        if last != client[0].encode():
            chain = chain + b", " + client[0].encode() if chain else client[0].encode()
        out.append((b"x-forwarded-for", chain))
    elif forwarded_for:
        out.append((b"x-forwarded-for", b", ".join(forwarded_for)))
    scheme = str(scope.get("scheme", "http"))
    out.append((b"x-forwarded-proto", b"https" if scheme in ("https", "wss") else b"http"))
    if original_host:
        out.append((b"x-forwarded-host", original_host))
    if not has_length:
        # The body's length is unknown up front (a WebSocket stream has no end yet).
        out.append((b"transfer-encoding", b"chunked"))
    return out


def _response_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    headers = list(headers)
    named_in_connection = {
        token.strip().lower()
        for name, value in headers
        if name == b"connection"
        for token in value.split(b",")
    }
    dropped = HOP_BY_HOP_HEADERS | named_in_connection
    return [(name, value) for name, value in headers if name not in dropped]


def _failure_of(exc: BaseException) -> _Failure:
    if isinstance(exc, ConnectTimeout):
        return _Failure(504, "upstream timeout", "connect timed out")
    if isinstance(exc, ReadTimeout):
        return _Failure(504, "upstream timeout", "no response in time")
    if isinstance(exc, PoolTimeout):
        return _Failure(503, "upstream busy", "all upstream connections are in use")
    if isinstance(exc, OSError):
        return _Failure(502, "upstream unreachable", _describe(exc))
    return _Failure(502, "bad upstream response", _describe(exc))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ReadTimeout):
        return "read timed out"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({exc.reason or exc.strerror})"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the upstream host ({exc.strerror})"
    if isinstance(exc, OSError) and exc.errno:
        # asyncio's own strerror names the address ("Connect call failed (...)"); the errno's is enough.
        return os.strerror(exc.errno)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, h11.RemoteProtocolError):
        return f"invalid HTTP from upstream ({exc})"
    return str(exc) or type(exc).__name__


async def _send_failure(send: Send, failure: _Failure) -> None:
    body = json.dumps({"error": failure.error, "reason": failure.reason}).encode()
    start: Message = {
        "type": "http.response.start",
        "status": failure.status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": False})
