"""UpstreamApp in front of a real upstream: uvicorn serving tests/support/upstream_apps.py in another process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.support import upstream_apps
from tests.support.servers import drain, serve
from tests.support.upstream_apps import Process, open_requests, proxying, spawn_listening, upstream_process
from wsproxy import WebSocketProxyMiddleware
from wsproxy._types import Message
from wsproxy.upstream import UpstreamApp

# Plain HTTP through the proxy.


async def test_plain_http_keeps_method_path_query_headers_and_body(upstream: Process) -> None:
    async with proxying(UpstreamApp(upstream.http)) as proxy, httpx.AsyncClient() as client:
        response = await client.post(
            proxy.http + "/inspect?a=1&b=2",
            content=b'{"x": 1}\n',
            headers={"x-custom": "kept", "connection": "x-hop", "x-hop": "dropped"},
        )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    seen = response.json()
    headers = dict(seen["headers"])
    assert (seen["method"], seen["path"], seen["query"], seen["body"]) == (
        "POST",
        "/inspect",
        "a=1&b=2",
        '{"x": 1}\n',
    )
    assert headers["host"] == f"127.0.0.1:{upstream.port}"
    assert headers["x-forwarded-host"] == f"127.0.0.1:{proxy.port}"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-custom"] == "kept"
    assert "x-hop" not in headers


async def test_plain_http_error_status_and_body_pass_through(upstream: Process) -> None:
    async with proxying(UpstreamApp(upstream.http)) as proxy, httpx.AsyncClient() as client:
        response = await client.get(proxy.http + "/status/418")
    assert response.status_code == 418
    assert response.json() == {"error": "status 418", "code": 418}


async def test_base_url_path_is_a_prefix(upstream: Process) -> None:
    async with (
        proxying(UpstreamApp(upstream.http + "/status/")) as proxy,
        httpx.AsyncClient() as client,
    ):
        response = await client.get(proxy.http + "/409")
    assert response.status_code == 409


async def test_keep_alive_connections_are_reused(upstream: Process) -> None:
    async with proxying(UpstreamApp(upstream.http)) as proxy, httpx.AsyncClient() as client:
        first = (await client.get(proxy.http + "/inspect")).json()["client"]
        second = (await client.post(proxy.http + "/inspect", content=b"x")).json()["client"]
    assert first == second  # same upstream TCP connection (same source port)


async def test_streaming_response_arrives_as_the_upstream_writes_it(upstream: Process) -> None:
    async with (
        proxying(UpstreamApp(upstream.http)) as proxy,
        httpx.AsyncClient() as client,
        client.stream("GET", proxy.http + "/forever") as response,
    ):
        lines = response.aiter_lines()
        assert json.loads(await anext(lines)) == {"n": 0}  # the response has not ended


async def test_unreachable_upstream_is_502(refused_url: str) -> None:
    async with proxying(UpstreamApp(refused_url)) as proxy, httpx.AsyncClient() as client:
        response = await client.get(proxy.http + "/anything")
    assert response.status_code == 502
    assert response.json() == {"error": "upstream unreachable", "reason": "connection refused"}


async def test_unresolvable_upstream_is_502() -> None:
    async with (
        proxying(UpstreamApp("http://no-such-host.invalid:1")) as proxy,
        httpx.AsyncClient() as client,
    ):
        response = await client.get(proxy.http + "/")
    assert response.status_code == 502
    assert response.json()["error"] == "upstream unreachable"


async def test_silent_upstream_is_504_after_the_read_timeout(upstream: Process) -> None:
    async with (
        proxying(UpstreamApp(upstream.http, read_timeout=0.2)) as proxy,
        httpx.AsyncClient() as client,
    ):
        response = await client.get(proxy.http + "/hang")
    assert response.status_code == 504
    assert response.json() == {"error": "upstream timeout", "reason": "no response in time"}


async def test_busy_pool_is_503_after_the_connect_timeout(upstream: Process) -> None:
    app = UpstreamApp(upstream.http, max_connections=1, connect_timeout=0.2)
    async with (
        proxying(app) as proxy,
        httpx.AsyncClient() as client,
        client.stream("GET", proxy.http + "/forever") as holding,
    ):
        held_lines = holding.aiter_lines()  # kept: a dropped iterator closes the response
        await anext(held_lines)
        response = await client.get(proxy.http + "/inspect")
    assert response.status_code == 503
    assert response.json()["error"] == "upstream busy"


async def test_plain_http_client_leaving_closes_the_upstream_call(upstream: Process) -> None:
    async with proxying(UpstreamApp(upstream.http)) as proxy:
        async with httpx.AsyncClient() as client, client.stream("GET", proxy.http + "/forever") as response:
            lines = response.aiter_lines()  # kept: a dropped iterator closes the response
            await anext(lines)
            assert await open_requests(upstream, 1) == 1
        assert await open_requests(upstream, 0) == 0


async def test_plain_http_upstream_killed_mid_response_aborts_the_response() -> None:
    with upstream_process() as upstream:
        async with (
            proxying(UpstreamApp(upstream.http)) as proxy,
            httpx.AsyncClient() as client,
            client.stream("GET", proxy.http + "/forever") as response,
        ):
            lines = response.aiter_lines()
            await anext(lines)
            upstream.kill()
            with pytest.raises(httpx.RemoteProtocolError):
                await anext(lines)


# WebSockets: WebSocketProxyMiddleware(UpstreamApp(url)) in this process, the upstream in another.


async def test_every_call_kind_over_websocket(upstream: Process, ws_impl: str) -> None:
    app = WebSocketProxyMiddleware(UpstreamApp(upstream.http))
    async with proxying(app, ws=ws_impl) as proxy:
        async with connect(proxy.ws + "/echo?method=POST&methodType=Unary") as ws:
            await ws.send('{"hi": 1}')
            assert await drain(ws) == (['{"echo": {"hi": 1}}'], 1000, "")
        async with connect(proxy.ws + "/stream?count=3") as ws:
            assert await drain(ws) == (['{"n": 0}', '{"n": 1}', '{"n": 2}'], 1000, "")
        async with connect(proxy.ws + "/sum?method=POST") as ws:
            for n in (1, 2, 39):
                await ws.send(json.dumps({"n": n}))
            await ws.send("")
            assert await drain(ws) == (['{"sum": 42}'], 1000, "")
        async with connect(proxy.ws + "/status/404") as ws:
            assert await drain(ws) == (['{"error": "status 404", "code": 404}'], 4404, "Not Found")


async def test_bidi_reply_arrives_before_the_client_half_closes(upstream: Process, ws_impl: str) -> None:
    app = WebSocketProxyMiddleware(UpstreamApp(upstream.http))
    async with proxying(app, ws=ws_impl) as proxy, connect(proxy.ws + "/bidi?method=POST") as ws:
        for n in range(3):
            await ws.send(json.dumps({"n": n}))
            assert json.loads(await ws.recv()) == {"echo": {"n": n}}  # body still open
        await ws.send("")
        assert await drain(ws) == ([], 1000, "")


async def test_upstream_killed_mid_stream_closes_1014(ws_impl: str) -> None:
    with upstream_process() as upstream:
        app = WebSocketProxyMiddleware(UpstreamApp(upstream.http))
        async with proxying(app, ws=ws_impl) as proxy, connect(proxy.ws + "/forever") as ws:
            assert json.loads(await ws.recv()) == {"n": 0}
            upstream.kill()
            assert await drain(ws) == ([], 1014, "bad gateway")


async def test_upstream_not_running_closes_4502(refused_url: str) -> None:
    app = WebSocketProxyMiddleware(UpstreamApp(refused_url))
    async with proxying(app) as proxy, connect(proxy.ws + "/bidi?method=POST") as ws:
        frames, code, reason = await drain(ws)
    assert (code, reason) == (4502, "Bad Gateway")
    assert [json.loads(frame) for frame in frames] == [
        {"error": "upstream unreachable", "reason": "connection refused"}
    ]


async def test_silent_upstream_closes_4504(upstream: Process) -> None:
    app = WebSocketProxyMiddleware(UpstreamApp(upstream.http, read_timeout=0.2))
    async with proxying(app) as proxy, connect(proxy.ws + "/hang") as ws:
        assert (await drain(ws))[1:] == (4504, "Gateway Timeout")


async def test_websocket_client_leaving_closes_the_upstream_call(upstream: Process) -> None:
    app = WebSocketProxyMiddleware(UpstreamApp(upstream.http))
    async with proxying(app) as proxy:
        async with connect(proxy.ws + "/bidi?method=POST") as ws:
            await ws.send('{"n": 1}')
            await ws.recv()
            assert await open_requests(upstream, 1) == 1
        assert await open_requests(upstream, 0) == 0


# Framing: GET and HEAD carry no body upstream; an open body asks the connection to close (Go).


async def test_websocket_get_is_answered_without_a_half_close(upstream: Process, ws_impl: str) -> None:
    # /inspect answers once the request body ends: a GET's has ended before it began.
    app = WebSocketProxyMiddleware(UpstreamApp(upstream.http))
    async with proxying(app, ws=ws_impl) as proxy, connect(proxy.ws + "/inspect") as ws:
        frames, code, _ = await drain(ws)
    assert code == 1000
    seen = json.loads(frames[0])
    headers = dict(seen["headers"])
    assert (seen["method"], seen["body"]) == ("GET", "")
    assert "transfer-encoding" not in headers
    assert "content-length" not in headers


async def test_websocket_post_streams_chunked_and_asks_to_close(upstream: Process) -> None:
    app = WebSocketProxyMiddleware(UpstreamApp(upstream.http))
    async with proxying(app) as proxy, connect(proxy.ws + "/inspect?method=POST") as ws:
        await ws.send('{"a": 1}')
        await ws.send("")
        frames, code, _ = await drain(ws)
    assert code == 1000
    headers = dict(json.loads(frames[0])["headers"])
    assert (headers["transfer-encoding"], headers["connection"]) == ("chunked", "close")


async def test_a_message_on_a_get_call_closes_1008(upstream: Process, ws_impl: str) -> None:
    app = WebSocketProxyMiddleware(UpstreamApp(upstream.http))
    async with proxying(app, ws=ws_impl) as proxy, connect(proxy.ws + "/forever") as ws:
        assert json.loads(await ws.recv()) == {"n": 0}
        await ws.send('{"late": true}')
        assert await drain(ws) == ([], 1008, "message after end of request body")
        assert await open_requests(upstream, 0) == 0


async def test_a_half_close_on_a_get_call_is_harmless(upstream: Process) -> None:
    app = WebSocketProxyMiddleware(UpstreamApp(upstream.http))
    async with proxying(app) as proxy, connect(proxy.ws + "/stream?count=2") as ws:
        await ws.send("")
        assert await drain(ws) == (['{"n": 0}', '{"n": 1}'], 1000, "")


# One rule for GET and HEAD in both modes (docs/protocol.md): the request has no body, a client
# message closes 1008 with the same reason, the half-close changes nothing. The same upstream app is
# wrapped in this process, and fronted by the `wsproxy --upstream` command in another.
GET_MODES = ("in-process", "wsproxy --upstream")


@contextlib.asynccontextmanager
async def get_mode_server(mode: str, upstream: Process, ws_impl: str) -> AsyncIterator[str]:
    if mode == "in-process":
        async with serve(WebSocketProxyMiddleware(upstream_apps.app), ws=ws_impl) as running:
            yield running.ws
        return
    argv = [sys.executable, "-m", "wsproxy", "--log-level", "warning", "--no-access-log", "--ws", ws_impl]
    with spawn_listening([*argv, "--upstream", upstream.http]) as proxy:
        yield proxy.ws


@pytest.mark.parametrize("mode", GET_MODES)
async def test_a_message_on_a_get_call_closes_1008_alike_in_process_and_upstream(
    upstream: Process, ws_impl: str, mode: str
) -> None:
    async with (
        get_mode_server(mode, upstream, ws_impl) as base,
        connect(base + "/forever", open_timeout=30) as ws,
    ):
        assert json.loads(await ws.recv()) == {"n": 0}  # answered with nothing sent
        await ws.send('{"late": true}')
        assert await drain(ws) == ([], 1008, "message after end of request body")


@pytest.mark.parametrize("mode", GET_MODES)
async def test_a_get_call_is_answered_with_nothing_sent_and_a_half_close_changes_nothing(
    upstream: Process, ws_impl: str, mode: str
) -> None:
    async with get_mode_server(mode, upstream, ws_impl) as base:
        # /inspect answers once the request body ends: a GET's has ended before it began.
        async with connect(base + "/inspect", open_timeout=30) as ws:
            frames, code, _ = await drain(ws)
        assert (code, json.loads(frames[0])["method"], json.loads(frames[0])["body"]) == (1000, "GET", "")
        async with connect(base + "/forever") as ws:
            assert json.loads(await ws.recv()) == {"n": 0}
            await ws.send("")
            await ws.send(b"")
            await ws.send("")
            await ws.send("no")  # still watched: a message after them is the violation
            assert await drain(ws) == ([], 1008, "message after end of request body")


async def test_plain_get_and_head_keep_the_connection_alive(upstream: Process) -> None:
    async with proxying(UpstreamApp(upstream.http)) as proxy, httpx.AsyncClient() as client:
        head = await client.head(proxy.http + "/inspect")
        first = (await client.get(proxy.http + "/inspect")).json()["client"]
        second = (await client.get(proxy.http + "/inspect")).json()["client"]
    assert head.status_code == 200
    assert first == second


# Fairness: a busy stream hands the event loop back (the numbers are docs/upstream.md's).


class LoopTurns:
    """Counts what a pump did between two turns of another task on the same loop."""

    def __init__(self) -> None:
        self.messages = 0
        self.runs: list[int] = []
        self.lines = 0

    def record(self, message: Message | None = None) -> None:
        self.messages += 1
        if message is not None:
            self.lines += message.get("body", b"").count(b"\n")

    async def watch(self) -> None:
        while True:
            if self.messages:
                self.runs.append(self.messages)
                self.messages = 0
            await asyncio.sleep(0)


async def run_with_turns(app: UpstreamApp, scope: dict[str, Any], receive: Any, turns: LoopTurns) -> None:
    async def send(message: Message) -> None:  # a server send that never yields
        turns.record(message)

    watcher = asyncio.ensure_future(turns.watch())
    try:
        await asyncio.wait_for(app(scope, receive, send), 60)
    finally:
        watcher.cancel()
        await app.aclose()


def http_scope(method: str, path: str, query: bytes = b"") -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query,
        "headers": [],
        "scheme": "http",
    }


async def test_a_busy_download_yields_every_32_messages(upstream: Process) -> None:
    turns = LoopTurns()

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    # Whole chunks that arrived together go on as one message: 3 MB make about 50 reads of 64 KiB.
    scope = http_scope("GET", "/firehose", b"count=30000&size=100")
    await run_with_turns(UpstreamApp(upstream.http), scope, receive, turns)
    assert turns.lines == 30000  # the whole body went through
    assert sum(turns.runs) > 2 * 32
    assert max(turns.runs) <= 32


async def test_a_busy_upload_yields_every_32_messages(upstream: Process) -> None:
    turns = LoopTurns()
    sent = 0

    async def receive() -> dict[str, Any]:  # a server receive with messages queued: never yields
        nonlocal sent
        if sent == 2000:
            await asyncio.sleep(3600)  # after the body, a server's receive waits for the disconnect
        sent += 1
        turns.record()
        more = sent < 2000
        return {"type": "http.request", "body": b'{"n": 1}\n' if more else b"", "more_body": more}

    async def send(message: Message) -> None:
        if message.get("body"):
            assert json.loads(message["body"]) == {"sum": 1999}

    watcher = asyncio.ensure_future(turns.watch())
    app = UpstreamApp(upstream.http)
    try:
        await asyncio.wait_for(app(http_scope("POST", "/sum"), receive, send), 60)
    finally:
        watcher.cancel()
        await app.aclose()
    assert max(turns.runs) <= 32


async def _kept_alive_then_closed_on_the_next_request() -> tuple[asyncio.Server, list[int]]:
    """An upstream that answers the first request of a connection with keep-alive, and closes a
    connection, without answering, when a second request arrives on it: a server that closed an idle
    connection just as the next request went out. `connections` counts the connections it took."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(len(connections) + 1)
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n\r\nok\n")
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")  # the next request on this connection: closed unanswered
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, connections


