"""The Python client end to end: a real uvicorn serving a small NDJSON app behind the middleware, and the
mux client against real servers that break the rules."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.typing import Subprotocol

from tests.support.ndjson_service import INVALID_ARGUMENT, collect, ndjson_app
from tests.support.servers import Running, serve
from wsproxy import WebSocketProxyMiddleware
from wsproxy.client import (
    BadGatewayError,
    Call,
    CallError,
    ConnectError,
    ConnectionLostError,
    HTTPStatusError,
    MessageTooBigError,
    PolicyViolationError,
    ProxyInternalError,
    StreamError,
    UnexpectedCloseError,
    bidi,
    client_stream,
    connect,
    connect_mux,
    server_stream,
    unary,
)


@contextlib.asynccontextmanager
async def proxy(ws: str = "auto", **options: Any) -> AsyncIterator[Running]:
    async with serve(cast(Any, WebSocketProxyMiddleware(ndjson_app, **options)), ws=ws) as server:
        yield server


async def test_four_call_kinds(ws_impl: str) -> None:
    async with proxy(ws_impl) as srv:
        echoed = await unary(f"{srv.ws}/v1/echo", {"message": "hi"}, method="POST")
        assert echoed == {"message": "hi", "method": "POST"}

        ticks = [tick async for tick in server_stream(f"{srv.ws}/v1/ticker?count=3")]
        assert ticks == [{"seq": 0}, {"seq": 1}, {"seq": 2}]

        total = await client_stream(f"{srv.http}/v1/sum", ({"value": n} for n in (1, 2, 3)), method="POST")
        assert total == {"total": 6, "count": 3}

        async with bidi(f"{srv.ws}/v1/chat", method="POST") as call:
            await call.send({"text": "one"})
            assert await anext(call) == {"reply": "ONE"}  # the reply comes before the body ends
            await call.send({"text": "two"})
            assert await anext(call) == {"reply": "TWO"}
            await call.close_send()
            assert [reply async for reply in call] == []
            assert call.close_code == 1000


async def test_client_stream_from_an_async_iterable() -> None:
    async def values() -> AsyncIterator[dict[str, int]]:
        for n in range(5):
            yield {"value": n}

    async with proxy() as srv:
        assert await client_stream(f"{srv.ws}/v1/sum", values(), method="POST") == {"total": 10, "count": 5}


async def test_raw_lines() -> None:
    async with proxy() as srv:
        lines = [line async for line in server_stream(f"{srv.ws}/v1/ticker?count=2", raw=True)]
        assert lines == ['{"result": {"seq": 0}}', '{"result": {"seq": 1}}']


@pytest.mark.parametrize(("status", "selected"), [(True, "wsproxy.status.v1"), (False, "Bearer")])
async def test_token_becomes_bearer_authorization(status: bool, selected: str) -> None:
    async with proxy() as srv, connect(f"{srv.ws}/v1/whoami", token="t0k.en-1", status=status) as call:
        assert call.subprotocol == selected  # the status contract, when offered, else the Bearer pair
        await call.close_send()
        assert await call.result() == {"authorization": "Bearer t0k.en-1"}


async def test_http_error_status_carries_the_error_json(ws_impl: str) -> None:
    async with proxy(ws_impl) as srv:
        with pytest.raises(HTTPStatusError) as caught:
            await unary(f"{srv.ws}/v1/echo", {"message": ""}, method="POST")
    error = caught.value
    assert (error.status, error.code, error.reason) == (400, 4400, "Bad Request")
    assert (error.grpc_code_name, error.message, error.error_body) == (
        "INVALID_ARGUMENT",
        "message must not be empty",
        INVALID_ARGUMENT,
    )


async def test_iteration_does_not_yield_the_error_json_as_a_message() -> None:
    async with proxy() as srv, connect(f"{srv.ws}/v1/echo", method="POST") as call:
        await call.send({"message": ""})
        await call.close_send()
        received: list[Any] = []
        with pytest.raises(HTTPStatusError, match="HTTP 400 INVALID_ARGUMENT"):
            await collect(call, received)
        assert received == []


async def test_not_found_with_a_plain_body() -> None:
    async with proxy() as srv:
        with pytest.raises(HTTPStatusError) as caught:
            await unary(f"{srv.ws}/v1/nowhere")
    assert (caught.value.status, caught.value.code, str(caught.value)) == (404, 4404, "HTTP 404 Not Found")


async def test_error_line_in_a_stream_raises_after_the_results() -> None:
    async with proxy() as srv:
        received: list[Any] = []
        with pytest.raises(StreamError) as caught:
            await collect(server_stream(f"{srv.ws}/v1/ticker?count=2&fail=1"), received)
    assert received == [{"seq": 0}, {"seq": 1}]
    assert (caught.value.status, caught.value.grpc_code_name, caught.value.message) == (
        503,
        "UNAVAILABLE",
        "ticker broke",
    )


async def test_app_that_raises_is_an_internal_error_without_its_text() -> None:
    async with proxy() as srv:
        with pytest.raises(ProxyInternalError) as caught:
            await unary(f"{srv.ws}/v1/raise")
    assert caught.value.code == 1011
    assert "secret" not in str(caught.value)


async def test_upstream_failure_is_bad_gateway_after_the_lines_before_it() -> None:
    async with proxy() as srv:
        received: list[Any] = []
        with pytest.raises(BadGatewayError) as caught:
            await collect(server_stream(f"{srv.ws}/v1/upstream"), received)
    assert (received, caught.value.code) == ([1], 1014)


async def test_response_line_over_the_proxy_limit_is_message_too_big() -> None:
    async with proxy(max_line_size=1024) as srv:
        with pytest.raises(MessageTooBigError) as caught:
            await unary(f"{srv.ws}/v1/big")
    assert caught.value.code == 1009


async def test_response_line_over_the_client_limit_is_message_too_big() -> None:
    async with proxy() as srv:
        with pytest.raises(MessageTooBigError):
            await unary(f"{srv.ws}/v1/big", max_size=1024)


async def test_message_over_the_proxy_limit_fails_the_send_or_the_result() -> None:
    async with proxy(max_message_size=100) as srv:
        with pytest.raises(MessageTooBigError):
            await client_stream(f"{srv.ws}/v1/sum", [{"value": 1, "pad": "x" * 200}] * 3, method="POST")


async def send_until_it_fails(call: Call) -> None:
    """Send until the proxy's close arrives; each round lets the reading task run."""
    for _ in range(500):
        await call.send({"text": "small"})
        await asyncio.sleep(0.01)


