"""The promise table: every number and rule the docs promise, each pinned against a real uvicorn.

Each row is marked with `@promise(doc, quote)`: the doc file and the words it promises. Numbers are
literals copied from those words, never the code's own constants, so raising a limit in the code turns
a row red, and a doc change that changes a promise must change this table (the last test checks that
every quote is still in its doc). Every row runs on each uvicorn WebSocket implementation (ws_impl).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import parse_qsl

import httpx
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.support.servers import Running, bind_loopback, drain, serve
from tests.support.upstream_apps import Process, proxying, upstream_process
from wsproxy import ClientDisconnected, HandshakeRejected, UpstreamApp, WebSocketProxyMiddleware
from wsproxy._types import ASGIApp, Message, Receive, Scope, Send

DOCS = Path(__file__).resolve().parents[2] / "docs"

# The documented numbers, as the docs write them.
KIB, MIB = 1024, 1024 * 1024
READ_AHEAD = 64 * KIB  # protocol.md §2, reliability.md
DEFAULT_MAX_MESSAGE = 1 * MIB  # protocol.md §2, options.md, security.md
DEFAULT_MAX_LINE = 1 * MIB  # protocol.md §4, options.md, security.md
MAX_REASON_BYTES = 123  # protocol.md §5
TICK = 1.0  # protocol.md "within about a second otherwise (the stream's tick)"
GRACE = 1.0  # protocol.md "if it has not finished a second later it is cancelled"
# Timing bounds: a timer never fires early (a little clock slack aside); a loaded machine delays it.
EARLY, LATE = 0.05, 0.8

F = TypeVar("F", bound=Callable[..., Any])


def promise(doc: str, quote: str) -> Callable[[F], F]:
    """Mark a test as the row that pins `quote` from docs/`doc`."""

    def mark(test: F) -> F:
        promises = list(getattr(test, "promises", []))
        test.promises = [*promises, (doc, quote)]  # type: ignore[attr-defined]
        return test

    return mark


# One app whose routes are the shapes of call the promises speak of. It records what it saw.


@dataclass
class Seen:
    scopes: list[Scope] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    times: dict[str, float] = field(default_factory=dict)  # event name -> loop time
    outcome: str = ""
    raised: BaseException | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)  # lets /deaf read on
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)

    def mark(self, name: str) -> None:
        self.times[name] = asyncio.get_running_loop().time()


async def _start(send: Send, status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status, "headers": []})


async def _line(send: Send, data: bytes, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": data + b"\n", "more_body": more})


async def _read_body(seen: Seen, receive: Receive) -> bool:
    """Read to the end of the body; False if the client left first."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            seen.mark("disconnect")
            seen.disconnected.set()
            return False
        seen.bodies.append(message.get("body", b""))
        if not message.get("more_body", False):
            return True


def routes_app(seen: Seen) -> ASGIApp:
    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        path, query = scope["path"], dict(parse_qsl(scope["query_string"].decode()))
        if path == "/echo":  # each body line straight back
            await _start(send)
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    seen.mark("disconnect")
                    seen.disconnected.set()
                    await asyncio.Event().wait()  # deaf to it: only the grace period ends this call
                if message.get("body"):
                    await send({"type": "http.response.body", "body": message["body"], "more_body": True})
                if not message.get("more_body", False):
                    break
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        elif path == "/deaf":  # reads one message, then nothing until released
            message = await receive()
            seen.bodies.append(message.get("body", b""))
            await seen.release.wait()
            await _read_body(seen, receive)
            await _start(send)
            await _line(send, b'{"messages": %d}' % len(seen.bodies), more=False)
        elif path == "/busy":  # answers one line, then neither reads nor writes
            await _start(send)
            await _line(send, b'{"ready": true}')
            await asyncio.Event().wait()
        elif path == "/stream":  # writes until its send raises
            await _start(send)
            while True:
                await _line(send, b'{"tick": true}')
                await asyncio.sleep(0.01)
        elif path == "/big":
            await _start(send)
            await _line(send, b"x" * int(query["size"]), more=False)
        elif path == "/status":
            await _start(send, int(query["code"]))
            await _line(send, b'{"code": 5, "message": "not found"}', more=False)
        elif path == "/raise":
            await _start(send)
            await _line(send, b'{"partial": true}')
            raise RuntimeError("secret detail /etc/passwd")
        elif path == "/no-response":
            return
        elif path == "/incomplete":
            await _start(send)
            await _line(send, b'{"partial": true}')
        elif path == "/background":  # a complete response, then work beyond the grace period
            await _start(send)
            await _line(send, b'{"done": true}', more=False)
            await asyncio.sleep(GRACE + 0.5)
        elif path == "/headers":
            await _start(send)
            headers = sorted(name.decode() for name, _ in scope["headers"])
            await _line(send, json.dumps(headers).encode(), more=False)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        seen.scopes.append(scope)
        seen.mark("called")
        try:
            await route(scope, receive, send)
        except asyncio.CancelledError:
            seen.outcome = "cancelled"
            seen.mark("cancelled")
            raise
        except BaseException as exc:
            seen.outcome, seen.raised = "raised", exc
            raise
        else:
            seen.outcome = "returned"
        finally:
            seen.done.set()

    return app


