"""One call, one WebSocket: the single-socket client, built on `websockets`.

    async with connect("ws://host/v1/chat", method="POST", token=jwt) as call:
        await call.send({"text": "hi"})
        await call.close_send()          # the half-close: the request body ends
        async for reply in call:         # {"result": x} lines arrive as x
            ...

A call ends normally (close 1000) or raises a CallError subclass: HTTPStatusError for the app's
HTTP error status (close 4000 + status, with the error JSON that preceded it), StreamError for an
{"error": ...} line, and one class per transport outcome (1008, 1009, 1011, 1013, 1014, dropped).

By default the client offers the `wsproxy.status.v1` subprotocol: a proxy that selects it sends the
response's status and headers as a binary frame before the first line (`call.status`,
`call.headers`) and its trailers after the last (`call.trailers`); an error body then never reaches
the iteration. A proxy that selects another subprotocol gets today's decoding.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any, TypedDict
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from wsproxy._status import SUBPROTOCOL as STATUS_SUBPROTOCOL
from wsproxy.client._decoder import ResponseDecoder
from wsproxy.client._errors import CallError, ConnectError, HTTPStatusError
from wsproxy.client._response import ResponseStream, grpc_timeout

if TYPE_CHECKING:
    from typing_extensions import Unpack

DEFAULT_MAX_SIZE = 1024 * 1024


class ConnectOptions(TypedDict, total=False):
    """The keyword options `connect` and every helper accept."""

    token: str | None
    headers: dict[str, str] | None
    method: str | None
    raw: bool
    origin: str | None
    max_size: int | None
    open_timeout: float | None
    compression: bool
    timeout: float | None
    status: bool


class Call(ResponseStream):
    """One call: a request body you write message by message, and a response you iterate."""

    def __init__(self, websocket: ClientConnection, *, raw: bool = False) -> None:
        # Only a proxy that selected the status subprotocol sends control frames.
        super().__init__(ResponseDecoder(raw=raw, status=websocket.subprotocol == STATUS_SUBPROTOCOL))
        self._websocket = websocket
        self._send_closed = False
        # A bidi caller may iterate in one task while send() drains the outcome in another;
        # websockets allows one recv() at a time.
        self._receiving = asyncio.Lock()

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the proxy selected: "wsproxy.status.v1" when it speaks the status
        contract, else "Bearer" when a token was sent, else None."""
        return self._websocket.subprotocol

    async def send(self, message: Any) -> None:
        """Send one request message: str as text, bytes as binary, anything else as JSON.

        Raises:
            ValueError: the message is empty (that is the half-close: use close_send()).
            RuntimeError: close_send() was already called.
            CallError: the call had already ended; the error says how.
        """
        if self._send_closed:
            raise RuntimeError("send() after close_send(): the request body has already ended")
        data = encode_message(message)
        try:
            await self._websocket.send(data)
        except ConnectionClosed:
            # The server ended the call first; its outcome explains why better than "closed".
            while not self._ended:
                await self._advance()
            if self._error is not None:
                raise self._error from None
            raise CallError(
                "cannot send: the call has already ended", code=self.close_code, reason=self.close_reason
            ) from None

    async def close_send(self) -> None:
        """End the request body (an empty message) while still receiving the response."""
        if self._send_closed:
            return
        self._send_closed = True
        # Already closed: the outcome surfaces when the response is read.
        with contextlib.suppress(ConnectionClosed):
            await self._websocket.send("")

    async def close(self) -> None:
        """Abandon the call (close 1000); the app sees the client go away."""
        await self._websocket.close()

    async def _advance(self) -> None:
        """Take one frame into the ready messages, or record how the call ended."""
        async with self._receiving:
            if not self._ended:
                await self._receive_one()

    async def _receive_one(self) -> None:
        try:
            frame = await self._websocket.recv()
        except ConnectionClosed as closed:
            self._ended = True
            self.close_code, self.close_reason = close_of(closed)
            messages, self._error = self._decoder.close(self.close_code, self.close_reason)
            self._ready.extend(messages)
            return
        try:
            self._ready.extend(self._decoder.feed(frame))
        except CallError as error:  # an {"error": ...} line, or a broken status contract
            self._ended = True
            self._error = error