async def test_send_while_another_task_reads_reports_the_outcome_to_both() -> None:
    async with proxy(max_message_size=100) as srv, bidi(f"{srv.ws}/v1/chat", method="POST") as call:
        received: list[Any] = []
        reader = asyncio.create_task(collect(call, received))
        await call.send({"text": "x" * 200})
        with pytest.raises(MessageTooBigError):
            await send_until_it_fails(call)
        with pytest.raises(MessageTooBigError):
            await reader
    assert received == []


async def test_message_after_the_half_close_is_a_policy_violation() -> None:
    # The client refuses this itself; a second half-close-less connection shows the proxy's answer.
    async with proxy() as srv, connect(f"{srv.ws}/v1/chat", method="POST") as call:
        await call.close_send()
        with pytest.raises(RuntimeError, match="close_send"):
            await call.send({"text": "late"})
    async with proxy(half_close_message="END") as srv, connect(f"{srv.ws}/v1/hold", method="POST") as call:
        await call.send("END")
        await call.send({"text": "late"})
        with pytest.raises(PolicyViolationError) as caught:
            await call.result()
    assert caught.value.code == 1008


async def test_idle_call_is_closed_going_away() -> None:
    async with proxy(idle_timeout=0.2) as srv, connect(f"{srv.ws}/v1/hold", method="POST") as call:
        with pytest.raises(UnexpectedCloseError) as caught:
            await call.result()
    assert (caught.value.code, caught.value.reason) == (1001, "idle timeout")


async def test_busy_proxy_refuses_with_503() -> None:
    async with proxy(max_connections=1) as srv, bidi(f"{srv.ws}/v1/chat", method="POST"):
        with pytest.raises(HTTPStatusError) as caught:
            await unary(f"{srv.ws}/v1/whoami")
    assert (caught.value.status, caught.value.code, caught.value.message) == (
        503,
        None,
        "too many connections",
    )


async def test_refused_origin_is_403_with_the_reason() -> None:
    async with proxy(allowed_origins=["https://good.example"]) as srv:
        with pytest.raises(HTTPStatusError) as caught:
            await unary(f"{srv.ws}/v1/whoami", origin="https://evil.example")
        assert await unary(f"{srv.ws}/v1/whoami", origin="https://good.example") == {"authorization": ""}
    assert (caught.value.status, caught.value.code) == (403, None)