def without_denial_extension(app: ASGIApp) -> ASGIApp:
    """The middleware as a server without `websocket.http.response` would run it.

    Every server installed here offers the extension (uvicorn's three implementations, hypercorn),
    so the real uvicorn runs with the extension taken out of the scope: what goes on the wire
    is then the server's own answer to accept + close, or to a close before accept.
    """

    async def hidden(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            extensions = dict(scope.get("extensions") or {})
            extensions.pop("websocket.http.response", None)
            scope = {**scope, "extensions": extensions}
        await app(scope, receive, send)

    return hidden


@dataclass
class Live:
    running: Running
    proxy: WebSocketProxyMiddleware
    seen: Seen

    def connect(self, target: str, **kwargs: Any) -> connect:
        kwargs.setdefault("max_size", None)
        kwargs.setdefault("ping_interval", None)
        return connect(self.running.ws + target, **kwargs)


@pytest.fixture
async def live(ws_impl: str, request: pytest.FixtureRequest) -> AsyncIterator[Live]:
    """The routes behind the middleware on a real uvicorn; options from indirect parametrization."""
    options: dict[str, Any] = dict(getattr(request, "param", {}))
    seen = Seen()
    proxy = WebSocketProxyMiddleware(routes_app(seen), **options)
    async with serve(proxy, ws=ws_impl) as running:
        yield Live(running, proxy, seen)


def vanish(ws: ClientConnection) -> float:
    """Drop the connection with a TCP reset, no close frame; return the loop time it happened."""
    sock = ws.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.transport.abort()
    return asyncio.get_running_loop().time()


async def finished(seen: Seen, timeout: float = 10.0) -> None:
    await asyncio.wait_for(seen.done.wait(), timeout)


def assert_clean_reason(reason: str | None) -> None:
    assert len((reason or "").encode()) <= MAX_REASON_BYTES
    assert "secret" not in (reason or "")


# 1. The read-ahead bound.


@promise("protocol.md", "While the app does not read, at most 64 KiB (plus one message) is read ahead.")
@promise(
    "reliability.md",
    "at most 64 KiB (plus one message) is read ahead, then the server stops reading the socket",
)
async def test_read_ahead_is_at_most_64_kib_plus_one_message(ws_impl: str) -> None:
    size, count = 16 * KIB, 100
    seen = Seen()
    proxy = WebSocketProxyMiddleware(routes_app(seen))
    pulled = 0
    bound_reached = asyncio.Event()
    most_ahead = READ_AHEAD // size + 1  # whole messages that fit, plus the one that crosses the bound

    async def counting(scope: Scope, receive: Receive, send: Send) -> None:
        async def counted() -> Message:
            nonlocal pulled
            message = await receive()
            if message["type"] == "websocket.receive":
                pulled += 1
                if pulled >= 1 + most_ahead:
                    bound_reached.set()
            return message

        await proxy(scope, counted, send)

    async with (
        serve(counting, ws=ws_impl) as running,
        connect(running.ws + "/deaf?method=POST", max_size=None) as ws,
    ):

        async def flood() -> None:
            for i in range(count):
                await ws.send(str(i).ljust(size))
            await ws.send("")

        sender = asyncio.create_task(flood())
        await asyncio.wait_for(bound_reached.wait(), TICK + 10)
        # The bound is reached: no further message may be taken from the socket, tick after tick.
        await asyncio.sleep(TICK + 0.5)
        ahead = pulled - 1  # the app's own read is not read-ahead
        assert READ_AHEAD < ahead * size <= READ_AHEAD + size, f"{ahead} messages of {size} B read ahead"
        seen.release.set()
        frames, code, _ = await drain(ws)
        await sender
    assert (frames, code) == ([json.dumps({"messages": count + 1})], 1000)  # and the half-close
    assert [body.rstrip().decode() for body in seen.bodies[:count]] == [str(i) for i in range(count)]


# 2. The default size limits.


@promise("protocol.md", "A message over `max_message_size` (default 1 MiB) closes the stream with 1009.")
@promise(
    "security.md",
    "The size limits are on by default (`max_message_size` and `max_line_size`, 1 MiB each, close 1009).",
)
async def test_the_default_message_limit_is_1_mib(live: Live) -> None:
    async with live.connect("/echo?method=POST") as ws:
        await ws.send(b"m" * DEFAULT_MAX_MESSAGE)
        assert await ws.recv() == "m" * DEFAULT_MAX_MESSAGE
        await ws.send(b"m" * (DEFAULT_MAX_MESSAGE + 1))
        frames, code, reason = await drain(ws)
    assert (frames, code, reason) == ([], 1009, "message too big")


@promise("protocol.md", "A line over `max_line_size` (default 1 MiB) closes the stream with 1009.")
async def test_the_default_line_limit_is_1_mib(live: Live) -> None:
    async with live.connect(f"/big?size={DEFAULT_MAX_LINE}") as ws:
        frames, code, _ = await drain(ws)
    assert (len(frames[0]), code) == (DEFAULT_MAX_LINE, 1000)
    async with live.connect(f"/big?size={DEFAULT_MAX_LINE + 1}") as ws:
        assert await drain(ws) == ([], 1009, "response line too big")


# 3. Every close code of the table, on the wire.


async def _half_close(ws: ClientConnection) -> None:
    await ws.send("one")
    assert await ws.recv() == "one"
    await ws.send("")


async def _nothing(ws: ClientConnection) -> None:
    return None


async def _late_message(ws: ClientConnection) -> None:
    await ws.send("")
    await ws.send("after the end")


async def _one_message(ws: ClientConnection) -> None:
    await ws.send("on a call without a body")


async def _too_big(ws: ClientConnection) -> None:
    await ws.send("b" * 101)


CLOSES: dict[
    str, tuple[str, dict[str, Any], Callable[[ClientConnection], Awaitable[None]], int, str | None]
] = {
    # name: (target, options, what the client does, code, reason or None where the docs name none)
    "1000": ("/echo?method=POST", {}, _half_close, 1000, ""),
    "4404": ("/status?code=404", {}, _nothing, 4404, "Not Found"),
    "4503": ("/status?code=503", {}, _nothing, 4503, "Service Unavailable"),
    "4401": ("/status?code=401", {}, _nothing, 4401, "Unauthorized"),
    "1001-idle": ("/busy", {"idle_timeout": 1}, _nothing, 1001, "idle timeout"),
    "1008": ("/busy?method=POST", {}, _late_message, 1008, "message after end of request body"),
    "1008-get": ("/busy", {}, _one_message, 1008, "message after end of request body"),
    "1009-message": ("/echo?method=POST", {"max_message_size": 100}, _too_big, 1009, "message too big"),
    "1009-line": ("/big?size=101", {"max_line_size": 100}, _nothing, 1009, "response line too big"),
    "1011-raised": ("/raise", {}, _nothing, 1011, "internal error"),
    "1011-no-response": ("/no-response", {}, _nothing, 1011, None),
    "1011-incomplete": ("/incomplete", {}, _nothing, 1011, None),
}


@promise("protocol.md", "| 1000 | the app answered 2xx and finished | every line of the response |")
@promise("protocol.md", "| 4000 + status | the app answered HTTP `status` (not 2xx)")
@promise("protocol.md", "| 1001 | idle timeout (option `idle_timeout`)")
@promise("protocol.md", "| 1008 | a message after the half-close, or any message on a GET or HEAD call")
@promise(
    "protocol.md",
    "| 1009 | a message over `max_message_size`, or a response line over `max_line_size` | lines before it |",
)
@promise(
    "protocol.md",
    "| 1011 | the app raised, sent no response, or stopped mid-response; the exception text is kept out of the reason",
)
@promise(
    "protocol.md", "The close reason is at most 123 bytes and never contains exception text or the token."
)
@pytest.mark.parametrize("case", list(CLOSES))
async def test_every_close_code_of_the_table(ws_impl: str, case: str) -> None:
    target, options, act, code, reason = CLOSES[case]
    seen = Seen()
    async with (
        serve(WebSocketProxyMiddleware(routes_app(seen), **options), ws=ws_impl) as running,
        connect(running.ws + target, ping_interval=None) as ws,
    ):
        await act(ws)
        frames, got_code, got_reason = await drain(ws)
    assert got_code == code
    if reason is not None:
        assert got_reason == reason
    assert_clean_reason(got_reason)
    if case.startswith("4"):
        assert frames == ['{"code": 5, "message": "not found"}']  # the body lines come first
    if case in ("1011-raised", "1011-incomplete"):
        assert frames == ['{"partial": true}']


@promise("protocol.md", "| 1012 | the server is restarting (uvicorn's shutdown) | |")
async def test_1012_when_uvicorn_shuts_down(ws_impl: str) -> None:
    seen = Seen()
    sock = bind_loopback()
    config = uvicorn.Config(
        cast(Any, WebSocketProxyMiddleware(routes_app(seen))), ws=ws_impl, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not task.done(), "uvicorn did not start"
            await asyncio.sleep(0.01)
        port = sock.getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/echo?method=POST", ping_interval=None) as ws:
            await ws.send("one")
            assert await ws.recv() == "one"
            server.should_exit = True  # a graceful shutdown, as on SIGTERM
            _, code, reason = await drain(ws)
        assert code == 1012
        assert_clean_reason(reason)
        await asyncio.wait_for(task, 15)
    finally:
        server.force_exit = server.should_exit = True
        with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
            await asyncio.wait_for(task, 10)
        sock.close()


@promise("protocol.md", "| 1013 | too many connections (servers without the denial extension) | |")
@promise("reliability.md", "otherwise accept, then close `1013 too many connections`")
async def test_1013_over_max_connections_on_a_server_without_the_denial_extension(ws_impl: str) -> None:
    seen = Seen()
    proxy = WebSocketProxyMiddleware(routes_app(seen), max_connections=1)
    async with serve(without_denial_extension(proxy), ws=ws_impl) as running:
        async with connect(running.ws + "/busy", ping_interval=None) as first:
            assert await first.recv() == '{"ready": true}'
            async with connect(running.ws + "/busy", ping_interval=None) as over:
                assert await drain(over) == ([], 1013, "too many connections")
        assert len(seen.scopes) == 1  # the app never ran for the refused one


@promise("protocol.md", "| 1014 | bad gateway: a remote upstream failed mid-stream")
async def test_1014_when_the_remote_upstream_dies_mid_stream(ws_impl: str) -> None:
    with upstream_process() as upstream:
        proxy = WebSocketProxyMiddleware(UpstreamApp(upstream.http))
        async with (
            proxying(proxy, ws=ws_impl) as running,
            connect(running.ws + "/forever", ping_interval=None, open_timeout=30) as ws,
        ):
            assert json.loads(await ws.recv()) == {"n": 0}
            upstream.kill()
            frames, code, reason = await drain(ws)
    assert (frames, code, reason) == ([], 1014, "bad gateway")


@promise("protocol.md", "on such a call closes it with **1008 `message after end of request body`**")
@promise("upstream.md", "closes the call with **`1008 message after end of request body`**")
async def test_1008_for_a_message_on_a_get_call_through_upstream_app(upstream: Process, ws_impl: str) -> None:
    proxy = WebSocketProxyMiddleware(UpstreamApp(upstream.http))
    async with (
        proxying(proxy, ws=ws_impl) as running,
        connect(running.ws + "/forever", ping_interval=None, open_timeout=30) as ws,
    ):
        assert json.loads(await ws.recv()) == {"n": 0}
        await ws.send('{"n": 1}')
        frames, code, reason = await drain(ws)
    assert (frames, code, reason) == ([], 1008, "message after end of request body")


# 4. Every refusal status of docs/protocol.md, before any app code.


def _mutator_raises(ws_scope: Scope, http_scope: Scope) -> Scope:
    raise KeyError("secret detail of the mutator")


def _mutator_refuses(ws_scope: Scope, http_scope: Scope) -> Scope:
    raise HandshakeRejected(401, "sign in first")


REFUSALS: dict[str, tuple[str, dict[str, Any], dict[str, Any], int, str]] = {
    # name: (target, connect keyword arguments, middleware options, status, error)
    "malformed-method": ("/echo?method=G%20T", {}, {}, 400, "invalid method override"),
    "unknown-methodType": ("/echo?methodType=Sometimes", {}, {}, 400, "invalid methodType: use Unary, ServerStreaming, ClientStreaming or BidiStreaming"),
    "malformed-grpc-timeout": ("/echo?grpc-timeout=1.5S", {}, {}, 400, "invalid grpc-timeout: 1-8 digits and a unit (H, M, S, m, u, n)"),
    "bearer-without-token": ("/echo", {"subprotocols": ["Bearer"]}, {}, 400, "Bearer subprotocol without a token"),
    "malformed-token": ("/echo", {"additional_headers": {"Cookie": "token=a%0Db"}}, {}, 400, "malformed bearer token"),
    "foreign-origin": ("/echo", {"origin": "https://evil.example"}, {"allowed_origins": ["https://app.example"]}, 403, "origin not allowed"),
    "mutator-raised": ("/echo", {}, {"request_mutator": _mutator_raises}, 500, "internal error"),
    "mutator-refused": ("/echo", {}, {"request_mutator": _mutator_refuses}, 401, "sign in first"),
}  # fmt: skip


@promise(
    "protocol.md",
    "| 400 | malformed `method`, unknown `methodType`, malformed `grpc-timeout`, `Bearer` subprotocol without a token, malformed token |",
)
@promise("protocol.md", "| 403 | `Origin` not in `allowed_origins` (no app code ran, no cookie was read) |")
@promise("protocol.md", "| 500 | the `request_mutator` raised |")
@promise("options.md", "raise `wsproxy.HandshakeRejected(status, message)` to refuse")
@promise(
    "protocol.md",
    'The proxy refuses before accepting, with an HTTP status and a JSON body `{"error": "...", "status": N}`',
)
@pytest.mark.parametrize("case", list(REFUSALS))
async def test_every_refusal_status(ws_impl: str, case: str) -> None:
    target, kwargs, options, status, error = REFUSALS[case]
    seen = Seen()
    async with serve(WebSocketProxyMiddleware(routes_app(seen), **options), ws=ws_impl) as running:
        with pytest.raises(InvalidStatus) as info:
            async with connect(running.ws + target, **kwargs):
                pass
    response = info.value.response
    assert response.status_code == status
    assert json.loads(response.body or b"") == {"error": error, "status": status}
    assert b"secret" not in (response.body or b"")
    assert seen.scopes == []  # no app code ran


@promise(
    "protocol.md",
    "| 503 | `max_connections` streams already open (servers without the extension: accepted, then closed 1013) |",
)
async def test_503_over_max_connections(ws_impl: str) -> None:
    seen = Seen()
    proxy = WebSocketProxyMiddleware(routes_app(seen), max_connections=1)
    async with (
        serve(proxy, ws=ws_impl) as running,
        connect(running.ws + "/busy", ping_interval=None) as first,
    ):
        assert await first.recv() == '{"ready": true}'
        with pytest.raises(InvalidStatus) as info:
            async with connect(running.ws + "/busy"):
                pass
    assert info.value.response.status_code == 503
    assert json.loads(info.value.response.body or b"") == {"error": "too many connections", "status": 503}
    assert len(seen.scopes) == 1


@promise("protocol.md", "other servers answer 403 with no body")
@pytest.mark.parametrize("target", ["/echo?method=G%20T", "/echo?methodType=Sometimes"])
async def test_a_server_without_the_denial_extension_answers_a_refusal_403(ws_impl: str, target: str) -> None:
    seen = Seen()
    async with serve(
        without_denial_extension(WebSocketProxyMiddleware(routes_app(seen))), ws=ws_impl
    ) as running:
        with pytest.raises(InvalidStatus) as info:
            async with connect(running.ws + target):
                pass
    assert info.value.response.status_code == 403
    assert seen.scopes == []


async def _authenticate_refuses_at_length(scope: Scope) -> None:
    raise HandshakeRejected(401, "t" * 300)


async def _authenticate_fails(scope: Scope) -> None:
    raise LookupError("secret detail of the hook")


async def _authenticate_sets_a_bad_header(scope: Scope) -> None:
    scope["headers"].append((b"x-user", b"a\r\nInjected: 1"))


AUTH_REFUSALS: dict[str, tuple[Any, int, str]] = {
    "refused": (_authenticate_refuses_at_length, 401, "t" * 200),
    "failed": (_authenticate_fails, 500, "internal error"),
    "bad-header": (_authenticate_sets_a_bad_header, 500, "internal error"),
}


@promise("operations.md", 'The client gets that status and `{"error": message, "status": status}` as JSON')
@promise("operations.md", "The status must be 4xx or 5xx; the message is cut at 200 characters.")
@promise(
    "operations.md",
    "Headers the hook leaves are checked (token names, no line breaks or NUL): a bad one is a 500.",
)
@promise("operations.md", 'the client gets a plain 500 `{"error": "internal error", "status": 500}`')
@pytest.mark.parametrize("case", list(AUTH_REFUSALS))
async def test_the_authenticate_hook_refuses_with_its_status_or_500(ws_impl: str, case: str) -> None:
    hook, status, error = AUTH_REFUSALS[case]
    seen = Seen()
    async with serve(WebSocketProxyMiddleware(routes_app(seen), authenticate=hook), ws=ws_impl) as running:
        with pytest.raises(InvalidStatus) as info:
            async with connect(running.ws + "/echo"):
                pass
    assert info.value.response.status_code == status
    assert json.loads(info.value.response.body or b"") == {"error": error, "status": status}
    assert b"secret" not in (info.value.response.body or b"")
    assert seen.scopes == []


@promise(
    "operations.md",
    "The W3C trace context headers `traceparent`, `tracestate` and `baggage` are in the default `forwarded_headers`",
)
@promise(
    "protocol.md",
    "Headers: only `Host`, `Origin`, `Referer` and the trace context (`traceparent`, `tracestate`, `baggage`) "
    "reach the app by default (option `forwarded_headers`)",
)
async def test_the_default_allowlist(live: Live) -> None:
    trace = {
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "tracestate": "vendor=1",
        "baggage": "user=7",
        "Referer": "https://app.example/page",
        "X-Not-Listed": "no",
        "Authorization": "Basic bm90OmZvcndhcmRlZA==",
    }
    async with live.connect("/headers", additional_headers=trace, origin="https://app.example") as ws:
        frames, code, _ = await drain(ws)
    assert code == 1000
    assert json.loads(frames[0]) == ["baggage", "host", "origin", "referer", "traceparent", "tracestate"]


# 5. Headers that never reach the app, whatever the allowlist says.

# Everything docs/security.md and docs/protocol.md say is never forwarded, named in the allowlist.
NEVER_FORWARDED = [
    "connection",
    "upgrade",
    "transfer-encoding",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-protocol",
]
# What a real client can put in a handshake on both servers (transfer-encoding: see test_hostile.py).
SENT_HOP_BY_HOP = {
    "Content-Length": "0",
    "Keep-Alive": "timeout=5",
    "Proxy-Connection": "keep-alive",
    "TE": "trailers",
    "Trailer": "X-Checksum",
    "X-Listed": "yes",
}


@promise("security.md", "The following are never forwarded, whatever the allowlist says:")
@promise(
    "security.md", "hop-by-hop headers (`connection`, `upgrade`, `transfer-encoding`, `content-length`, ...);"
)
@promise("protocol.md", "`Sec-WebSocket-*`, `Connection`, `Upgrade` and other hop-by-hop headers never do.")
async def test_hop_by_hop_and_websocket_headers_never_reach_the_app_even_when_listed(ws_impl: str) -> None:
    seen = Seen()
    proxy = WebSocketProxyMiddleware(routes_app(seen), forwarded_headers=[*NEVER_FORWARDED, "x-listed"])
    async with (
        serve(proxy, ws=ws_impl) as running,
        connect(
            running.ws + "/headers",
            additional_headers=SENT_HOP_BY_HOP,
            subprotocols=["graphql-ws"],  # type: ignore[list-item]
        ) as ws,
    ):
        frames, code, _ = await drain(ws)
    assert code == 1000
    assert json.loads(frames[0]) == ["x-listed"]  # the listed ordinary header passes, nothing else


@promise("security.md", "The following are never forwarded, whatever the allowlist says:")
async def test_hop_by_hop_headers_never_reach_a_remote_upstream_even_when_listed(
    upstream: Process, ws_impl: str
) -> None:
    proxy = WebSocketProxyMiddleware(
        UpstreamApp(upstream.http), forwarded_headers=[*NEVER_FORWARDED, "x-listed"]
    )
    async with (
        proxying(proxy, ws=ws_impl) as running,
        connect(running.ws + "/inspect?method=POST", additional_headers=SENT_HOP_BY_HOP) as ws,
    ):
        await ws.send("")
        frames, code, _ = await drain(ws)
    assert code == 1000
    headers = dict(json.loads(frames[0])["headers"])
    assert headers["x-listed"] == "yes"
    # What the upstream sees is UpstreamApp's own request: its framing, never the client's headers.
    client_values = {"upgrade", "websocket", "timeout=5", "keep-alive", "trailers", "X-Checksum"}
    for name in NEVER_FORWARDED:
        value = headers.get(name)
        assert value is None or value not in client_values, f"{name}: {value} came from the client"
    assert "content-length" not in headers  # a WebSocket stream has no length: chunked framing
    assert headers.get("transfer-encoding") == "chunked"
    assert not [name for name in headers if name.startswith("sec-websocket-")]


HOP_BY_HOP_TO_UPSTREAM = {
    "Connection": "keep-alive, X-Hop-Only",
    "X-Hop-Only": "named by Connection",
    "Keep-Alive": "timeout=5",
    "Proxy-Connection": "keep-alive",
    "Proxy-Authorization": "Basic cHJveHk6cGFzcw==",
    "TE": "trailers",
    "Trailer": "X-Checksum",
    "Expect": "100-continue",
    "X-Listed": "yes",
}


@promise(
    "upstream.md",
    "**Hop-by-hop headers are dropped** both ways (RFC 9110 §7.6.1): `Connection`, and every header it names, `Keep-Alive`, `Proxy-Connection`, `Proxy-Authenticate`, `Proxy-Authorization`, `TE`, `Trailer`, `Transfer-Encoding` and `Upgrade`. The request's `Expect` header is dropped too",
)
async def test_hop_by_hop_headers_of_a_plain_http_request_never_reach_a_remote_upstream(
    upstream: Process, ws_impl: str
) -> None:
    async with (
        proxying(UpstreamApp(upstream.http), ws=ws_impl) as running,
        httpx.AsyncClient() as client,
    ):
        response = await client.post(
            running.http + "/inspect", content=b'{"a": 1}\n', headers=HOP_BY_HOP_TO_UPSTREAM
        )
    assert response.status_code == 200
    seen = response.json()
    headers = dict(seen["headers"])
    assert headers["x-listed"] == "yes"
    assert seen["body"] == '{"a": 1}\n'
    dropped = [
        "x-hop-only",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "te",
        "trailer",
        "expect",
    ]
    assert [name for name in dropped if name in headers] == []
    assert headers.get("connection", "") != "keep-alive, X-Hop-Only"


# 6. When the client goes away: detection, the raising send, the grace period.


@promise("protocol.md", "A disconnect is noticed at once while the app reads")
@promise("protocol.md", "if it has not finished a second later it is cancelled")
async def test_a_disconnect_is_noticed_at_once_while_reading_and_the_app_cancelled_a_second_later(
    live: Live,
) -> None:
    async with live.connect("/echo?method=POST") as ws:
        await ws.send("one")
        assert await ws.recv() == "one"
        gone = vanish(ws)
    await finished(live.seen)
    noticed = live.seen.times["disconnect"] - gone
    cancelled = live.seen.times["cancelled"] - live.seen.times["disconnect"]
    assert live.seen.outcome == "cancelled"
    assert noticed < LATE, f"noticed {noticed:.2f}s after the client left"
    assert GRACE - EARLY <= cancelled <= GRACE + LATE, f"cancelled {cancelled:.2f}s after the disconnect"


@promise("protocol.md", "and within about a second otherwise (the stream's tick)")
@promise(
    "reliability.md",
    "| Client vanishes (or closes) while the app hangs, before or after the half-close | (gone) | the app is cancelled after the 1 s grace | all, within about 2 s |",
)
async def test_a_disconnect_is_noticed_within_a_tick_while_the_app_is_busy(live: Live) -> None:
    async with live.connect("/busy") as ws:
        assert await ws.recv() == '{"ready": true}'
        gone = vanish(ws)
    await finished(live.seen)
    cancelled = live.seen.times["cancelled"] - gone
    assert live.seen.outcome == "cancelled"
    assert GRACE - EARLY <= cancelled <= TICK + GRACE + LATE, (
        f"cancelled {cancelled:.2f}s after the client left"
    )


@promise("protocol.md", "its next `send()` raises `wsproxy.ClientDisconnected` (an `OSError`")
async def test_send_raises_client_disconnected_once_the_client_is_gone(live: Live) -> None:
    async with live.connect("/stream") as ws:
        assert await ws.recv() == '{"tick": true}'
        vanish(ws)
    await finished(live.seen)
    assert live.seen.outcome == "raised"
    assert isinstance(live.seen.raised, ClientDisconnected)
    assert isinstance(live.seen.raised, OSError)


@promise("protocol.md", "An app whose response is already complete is left to finish")
async def test_an_app_whose_response_is_complete_is_never_cancelled(live: Live) -> None:
    async with live.connect("/background") as ws:
        assert await drain(ws) == (['{"done": true}'], 1000, "")
    await finished(live.seen)
    assert live.seen.outcome == "returned"


# The table itself.


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)  # docs wrap their lines anywhere


def test_every_quoted_promise_is_still_in_its_doc() -> None:
    """A doc change that drops or rewords a promise must change this table too."""
    rows = [
        (name, doc, quote)
        for name, test in globals().items()
        if name.startswith("test_")
        for doc, quote in getattr(test, "promises", [])
    ]
    assert len(rows) >= 25
    missing = [
        (name, doc, quote)
        for name, doc, quote in rows
        if squash(quote) not in squash((DOCS / doc).read_text())
    ]
    assert missing == []