@contextlib.asynccontextmanager
async def connect(url: str, **options: Unpack[ConnectOptions]) -> AsyncIterator[Call]:
    """Open a call to `url` (ws://, wss://, http:// or https://).

    Args:
        token: sent as the "Bearer, <token>" subprotocol; the app sees "Authorization: Bearer <token>".
        headers: extra handshake headers (the proxy forwards only the ones it is configured to).
        method: the HTTP method of the request (adds ?method=); the proxy's default is GET.
        raw: iterate the response lines as received (str, or bytes when not UTF-8) instead of JSON.
        origin: the Origin header, for proxies that check it.
        max_size: the largest response line accepted (None: no limit); larger closes with 1009.
        open_timeout: seconds allowed for the handshake.
        compression: offer per-message deflate (default True); off saves CPU on small messages.
        timeout: the call's deadline in seconds, sent as ?grpc-timeout= (the service's deadline behind a
            gRPC gateway); the client waits at most that plus DEADLINE_GRACE_SECONDS for the call to
            end, then abandons it and raises DeadlineExceededError.
        status: offer the wsproxy.status.v1 subprotocol (default True): the call learns the status,
            headers and trailers, and an error body is never yielded. False: lines and close code only.

    Raises:
        HTTPStatusError: the server refused the handshake with an HTTP status (`code` is None).
        ConnectError: the connection could not be opened.
    """
    timeout = options.get("timeout")
    extra = (STATUS_SUBPROTOCOL,) if options.get("status", True) else ()
    websocket = await open_websocket(with_timeout(url, timeout), options, extra_subprotocols=extra)
    try:
        call = Call(websocket, raw=options.get("raw", False))
        call._start_deadline(timeout)
        yield call
    finally:
        await websocket.close()


async def unary(url: str, message: Any = None, **options: Unpack[ConnectOptions]) -> Any:
    """Send `message` (None: no message), half-close, and return the one response message."""
    async with connect(url, **options) as call:
        if message is not None:
            await call.send(message)
        await call.close_send()
        return await call.result()


async def server_stream(
    url: str, message: Any = None, **options: Unpack[ConnectOptions]
) -> AsyncIterator[Any]:
    """Send `message` (None: no message), half-close, and yield the response messages.

    Leaving the loop early leaves the connection to the generator's cleanup; wrap the call in
    contextlib.aclosing() to close it at once.
    """
    async with connect(url, **options) as call:
        if message is not None:
            await call.send(message)
        await call.close_send()
        async for item in call:
            yield item


async def client_stream(
    url: str, messages: Iterable[Any] | AsyncIterable[Any], **options: Unpack[ConnectOptions]
) -> Any:
    """Send every message, half-close, and return the one response message."""
    async with connect(url, **options) as call:
        if isinstance(messages, AsyncIterable):
            async for message in messages:
                await call.send(message)
        else:
            for message in messages:
                await call.send(message)
        await call.close_send()
        return await call.result()


def bidi(url: str, **options: Unpack[ConnectOptions]) -> contextlib.AbstractAsyncContextManager[Call]:
    """A bidirectional call: `async with bidi(url) as call:` then send and iterate at will."""
    return connect(url, **options)


def encode_message(message: Any) -> str | bytes:
    if isinstance(message, str):
        data: str | bytes = message
    elif isinstance(message, bytes | bytearray | memoryview):
        data = bytes(message)
    else:
        data = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    if not data:
        raise ValueError("an empty message is the half-close: call close_send() instead")
    return data


def with_method(url: str, method: str | None) -> str:
    """`url` with ws(s):// scheme and, when `method` is given, ?method=<method> set."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    query = parts.query
    if method is not None:
        pairs = [
            (name, value) for name, value in parse_qsl(query, keep_blank_values=True) if name != "method"
        ]
        query = urlencode([*pairs, ("method", method.upper())])
    return urlunsplit((scheme, parts.netloc, parts.path, query, parts.fragment))


def with_timeout(url: str, timeout: float | None) -> str:
    """`url` with ?grpc-timeout= set from `timeout` seconds (the proxy makes it the call's deadline)."""
    if timeout is None:
        return url
    parts = urlsplit(url)
    pairs = [
        (name, value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
        if name != "grpc-timeout"
    ]
    query = urlencode([*pairs, ("grpc-timeout", grpc_timeout(timeout))])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def close_of(closed: ConnectionClosed) -> tuple[int | None, str]:
    """The close code and reason that ended the call; None when no close frame was exchanged."""
    frame = closed.rcvd or closed.sent
    if frame is None:
        return None, ""
    return frame.code, frame.reason


async def open_websocket(
    url: str, options: ConnectOptions, *, extra_subprotocols: tuple[str, ...] = ()
) -> ClientConnection:
    """The handshake: the Bearer pair (and `extra_subprotocols`) offered, refusals as CallErrors."""
    token = options.get("token")
    offered = (["Bearer", token] if token else []) + list(extra_subprotocols)
    subprotocols = [Subprotocol(item) for item in offered] or None
    uri = with_method(url, options.get("method"))
    try:
        return await ws_connect(
            uri,
            subprotocols=subprotocols,
            additional_headers=options.get("headers"),
            origin=options.get("origin"),  # type: ignore[arg-type]
            max_size=options.get("max_size", DEFAULT_MAX_SIZE),
            open_timeout=options.get("open_timeout", 10.0),
            compression="deflate" if options.get("compression", True) else None,
        )
    except InvalidStatus as refused:
        response = refused.response
        raise HTTPStatusError(
            response.status_code, response.reason_phrase, _parse_body(bytes(response.body))
        ) from None
    except (InvalidHandshake, OSError, TimeoutError) as failed:
        raise ConnectError(f"cannot open a WebSocket to {uri}: {failed}") from None


def _parse_body(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body.decode(errors="replace")