async def test_dropped_connection_is_connection_lost() -> None:
    async def drop(websocket: ServerConnection) -> None:
        await websocket.recv()
        websocket.transport.abort()

    async with ws_serve(drop, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        with pytest.raises(ConnectionLostError) as caught:
            await unary(f"ws://127.0.0.1:{port}/", {"x": 1})
    assert caught.value.code == 1006


async def test_nothing_listening_is_a_connect_error() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(ConnectError, match="cannot open a WebSocket"):
        await unary(f"ws://127.0.0.1:{port}/v1/echo")


async def test_result_insists_on_one_message() -> None:
    async with proxy() as srv:
        with pytest.raises(CallError, match="expected one response message, got 2"):
            await unary(f"{srv.ws}/v1/ticker?count=2")


async def test_compression_can_be_turned_off() -> None:
    async with proxy() as srv, connect(f"{srv.ws}/v1/chat", method="POST", compression=False) as call:
        assert call._websocket.protocol.extensions == []
        await call.send({"text": "plain"})
        assert await anext(call) == {"reply": "PLAIN"}
    async with proxy() as srv, connect(f"{srv.ws}/v1/chat", method="POST") as call:
        assert [type(e).__name__ for e in call._websocket.protocol.extensions] == ["PerMessageDeflate"]


# The mux client against servers that break the rules: a real `websockets` server on loopback.

LINE, END = 0x11, 0x13
Handler = Callable[[ServerConnection], Awaitable[None]]


@contextlib.asynccontextmanager
async def fake_server(handler: Handler, subprotocols: list[str]) -> AsyncIterator[str]:
    async with ws_serve(
        handler, "127.0.0.1", 0, subprotocols=[Subprotocol(item) for item in subprotocols]
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


async def after_open(ws: ServerConnection) -> int:
    """Wait for the client's OPEN; its call id."""
    data = await ws.recv()
    assert isinstance(data, bytes)
    kind, call_id = struct.unpack_from("!BI", data)
    assert kind == 0x01
    return int(call_id)


async def text_frame(ws: ServerConnection) -> None:
    await after_open(ws)
    await ws.send("not a mux frame")
    await ws.wait_closed()


async def line_without_credit(ws: ServerConnection) -> None:
    call_id = await after_open(ws)
    await ws.send(struct.pack("!BI", LINE, call_id) + b'"' + b"x" * 70000 + b'"')  # overdraws 65536
    await ws.send(struct.pack("!BI", LINE, call_id) + b'"late"')  # no credit left: a violation
    await ws.wait_closed()


async def bad_utf8_line(ws: ServerConnection) -> None:
    call_id = await after_open(ws)
    await ws.send(struct.pack("!BI", LINE, call_id) + b"\xff\xfe")
    await ws.wait_closed()


@pytest.mark.parametrize(
    ("handler", "reason"),
    [
        (text_frame, "text frame"),
        (line_without_credit, "flow control"),
        (bad_utf8_line, "not UTF-8"),
    ],
)
async def test_a_server_that_breaks_the_framing_fails_the_socket_with_1002(
    handler: Handler, reason: str
) -> None:
    async with fake_server(handler, ["wsproxy.mux.v1"]) as url, connect_mux(url) as conn:
        call = await conn.open("/v1/anything")
        with pytest.raises(UnexpectedCloseError) as failed:
            _ = [message async for message in call]
        assert failed.value.code == 1002
        assert reason in failed.value.reason
        assert conn.close_code == 1002


async def test_a_server_without_the_subprotocol_is_a_connect_error() -> None:
    async def old_wsproxy(ws: ServerConnection) -> None:
        await ws.wait_closed()

    async with fake_server(old_wsproxy, ["Bearer"]) as url:
        with pytest.raises(ConnectError, match=r"did not accept the wsproxy\.mux\.v1 subprotocol"):
            async with connect_mux(url, token="t"):
                pass


async def test_call_paths_stay_on_the_connections_host() -> None:
    async def quiet(ws: ServerConnection) -> None:
        await ws.wait_closed()

    async with fake_server(quiet, ["wsproxy.mux.v1"]) as url, connect_mux(url) as conn:
        with pytest.raises(ValueError, match="not on this connection's host"):
            await conn.open("ws://elsewhere.example/v1/echo")


# Deadlines: timeout= (docs/clients.md).


async def test_a_calls_timeout_is_sent_as_grpc_timeout_and_bounds_the_clients_wait() -> None:
    """The app here ignores deadlines: the client gives up after the timeout plus the 1 s grace."""
    from wsproxy.client import DeadlineExceededError, connect_mux, unary

    recorded: list[bytes | None] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        recorded.append(dict(scope["headers"]).get(b"grpc-timeout"))
        path = "/v1/whoami" if scope["path"] == "/v1/whoami" else "/v1/hold"
        await ndjson_app({**scope, "path": path}, receive, send)

    async with serve(cast(Any, WebSocketProxyMiddleware(app))) as srv:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(DeadlineExceededError) as error:
            await asyncio.wait_for(unary(f"{srv.ws}/v1/any?x=1", timeout=0.25), 10)
        waited = loop.time() - started
        assert error.value.code is None
        assert 0.25 + 1.0 <= waited < 0.25 + 1.0 + 3.0  # the timeout plus DEADLINE_GRACE_SECONDS
        async with connect_mux(srv.ws) as conn:
            with pytest.raises(DeadlineExceededError):
                await asyncio.wait_for(conn.unary("/v1/any", timeout=1.5), 10)
            # The socket is still up for other calls; a call without a timeout sends none.
            assert await conn.unary("/v1/whoami") == {"authorization": ""}
    assert recorded == [b"250m", b"1500m", None]