async def _answer(app: UpstreamApp, method: str, body: bytes = b"") -> tuple[int, bytes]:
    sent: list[Message] = []
    given = False

    async def receive() -> dict[str, Any]:
        nonlocal given
        if given:
            await asyncio.sleep(3600)  # after the body, a server's receive waits for the disconnect
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = http_scope(method, "/")
    if body:
        scope["headers"] = [(b"content-length", str(len(body)).encode())]
    await asyncio.wait_for(app(scope, receive, send), 10)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


async def test_a_get_on_a_kept_alive_connection_the_server_closed_is_retried_once_on_a_new_one() -> None:
    server, connections = await _kept_alive_then_closed_on_the_next_request()
    port = server.sockets[0].getsockname()[1]
    app = UpstreamApp(f"http://127.0.0.1:{port}")
    try:
        assert await _answer(app, "GET") == (200, b"ok\n")
        assert await _answer(app, "GET") == (200, b"ok\n")  # the reused connection closed: a new one answers
        assert connections == [1, 2]
    finally:
        await app.aclose()
        server.close()
        await server.wait_closed()


async def test_a_post_on_a_kept_alive_connection_the_server_closed_is_not_retried() -> None:
    server, connections = await _kept_alive_then_closed_on_the_next_request()
    port = server.sockets[0].getsockname()[1]
    app = UpstreamApp(f"http://127.0.0.1:{port}")
    try:
        assert await _answer(app, "GET") == (200, b"ok\n")
        status, body = await _answer(app, "POST", b'{"n": 1}\n')  # a body may have been acted on: no retry
        assert status == 502, body
        assert connections == [1]
    finally:
        await app.aclose()
        server.close()
        await server.wait_closed()
