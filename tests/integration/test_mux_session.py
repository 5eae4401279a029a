"""Many calls on one socket, end to end: real uvicorn (each WebSocket implementation), real clients.

The Python client (`connect_mux`) for what a well-behaved client does; a raw `websockets` client
that writes frames by hand for what a hostile one does. The limits the docs promise (65536 bytes of
credit per call and direction, 1013 beyond max_calls_per_socket, 1002 for unattributable frames,
1008 for a call's broken rules) appear here as literals.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import struct
import sys
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from tests.support.ndjson_service import Observed, collect, observed_app
from tests.support.server_process import server_process
from tests.support.servers import SERVER_PARAMS, Running, serve_on
from tests.support.upstream_apps import Process, proxying, spawn_listening
from wsproxy import HandshakeRejected, WebSocketProxyMiddleware
from wsproxy._types import Receive, Scope, Send
from wsproxy.client import (
    BadGatewayError,
    CallError,
    ConnectionLostError,
    HTTPStatusError,
    MessageTooBigError,
    PolicyViolationError,
    ProxyInternalError,
    StreamError,
    TryAgainLaterError,
    connect_mux,
)
from wsproxy.upstream import UpstreamApp

SUBPROTOCOL = "wsproxy.mux.v1"
OPEN, MESSAGE, HALF_CLOSE, CANCEL, WINDOW, LAST_MESSAGE = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
LINE, LINE_BINARY, END = 0x11, 0x12, 0x13


# In this process, so the tests can see what the apps saw: every server (uvicorn's three WebSocket
# implementations, legacy websockets with its deprecation warnings filtered, and hypercorn).
@pytest.fixture(params=SERVER_PARAMS)
def server_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@contextlib.asynccontextmanager
async def mux_proxy(server_name: str, **options: Any) -> AsyncIterator[tuple[Running, Observed]]:
    observed = Observed()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await observed_app(observed, scope, receive, send)

    proxy = WebSocketProxyMiddleware(app, **options)

    async def counting(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            observed.sockets += 1
        await proxy(scope, receive, send)

    async with serve_on(server_name, cast(Any, counting)) as server:
        yield server, observed


async def eventually(check: Any, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


# The Python client: all four kinds at once, single-socket semantics.


async def test_four_call_kinds_concurrently_on_one_socket(server_name: str) -> None:
    async with mux_proxy(server_name) as (srv, observed), connect_mux(srv.ws, token="t0k3n") as conn:

        async def chat() -> list[Any]:
            replies = []
            async with conn.bidi("/v1/chat", method="POST") as call:
                for n in range(10):
                    await call.send({"text": f"m{n}"})
                    replies.append(await anext(call))  # each reply before the body ends
                await call.close_send()
                assert [rest async for rest in call] == []
            return replies

        async def ticks() -> list[Any]:
            return [tick async for tick in conn.server_stream("/v1/ticker?count=200")]

        results = await asyncio.gather(
            *(conn.unary("/v1/echo", {"message": f"u{n}"}, method="POST") for n in range(10)),
            ticks(),
            conn.client_stream("/v1/sum", ({"value": n} for n in range(100)), method="POST"),
            chat(),
            conn.unary("/v1/whoami"),
        )
        assert results[:10] == [{"message": f"u{n}", "method": "POST"} for n in range(10)]
        assert results[10] == [{"seq": n} for n in range(200)]
        assert results[11] == {"total": 4950, "count": 100}
        assert results[12] == [{"reply": f"M{n}"} for n in range(10)]
        assert results[13] == {"authorization": "Bearer t0k3n"}  # the connection's Bearer pair
        assert conn.open_calls == 0
    assert observed.sockets == 1


async def test_outcomes_use_the_single_socket_close_codes(server_name: str) -> None:
    async with mux_proxy(server_name, max_line_size=1024) as (srv, _), connect_mux(srv.ws) as conn:
        with pytest.raises(HTTPStatusError) as bad_request:
            await conn.unary("/v1/echo", {"message": ""}, method="POST")
        assert (bad_request.value.code, bad_request.value.status) == (4400, 400)
        assert bad_request.value.grpc_code_name == "INVALID_ARGUMENT"
        with pytest.raises(HTTPStatusError) as not_found:
            await conn.unary("/v1/nowhere")
        assert not_found.value.code == 4404
        with pytest.raises(ProxyInternalError) as raised:
            await conn.unary("/v1/raise")
        assert (raised.value.code, raised.value.reason) == (1011, "internal error")  # no secret detail
        with pytest.raises(BadGatewayError) as upstream:
            await conn.unary("/v1/upstream")
        assert upstream.value.code == 1014
        with pytest.raises(MessageTooBigError) as too_big:
            await conn.unary("/v1/big")
        assert too_big.value.code == 1009
        received: list[Any] = []
        with pytest.raises(StreamError):
            await collect(conn.server_stream("/v1/ticker?count=2&fail=1"), received)
        assert received == [{"seq": 0}, {"seq": 1}]
        # Bad handshake-level input on one call refuses that call with 4000 + status.
        with pytest.raises(HTTPStatusError) as bad_method:
            await conn.unary("/v1/echo?method=GE%20T", {"message": "x"})
        assert (bad_method.value.code, bad_method.value.reason) == (4400, "invalid method override")
        # And the socket still serves.
        assert await conn.unary("/v1/echo", {"message": "ok"}, method="PUT") == {
            "message": "ok",
            "method": "PUT",
        }


async def test_per_call_headers_pass_the_same_allowlist(server_name: str) -> None:
    options = {"forwarded_headers": ["x-tenant", "origin"]}
    async with (
        mux_proxy(server_name, **options) as (srv, _),
        connect_mux(srv.ws, headers={"x-tenant": "conn", "x-other": "no"}) as conn,
    ):
        plain = await conn.unary("/v1/headers")
        per_call = await conn.unary("/v1/headers", headers={"X-Tenant": "call", "X-Secret": "no"})
    assert plain["x-tenant"] == "conn"
    assert "x-other" not in plain
    assert per_call["x-tenant"] == "call"
    assert "x-secret" not in per_call


async def test_the_connection_handshake_policy_still_applies(server_name: str) -> None:
    async with mux_proxy(server_name, allowed_origins=["https://good.example"]) as (srv, _):
        with pytest.raises(HTTPStatusError) as refused:
            async with connect_mux(srv.ws, origin="https://evil.example"):
                pass
        assert refused.value.status == 403
        with pytest.raises(HTTPStatusError) as bad_token:
            async with connect_mux(srv.ws, token="bad!token"):
                pass
        assert bad_token.value.status == 400
        async with connect_mux(srv.ws, origin="https://good.example") as conn:
            assert await conn.unary("/v1/echo", {"message": "hi"}, method="POST") == {
                "message": "hi",
                "method": "POST",
            }


# No head-of-line blocking: one stuck call holds only itself.


async def test_a_call_whose_app_stops_reading_holds_only_itself(server_name: str) -> None:
    async with mux_proxy(server_name) as (srv, _observed), connect_mux(srv.ws) as conn:
        async with conn.connect("/v1/watch?name=stalled-reader", method="POST") as watcher:
            assert await anext(watcher) == "watching"
        async with conn.connect("/v1/stall", method="POST") as stalled:
            assert await anext(stalled) == "stalled"
            message = "y" * 999  # costs 1000 bytes of credit
            sent = 0
            while True:
                try:
                    await asyncio.wait_for(stalled.send(message), timeout=2.5)
                except TimeoutError:
                    break
                sent += 1
            # 65536 bytes of credit: 66 messages of 1000 (the last one overdraws), then send waits.
            # Once the app has been away a second, its stream reads ahead up to 64 KiB (as for a
            # single-socket call), which returns that much credit once: at most twice the window.
            assert 66 <= sent <= 132
            # Meanwhile every other kind of call on the socket goes through.
            assert await conn.unary("/v1/echo", {"message": "other"}, method="POST") == {
                "message": "other",
                "method": "POST",
            }
            assert [t async for t in conn.server_stream("/v1/ticker?count=3")] == [
                {"seq": 0},
                {"seq": 1},
                {"seq": 2},
            ]


async def test_a_call_whose_client_stops_reading_holds_only_itself(server_name: str) -> None:
    async with (
        mux_proxy(server_name) as (srv, observed),
        connect_mux(srv.ws) as conn,
        conn.connect("/v1/flood?size=987") as flood,  # lines of 1000 bytes
    ):
        await eventually(lambda: observed.flood_lines > 0)
        await asyncio.sleep(0.5)
        stuck_at = observed.flood_lines
        await asyncio.sleep(0.5)
        assert observed.flood_lines == stuck_at  # the app is held back, not buffered
        # 65536 bytes of credit at 1001 a line: 66 lines sent; the app may have one more in hand.
        assert 66 <= stuck_at <= 67
        assert await conn.unary("/v1/echo", {"message": "other"}, method="POST") == {
            "message": "other",
            "method": "POST",
        }
        # Reading resumes the stuck call: credit goes back as lines are consumed.
        for _ in range(500):
            assert await anext(flood) == "x" * 987
        assert observed.flood_lines >= 500


# Limits and cleanup.


async def test_calls_beyond_the_limit_are_refused_and_the_socket_stays_up(server_name: str) -> None:
    async with mux_proxy(server_name, max_calls_per_socket=3) as (srv, _), connect_mux(srv.ws) as conn:
        held = [await conn.open(f"/v1/watch?name=w{n}") for n in range(3)]
        for call in held:
            assert await anext(call) == "watching"
        with pytest.raises(TryAgainLaterError) as refused:
            await conn.unary("/v1/echo", {"message": "one too many"}, method="POST")
        assert (refused.value.code, refused.value.reason) == (1013, "too many calls on this socket")
        await held[0].close()
        # The slot frees once the cancelled call's app has ended.
        for _ in range(100):
            try:
                result = await conn.unary("/v1/echo", {"message": "fits"}, method="POST")
                break
            except TryAgainLaterError:
                await asyncio.sleep(0.05)
        assert result == {"message": "fits", "method": "POST"}
        for call in held[1:]:
            await call.close()


async def test_cancel_ends_only_that_call(server_name: str) -> None:
    async with mux_proxy(server_name) as (srv, observed), connect_mux(srv.ws) as conn:
        cancelled = await conn.open("/v1/watch?name=cancelled")
        kept = await conn.open("/v1/watch?name=kept")
        assert await anext(cancelled) == "watching"
        assert await anext(kept) == "watching"
        await cancelled.close()
        await eventually(lambda: observed.disconnects == ["cancelled"])
        assert await conn.unary("/v1/echo", {"message": "still"}, method="POST") == {
            "message": "still",
            "method": "POST",
        }
        await kept.close()
        await eventually(lambda: sorted(observed.disconnects) == ["cancelled", "kept"])


async def test_a_dropped_socket_ends_every_call(server_name: str) -> None:
    async with mux_proxy(server_name) as (srv, observed):
        conn_cm = connect_mux(srv.ws)
        conn = await conn_cm.__aenter__()
        calls = [await conn.open(f"/v1/watch?name=c{n}") for n in range(10)]
        stalled = await conn.open("/v1/stall", method="POST")
        for call in calls:
            assert await anext(call) == "watching"
        assert await anext(stalled) == "stalled"
        conn._websocket.transport.abort()  # vanish: no close frame
        await eventually(lambda: len(observed.disconnects) == 10)
        assert sorted(observed.disconnects) == sorted(f"c{n}" for n in range(10))
        with contextlib.suppress(Exception):
            await conn_cm.__aexit__(None, None, None)
        with pytest.raises(ConnectionLostError):
            await anext(calls[0])


# Hostile frames from a raw client.


async def read_until_closed(ws: ClientConnection) -> None:
    while True:
        await asyncio.wait_for(ws.recv(), timeout=10)


def frame(kind: int, call_id: int, payload: bytes = b"") -> bytes:
    return struct.pack("!BI", kind, call_id) + payload


def open_frame(call_id: int, path: str, **extra: Any) -> bytes:
    return frame(OPEN, call_id, json.dumps({"path": path, **extra}).encode())


@contextlib.asynccontextmanager
async def raw_mux(srv: Running) -> AsyncIterator[ClientConnection]:
    async with ws_connect(srv.ws + "/", subprotocols=[Subprotocol(SUBPROTOCOL)]) as ws:
        assert ws.subprotocol == SUBPROTOCOL
        yield ws


async def next_end(ws: ClientConnection, call_id: int) -> tuple[int, str]:
    """Read frames until the END of `call_id`; its code and reason."""
    while True:
        data = await asyncio.wait_for(ws.recv(), timeout=10)
        assert isinstance(data, bytes)
        kind, got = struct.unpack_from("!BI", data)
        if kind == END and got == call_id:
            code = struct.unpack_from("!H", data, 5)[0]
            return code, data[7:].decode()


async def socket_still_serves(ws: ClientConnection, call_id: int) -> None:
    await ws.send(open_frame(call_id, "/v1/echo?method=POST"))
    await ws.send(frame(MESSAGE, call_id, b'{"message": "alive"}'))
    await ws.send(frame(HALF_CLOSE, call_id))
    lines = []
    while True:
        data = await asyncio.wait_for(ws.recv(), timeout=10)
        assert isinstance(data, bytes)
        kind, got = struct.unpack_from("!BI", data)
        if got != call_id:
            continue
        if kind == END:
            assert struct.unpack_from("!H", data, 5)[0] == 1000
            break
        assert kind == LINE
        lines.append(json.loads(data[5:]))
    assert lines == [{"message": "alive", "method": "POST"}]


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        ([b"\x02\x00\x00"], "shorter than its header"),
        (["text, not binary"], "text frame"),
        ([frame(0x7F, 1)], "unknown mux frame type"),
        ([frame(LINE, 1, b"{}")], "LINE not allowed"),
        ([frame(MESSAGE, 9, b"{}")], "never opened"),
        ([frame(OPEN, 0, b'{"path": "/"}')], "call id 0"),
        ([open_frame(5, "/v1/watch?name=a"), open_frame(5, "/v1/watch?name=b")], "ids must increase"),
        ([open_frame(5, "/v1/watch?name=a"), open_frame(4, "/v1/watch?name=b")], "ids must increase"),
    ],
)
async def test_unattributable_frames_close_the_socket_with_1002(
    server_name: str, frames: list[bytes | str], reason: str
) -> None:
    async with mux_proxy(server_name) as (srv, _), raw_mux(srv) as ws:
        for data in frames:
            await ws.send(data)
        with pytest.raises(ConnectionClosed):
            await read_until_closed(ws)
        assert ws.close_code == 1002
        assert ws.close_reason is not None
        assert reason in ws.close_reason


@pytest.mark.parametrize(
    ("frames", "code", "reason"),
    [
        ([frame(OPEN, 1, b"{not json")], 1008, "OPEN payload is not JSON"),
        ([open_frame(1, "no-slash")], 1008, '"path" must be a request target'),
        ([open_frame(1, "/v1/echo", headers=[["origin", "https://evil"]])], 1008, "connection's"),
        ([open_frame(1, "/v1/echo", headers=[["x", "a\r\nInjected: yes"]])], 1008, "invalid name or value"),
        ([open_frame(1, "/v1/echo?method=G%0AT")], 4400, "invalid method override"),
        ([open_frame(1, "/v1/echo?methodType=Sideways")], 4400, "invalid methodType"),
        ([open_frame(1, "/v1/stall"), frame(WINDOW, 1, b"\x00\x00\x00\x00")], 1008, "increment of 0"),
        ([open_frame(1, "/v1/stall"), frame(WINDOW, 1, b"\x00\x01")], 1008, "must be 4 bytes"),
        ([open_frame(1, "/v1/stall"), frame(WINDOW, 1, b"\x7f\xff\xff\xff")], 1008, "overflows"),
        # 65536 bytes of credit: a 70000-byte message overdraws once; the next one is refused.
        (
            [
                open_frame(1, "/v1/stall?method=POST"),
                frame(MESSAGE, 1, b"x" * 70000),
                frame(MESSAGE, 1, b"x"),
            ],
            1008,
            "without credit",
        ),
        # Over max_message_size (here 131072): refused on arrival, as a single call closes 1009.
        ([open_frame(1, "/v1/stall?method=POST"), frame(MESSAGE, 1, b"x" * 131073)], 1009, "message too big"),
        # A flood of half-closes costs credit too (1 each), so it cannot queue without bound.
        # (Or, once the stream reads ahead, the second half-close is the single-socket 1008.)
        (
            [open_frame(1, "/v1/stall?method=POST")] + [frame(HALF_CLOSE, 1)] * 70000,
            1008,
            "without credit|message after end of request body",
        ),
    ],
)
async def test_a_calls_broken_rules_end_only_that_call(
    server_name: str, frames: list[bytes], code: int, reason: str
) -> None:
    async with mux_proxy(server_name, max_message_size=1 << 17) as (srv, _), raw_mux(srv) as ws:
        for data in frames:
            await ws.send(data)
        got_code, got_reason = await next_end(ws, 1)
        assert got_code == code
        assert re.search(reason, got_reason)
        await socket_still_serves(ws, 2)


async def test_a_message_after_the_half_close_is_the_single_socket_1008(server_name: str) -> None:
    async with mux_proxy(server_name) as (srv, _), raw_mux(srv) as ws:
        await ws.send(open_frame(1, "/v1/stall?method=POST"))
        await ws.send(frame(HALF_CLOSE, 1))
        await ws.send(frame(MESSAGE, 1, b"{}"))
        assert await next_end(ws, 1) == (1008, "message after end of request body")
        await socket_still_serves(ws, 2)


async def test_a_get_call_has_no_body_on_a_mux_socket_too(server_name: str) -> None:
    """docs/protocol.md: a GET call's body has ended before it starts; HALF_CLOSE changes nothing,
    a MESSAGE ends the call with the single-socket 1008 and its reason; the socket stays up."""
    async with mux_proxy(server_name) as (srv, _), raw_mux(srv) as ws:
        await ws.send(open_frame(1, "/v1/stall"))  # GET, the default method
        await ws.send(frame(HALF_CLOSE, 1))
        await ws.send(frame(HALF_CLOSE, 1))
        await ws.send(frame(MESSAGE, 1, b"{}"))
        assert await next_end(ws, 1) == (1008, "message after end of request body")
        await ws.send(open_frame(2, "/v1/stall?method=HEAD"))
        await ws.send(frame(LAST_MESSAGE, 2, b"{}"))
        assert await next_end(ws, 2) == (1008, "message after end of request body")
        await socket_still_serves(ws, 3)
    async with mux_proxy(server_name) as (srv, _), connect_mux(srv.ws) as conn:
        # The Python client: a GET answered with nothing sent; a message on one is the 1008 error.
        ticks = [item async for item in conn.server_stream("/v1/ticker?count=2")]
        assert ticks == [{"seq": 0}, {"seq": 1}]
        with pytest.raises(PolicyViolationError) as error:
            await conn.unary("/v1/hold", {"message": "hi"})  # holds its answer open: the message ends it
        assert error.value.code == 1008
        assert await conn.unary("/v1/echo", {"message": "hi"}, method="POST") == {
            "message": "hi",
            "method": "POST",
        }


async def test_a_flood_of_opens_beyond_the_limit_is_refused_call_by_call(server_name: str) -> None:
    async with mux_proxy(server_name, max_calls_per_socket=2) as (srv, _), raw_mux(srv) as ws:
        for call_id in range(1, 203):
            await ws.send(open_frame(call_id, f"/v1/watch?name=n{call_id}"))
        ends: dict[int, tuple[int, str]] = {}
        while len(ends) < 200:
            data = await asyncio.wait_for(ws.recv(), timeout=10)
            assert isinstance(data, bytes)
            kind, call_id = struct.unpack_from("!BI", data)
            if kind == END:
                ends[call_id] = (struct.unpack_from("!H", data, 5)[0], data[7:].decode())
        assert set(ends) == set(range(3, 203))
        assert set(ends.values()) == {(1013, "too many calls on this socket")}
        await ws.send(frame(CANCEL, 1))
        await ws.send(frame(CANCEL, 2))
        await asyncio.sleep(0.2)
        await socket_still_serves(ws, 300)


async def test_binary_and_unicode_lines_keep_their_kind(server_name: str) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": "héllo\n".encode() + b"\xff\xfe\n"})

    async with serve_on(server_name, cast(Any, WebSocketProxyMiddleware(app))) as srv, raw_mux(srv) as ws:
        await ws.send(open_frame(1, "/"))
        first, second = await ws.recv(), await ws.recv()
        assert first == frame(LINE, 1, "héllo".encode())
        assert second == frame(LINE_BINARY, 1, b"\xff\xfe")
        assert await next_end(ws, 1) == (1000, "")


# Through a remote upstream: the in-process UpstreamApp and the `wsproxy --upstream` command.


async def four_kinds_on_the_upstream(url: str) -> None:
    async with connect_mux(url, open_timeout=30) as conn:

        async def bidi() -> list[Any]:
            async with conn.bidi("/bidi", method="POST") as call:
                replies = []
                for n in range(3):
                    await call.send({"n": n})
                    replies.append(await anext(call))  # full duplex: before the half-close
                await call.close_send()
                assert [rest async for rest in call] == []
                return replies

        results = await asyncio.gather(
            conn.unary("/echo", {"hi": 1}, method="POST"),
            collect_all(conn.server_stream("/stream?count=3")),
            conn.client_stream("/sum", [{"n": 40}, {"n": 2}], method="POST"),
            bidi(),
            *(conn.unary("/echo", {"n": n}, method="POST") for n in range(10)),
        )
    assert results[0] == {"echo": {"hi": 1}}
    assert results[1] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert results[2] == {"sum": 42}
    assert results[3] == [{"echo": {"n": n}} for n in range(3)]
    assert results[4:] == [{"echo": {"n": n}} for n in range(10)]


async def collect_all(messages: AsyncIterator[Any]) -> list[Any]:
    return [message async for message in messages]


async def test_four_kinds_through_upstream_app(upstream: Process) -> None:
    async with proxying(WebSocketProxyMiddleware(UpstreamApp(upstream.http))) as proxy:
        await four_kinds_on_the_upstream(proxy.ws)


async def test_four_kinds_through_the_wsproxy_command(upstream: Process) -> None:
    command = [sys.executable, "-m", "wsproxy", "--log-level", "warning", "--upstream", upstream.http]
    with spawn_listening(command) as proxy:
        await four_kinds_on_the_upstream(proxy.ws)


async def test_the_request_mutator_runs_for_each_call(server_name: str) -> None:
    def mutator(ws_scope: Scope, http_scope: Scope) -> Scope:
        if http_scope["path"] == "/v1/forbidden":
            raise HandshakeRejected(403, "not for you")
        http_scope["headers"] = [*http_scope["headers"], (b"x-call-path", http_scope["path"].encode())]
        return http_scope

    async with mux_proxy(server_name, request_mutator=mutator) as (srv, _), connect_mux(srv.ws) as conn:
        with pytest.raises(HTTPStatusError) as refused:
            await conn.unary("/v1/forbidden")
        assert (refused.value.code, refused.value.reason) == (4403, "not for you")
        first = await conn.unary("/v1/headers")
        second = await conn.unary("/v1/headers?x=1")
    assert first["x-call-path"] == "/v1/headers"
    assert second["x-call-path"] == "/v1/headers"


async def test_calls_streaming_at_once_take_turns(server_name: str) -> None:
    """Two apps that never yield between lines: their lines interleave on the socket."""
    async with mux_proxy(server_name) as (srv, _), raw_mux(srv) as ws:
        for call_id in (1, 2):
            await ws.send(open_frame(call_id, "/v1/burst?count=1000"))
            await ws.send(frame(HALF_CLOSE, call_id))
        order: list[int] = []
        ended = 0
        while ended < 2:
            data = await asyncio.wait_for(ws.recv(), timeout=10)
            assert isinstance(data, bytes)
            kind, call_id = struct.unpack_from("!BI", data)
            if kind == LINE:
                order.append(call_id)
            elif kind == END:
                ended += 1
    assert sorted(order) == [1] * 1000 + [2] * 1000
    runs, longest, last = 0, 0, 0
    for call_id in order:
        runs = runs + 1 if call_id == last else 1
        last = call_id
        longest = max(longest, runs)
    assert longest < 200  # without turns, one call's 1000 lines would all go before the other's


async def test_a_server_that_shuts_down_ends_every_open_call(server_name: str) -> None:
    async with contextlib.AsyncExitStack() as client, contextlib.AsyncExitStack() as server:
        srv, observed = await server.enter_async_context(mux_proxy(server_name))
        conn = await client.enter_async_context(connect_mux(srv.ws))
        calls = [await conn.open(f"/v1/watch?name=s{n}") for n in range(3)]
        for call in calls:
            assert await anext(call) == "watching"
        stopping = asyncio.create_task(server.aclose())  # the server stops under the open calls
        for call in calls:
            with pytest.raises(CallError) as ended:
                await asyncio.wait_for(anext(call), timeout=15)
            # Lost, uvicorn's "service restart", or hypercorn's close of a cancelled app.
            assert ended.value.code in (1006, 1011, 1012)
        await stopping
    assert observed.watching == 0  # every app ended
    if server_name != "hypercorn":  # hypercorn cancels the apps at shutdown instead
        assert sorted(observed.disconnects) == ["s0", "s1", "s2"]


async def test_the_command_limits_calls_per_socket(upstream: Process) -> None:
    command = [sys.executable, "-m", "wsproxy", "--log-level", "warning", "--upstream", upstream.http]
    with spawn_listening([*command, "--max-calls-per-socket", "1"]) as proxy:
        async with connect_mux(proxy.ws, open_timeout=30) as conn, conn.connect("/forever") as held:
            assert await anext(held) == {"n": 0}
            with pytest.raises(TryAgainLaterError) as refused:
                await conn.unary("/echo", {"hi": 1}, method="POST")
            assert refused.value.code == 1013


async def test_last_message_is_a_message_and_the_half_close(server_name: str) -> None:
    async with mux_proxy(server_name) as (srv, _), raw_mux(srv) as ws:
        await ws.send(open_frame(1, "/v1/sum?method=POST"))
        await ws.send(frame(MESSAGE, 1, b'{"value": 40}'))
        await ws.send(frame(LAST_MESSAGE, 1, b'{"value": 2}'))
        assert await ws.recv() == frame(LINE, 1, b'{"total": 42, "count": 2}')
        assert await next_end(ws, 1) == (1000, "")
        await ws.send(open_frame(2, "/v1/stall?method=POST"))
        await ws.send(frame(LAST_MESSAGE, 2, b"{}"))
        await ws.send(frame(MESSAGE, 2, b"{}"))
        assert await next_end(ws, 2) == (1008, "message after end of request body")


async def test_a_configured_half_close_message_is_what_half_close_frames_become(server_name: str) -> None:
    async with mux_proxy(server_name, half_close_message="END") as (srv, _), connect_mux(srv.ws) as conn:
        replies = await asyncio.gather(
            *(conn.unary("/v1/echo", {"message": f"m{n}"}, method="POST") for n in range(200))
        )
        assert replies == [{"message": f"m{n}", "method": "POST"} for n in range(200)]
        total = await conn.client_stream("/v1/sum", ({"value": n} for n in range(2000)), method="POST")
        assert total == {"total": 1999000, "count": 2000}


# Every server, uvicorn's legacy implementation included, each in a process of its own.


async def test_mux_on_every_server(server_impl: str) -> None:
    with server_process(server_impl, "tests.support.liveness_apps:app") as server:
        url = server.running.ws
        async with connect_mux(url, open_timeout=30) as conn:
            replies = await asyncio.gather(*(conn.unary("/echo?method=POST", {"n": n}) for n in range(20)))
            assert replies == [{"n": n} for n in range(20)]
            async with conn.bidi("/echo?method=POST") as call:
                await call.send({"a": 1})
                assert await anext(call) == {"a": 1}  # before the half-close
                await call.close_send()
                assert [rest async for rest in call] == []
            # A producer that never awaits anything but send: held by its credit, not the socket.
            async with conn.connect("/produce") as produced:
                for _ in range(1000):
                    assert await anext(produced) == "x" * 100  # {"result": x} arrives as x
                assert await conn.unary("/echo?method=POST", {"still": True}) == {"still": True}
            # The socket vanishes under an open producer: it ends (its send raised).
            vanishing = await conn.open("/produce")
            await anext(vanishing)
            conn._websocket.transport.abort()
        async with ws_connect(url + "/state?wait=ended", open_timeout=30) as state:
            counts = json.loads(await asyncio.wait_for(state.recv(), timeout=30))
        assert counts == {"running": 0, "ended": 2}
        async with raw_mux(server.running) as ws:
            await ws.send(b"\x02\x00\x00")
            with pytest.raises(ConnectionClosed):
                await read_until_closed(ws)
            assert ws.close_code == 1002
        assert server.stop(), "the server ignored SIGTERM and was killed"
        assert server.error_lines() == [], server.stderr()


async def test_a_socket_without_calls_honours_the_idle_timeout(server_name: str) -> None:
    async with mux_proxy(server_name, idle_timeout=1) as (srv, _), raw_mux(srv) as ws:
        await socket_still_serves(ws, 1)
        with pytest.raises(ConnectionClosed):
            await read_until_closed(ws)
        assert (ws.close_code, ws.close_reason) == (1001, "idle timeout")


async def test_stream_hooks_fire_once_per_call(server_name: str) -> None:
    ended: list[tuple[str, int | None]] = []
    hooks = {"on_stream_end": lambda stats: ended.append((stats.path, stats.close_code))}
    async with mux_proxy(server_name, **hooks) as (srv, _), connect_mux(srv.ws) as conn:
        await conn.unary("/v1/echo", {"message": "a"}, method="POST")
        with pytest.raises(HTTPStatusError):
            await conn.unary("/v1/nowhere")
        await eventually(lambda: len(ended) == 2)
    assert ended == [("/v1/echo", 1000), ("/v1/nowhere", 4404)]


async def test_authenticate_runs_for_the_connection_and_for_each_call(server_name: str) -> None:
    async def authenticate(scope: Scope) -> None:
        headers = dict(scope["headers"])
        if headers.get(b"authorization") == b"Bearer bad":
            raise HandshakeRejected(401, "bad token")
        headers_out = [*scope["headers"], (b"x-user", b"checked")]
        scope["headers"] = headers_out

    options: dict[str, Any] = {"authenticate": authenticate, "forwarded_headers": ["authorization"]}
    async with mux_proxy(server_name, **options) as (srv, _):
        with pytest.raises(HTTPStatusError) as refused:
            async with connect_mux(srv.ws, token="bad"):
                pass
        assert refused.value.status == 401  # the connection: before the upgrade
        async with connect_mux(srv.ws) as conn:
            seen = await conn.unary("/v1/headers")
            assert seen["x-user"] == "checked"  # the hook ran for this call
            with pytest.raises(HTTPStatusError) as call_refused:  # a per-call token is checked too
                await conn.unary("/v1/headers", headers={"authorization": "Bearer bad"})
            assert (call_refused.value.code, call_refused.value.reason) == (4401, "bad token")
            assert (await conn.unary("/v1/headers"))["x-user"] == "checked"
