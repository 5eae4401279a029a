"""The in-process binding behaves like the channel binding: context, status, metadata, deadlines, interceptors.

Every test runs over both bindings (the `binding` fixture): the servicer behind a real grpc.aio
server and channel, or called in-process. Servicers come in both stream styles (async generators
and request iterators, or `context.read()`/`context.write()`). `test_both_bindings_answer_alike`
sends one table of requests to both bindings side by side and compares everything the client sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import httpx
import pytest
from websockets.asyncio.client import connect

from example_service.proto.example.v1 import echo_pb2, echo_pb2_grpc
from tests.support.echo_servicers import SERVICE, STYLES, Context, GeneratorStyle
from tests.support.servers import Running, drain, serve_on
from wsproxy import WebSocketProxyMiddleware
from wsproxy.client import HTTPStatusError, connect_mux, unary
from wsproxy.gateway import Gateway, InProcessBinding

# uvicorn's legacy websockets implementation, run in this process (server_impl "websockets"), also
# warns about its handler signature; tests.support.servers.LEGACY_WARNINGS does not list that one yet.
pytestmark = pytest.mark.filterwarnings("ignore:remove second argument of ws_handler:DeprecationWarning")


@contextlib.asynccontextmanager
async def gateway(
    binding: str, servicer: Any, interceptors: list[Any] | None = None, *, server: str = "websockets-sansio"
) -> AsyncIterator[Running]:
    """The servicer behind the gateway (and wsproxy) on a real server (tests.support.servers.SERVERS), over the binding."""
    if binding == "inprocess":
        in_process = InProcessBinding(interceptors=interceptors or ())
        echo_pb2_grpc.add_EchoServiceServicer_to_server(servicer, in_process)
        async with serve_on(server, WebSocketProxyMiddleware(Gateway(in_process, [SERVICE]))) as running:
            yield running
        return
    grpc_server = grpc.aio.server(interceptors=interceptors)
    echo_pb2_grpc.add_EchoServiceServicer_to_server(servicer, grpc_server)
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    await grpc_server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            app = WebSocketProxyMiddleware(Gateway(channel, [SERVICE]))
            async with serve_on(server, app) as running:
                yield running
    finally:
        await grpc_server.stop(grace=None)


@pytest.fixture(params=list(STYLES))
def servicer(request: pytest.FixtureRequest) -> GeneratorStyle:
    return STYLES[request.param]()


@pytest.fixture
async def client(binding: str, servicer: GeneratorStyle) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway(binding, servicer) as running, httpx.AsyncClient(base_url=running.http) as client:
        yield client


def lines(body: str) -> list[Any]:
    return [json.loads(line) for line in body.splitlines() if line]


async def echo(client: httpx.AsyncClient, text: str, **headers: str) -> httpx.Response:
    return await client.post("/v1/echo", json={"message": text}, headers=headers)


async def test_initial_metadata_becomes_response_headers(client: httpx.AsyncClient) -> None:
    response = await echo(client, "headers")
    assert (response.status_code, response.json()) == (200, {"message": "headers"})
    assert response.headers["grpc-metadata-x-initial"] == "one"
    assert response.headers["grpc-metadata-x-raw-bin"] == "AP8="


async def test_abort_after_initial_metadata_keeps_the_headers(client: httpx.AsyncClient) -> None:
    response = await echo(client, "abort after headers")
    assert (response.status_code, response.json()) == (
        403,
        {"code": 7, "message": "not yours", "details": []},
    )
    assert response.headers["grpc-metadata-x-initial"] == "two"


async def test_servicer_exception_is_unknown_500(client: httpx.AsyncClient) -> None:
    response = await echo(client, "boom")
    assert (response.status_code, response.json()) == (
        500,
        {"code": 2, "message": "Unexpected <class 'ValueError'>: boom", "details": []},
    )


async def test_servicer_exception_keeps_a_code_it_set(client: httpx.AsyncClient) -> None:
    response = await echo(client, "boom with code")
    assert (response.status_code, response.json()["code"]) == (429, 8)


async def test_set_code_and_details_without_raising(client: httpx.AsyncClient) -> None:
    response = await echo(client, "set code")
    assert (response.status_code, response.json()) == (
        404,
        {"code": 5, "message": "no such echo", "details": []},
    )


async def test_grpc_timeout_header_is_the_deadline(
    client: httpx.AsyncClient, servicer: GeneratorStyle
) -> None:
    response = await echo(client, "slow", **{"Grpc-Timeout": "200m"})
    assert (response.status_code, response.json()) == (
        504,
        {"code": 4, "message": "Deadline Exceeded", "details": []},
    )
    assert await asyncio.wait_for(servicer.ended.get(), timeout=10) == ("Echo", False)


async def test_a_websocket_calls_grpc_timeout_parameter_is_the_services_deadline(
    binding: str, servicer: GeneratorStyle
) -> None:
    """docs/protocol.md: `?grpc-timeout=` reaches the service as its deadline, single socket and mux;
    an expired one closes 4504 after the DEADLINE_EXCEEDED body."""
    async with gateway(binding, servicer) as running:
        async with connect(running.ws + "/v1/echo?method=POST&grpc-timeout=30S") as ws:
            await ws.send('{"message": "time remaining"}')
            await ws.send("")
            assert await drain(ws) == (['{"message":"30"}'], 1000, "")
        async with connect(running.ws + "/v1/echo?method=POST&grpc-timeout=200m") as ws:
            await ws.send('{"message": "slow"}')
            await ws.send("")
            frames, code, reason = await asyncio.wait_for(drain(ws), 10)
        assert (code, reason) == (4504, "Gateway Timeout")
        assert json.loads(frames[0]) == {"code": 4, "message": "Deadline Exceeded", "details": []}
        assert await asyncio.wait_for(servicer.ended.get(), timeout=10) == ("Echo", False)
        async with connect_mux(running.ws) as conn:
            assert await conn.unary(
                "/v1/echo?grpc-timeout=30S", {"message": "time remaining"}, method="POST"
            ) == {"message": "30"}
            with pytest.raises(HTTPStatusError) as error:
                await asyncio.wait_for(
                    conn.unary("/v1/echo?grpc-timeout=200m", {"message": "slow"}, method="POST"), 10
                )
            assert (error.value.status, error.value.code) == (504, 4504)
            # The Python client's timeout= is the same deadline: the service's 504 comes within the
            # client's own bound (the timeout plus its 1 s grace).
            assert await conn.unary("/v1/echo", {"message": "time remaining"}, method="POST", timeout=30) == {
                "message": "30"
            }
            with pytest.raises(HTTPStatusError) as error:
                await conn.unary("/v1/echo", {"message": "slow"}, method="POST", timeout=0.2)
            assert (error.value.status, error.value.code) == (504, 4504)
        with pytest.raises(HTTPStatusError) as error:
            await unary(running.ws + "/v1/echo", {"message": "slow"}, method="POST", timeout=0.2)
        assert (error.value.status, error.value.code) == (504, 4504)


async def test_time_remaining_counts_down_from_the_header(client: httpx.AsyncClient) -> None:
    assert (await echo(client, "time remaining", **{"Grpc-Timeout": "30S"})).json() == {"message": "30"}


async def test_peer_is_the_loopback_address(client: httpx.AsyncClient) -> None:
    assert (await echo(client, "peer")).json() == {"message": "ipv4:127.0.0.1"}


async def test_server_stream_in_each_style_then_an_abort_line(client: httpx.AsyncClient) -> None:
    ok = await client.get("/v1/ticker", params={"count": 3, "interval_ms": 0})
    assert [line["result"]["seq"] for line in lines(ok.text)] == [0, 1, 2]
    failed = await client.get("/v1/ticker", params={"count": 2, "interval_ms": 1})
    *ticks, error = lines(failed.text)
    assert (len(ticks), error) == (2, {"error": {"code": 11, "message": "past the end", "details": []}})


async def test_client_stream_in_each_style(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/sum", content=b'{"value": 2}\n{"value": 3}\n')
    assert response.json() == {"total": "5", "count": 2}


async def test_deadline_mid_stream_is_an_error_line(
    client: httpx.AsyncClient, servicer: GeneratorStyle
) -> None:
    response = await client.get(
        "/v1/ticker", params={"count": 1000, "interval_ms": 20}, headers={"Grpc-Timeout": "300m"}
    )
    *ticks, error = lines(response.text)
    assert 1 <= len(ticks) < 1000
    # grpcio's client sometimes words it "Stream removed (Deadline Exceeded)" when the deadline hits mid-stream.
    assert error["error"]["code"] == 4
    assert error["error"]["message"] in ("Deadline Exceeded", "Stream removed (Deadline Exceeded)")
    assert await asyncio.wait_for(servicer.ended.get(), timeout=10) == ("Ticker", False)


async def test_bidi_over_websocket_then_disconnect_cancels_the_servicer(
    binding: str, servicer: GeneratorStyle, server_impl: str
) -> None:
    async with gateway(binding, servicer, server=server_impl) as running:
        async with connect(running.ws + "/v1/chat?method=POST") as ws:
            for seq, text in enumerate(["a", "b", "c"]):
                await ws.send(json.dumps({"text": text}))
                assert json.loads(await ws.recv()) == {"result": {"text": text, "seq": seq}}
        # grpcio documents cancelled() as True here, but its 1.85 server answers False; in-process keeps the doc.
        assert await asyncio.wait_for(servicer.ended.get(), timeout=10) == ("Chat", binding == "inprocess")


async def test_bidi_half_close_ends_the_call_normally(binding: str, servicer: GeneratorStyle) -> None:
    async with gateway(binding, servicer) as running:
        async with connect(running.ws + "/v1/chat?method=POST") as ws:
            await ws.send(json.dumps({"text": "only"}))
            await ws.send("")
            frames, code, _ = await drain(ws)
        assert ([json.loads(frame) for frame in frames], code) == (
            [{"result": {"text": "only", "seq": 0}}],
            1000,
        )
        assert await asyncio.wait_for(servicer.ended.get(), timeout=10) == ("Chat", False)


# -- the same requests against both bindings, side by side --

REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/v1/echo", {"json": {"message": "hi"}}),
    ("POST", "/v1/echo", {"json": {"message": "headers"}}),
    ("POST", "/v1/echo", {"json": {"message": "abort after headers"}}),
    ("POST", "/v1/echo", {"json": {"message": "boom"}}),
    ("POST", "/v1/echo", {"json": {"message": "set code"}}),
    ("POST", "/v1/echo", {"json": {"message": "slow"}, "headers": {"Grpc-Timeout": "50m"}}),
    ("POST", "/v1/echo", {"json": {"message": "metadata"}, "headers": {"Grpc-Metadata-Trace-Id": "t1"}}),
    ("POST", "/v1/echo", {"json": {"message": "x"}, "headers": {"Grpc-Timeout": "forever"}}),
    ("POST", "/v1/echo", {"content": b'{"message": 5'}),
    ("GET", "/v1/ticker", {"params": {"count": 2, "interval_ms": 1}}),
    ("GET", "/v1/ticker", {"params": {"count": 2, "interval_ms": 2}}),
    ("GET", "/v1/ticker", {"params": {"count": 0, "interval_ms": 2}}),
    ("GET", "/v1/ticker", {"params": {"count": "x"}}),
    ("POST", "/v1/sum", {"content": b'{"value": 1}{"value": "2"}'}),
    ("POST", "/v1/sum", {"content": b'{"value": 1}{"value": "two"}'}),
    ("POST", "/v1/chat", {"content": b'{"text": "a"}\n{"text": "b"}\n'}),
    ("GET", "/v1/whoami", {"headers": {"Authorization": "Bearer x"}}),
]


def seen(response: httpx.Response) -> tuple[int, list[tuple[str, str]], str]:
    headers = sorted(
        (k, v) for k, v in response.headers.items() if k.startswith("grpc-") or k == "content-type"
    )
    return response.status_code, headers, response.text


async def test_both_bindings_answer_alike(servicer: GeneratorStyle) -> None:
    answers: dict[str, list[Any]] = {}
    for binding in ("inprocess", "channel"):
        async with gateway(binding, servicer) as running, httpx.AsyncClient(base_url=running.http) as client:
            answers[binding] = [seen(await client.request(method, url, **kw)) for method, url, kw in REQUESTS]
    for request, inprocess, channel in zip(REQUESTS, answers["inprocess"], answers["channel"], strict=True):
        assert inprocess == channel, request


# -- interceptors --


class RequireToken(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]  # generic only in the stubs
    """Rejects calls without `authorization: Bearer good`, with a handler of the method's own kind."""

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], details: grpc.HandlerCallDetails
    ) -> Any:
        handler = await continuation(details)
        if ("authorization", "Bearer good") in tuple(details.invocation_metadata or ()):
            return handler

        async def deny(request: Any, context: Context) -> Any:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "token required")

        return (
            grpc.unary_unary_rpc_method_handler(deny)
            if not handler.response_streaming
            else _like(handler, deny)
        )


def _like(handler: Any, deny: Any) -> Any:
    async def deny_stream(request: Any, context: Context) -> AsyncIterator[Any]:
        await deny(request, context)
        yield None  # pragma: no cover - abort raises

    make = (
        grpc.stream_stream_rpc_method_handler
        if handler.request_streaming
        else grpc.unary_stream_rpc_method_handler
    )
    return make(deny_stream)


class CountCalls(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]  # generic only in the stubs
    """Wraps every handler so each call is counted when the servicer method actually runs."""

    def __init__(self) -> None:
        self.intercepted: list[str] = []
        self.ran: list[str] = []

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], details: grpc.HandlerCallDetails
    ) -> Any:
        self.intercepted.append(details.method.rsplit("/", 1)[-1])
        handler = await continuation(details)
        name = details.method.rsplit("/", 1)[-1]
        if handler.response_streaming:
            inner = handler.stream_stream or handler.unary_stream

            async def streaming(request: Any, context: Context) -> AsyncIterator[Any]:
                self.ran.append(name)
                result = inner(request, context)
                if hasattr(result, "__aiter__"):
                    async for response in result:
                        yield response
                else:
                    await result

            make = (
                grpc.stream_stream_rpc_method_handler
                if handler.request_streaming
                else grpc.unary_stream_rpc_method_handler
            )
            return make(streaming, handler.request_deserializer, handler.response_serializer)
        inner = handler.stream_unary or handler.unary_unary

        async def unary(request: Any, context: Context) -> Any:
            self.ran.append(name)
            return await inner(request, context)

        make = (
            grpc.stream_unary_rpc_method_handler
            if handler.request_streaming
            else grpc.unary_unary_rpc_method_handler
        )
        return make(unary, handler.request_deserializer, handler.response_serializer)


async def test_interceptors_reject_without_a_token_and_wrap_every_call(
    binding: str, servicer: GeneratorStyle
) -> None:
    counter = CountCalls()
    async with gateway(binding, servicer, [counter, RequireToken()]) as running:
        async with httpx.AsyncClient(base_url=running.http) as client:
            denied = await client.post("/v1/echo", json={"message": "hi"})
            assert (denied.status_code, denied.json()) == (
                401,
                {"code": 16, "message": "token required", "details": []},
            )
            denied_stream = await client.get("/v1/ticker", params={"count": 2})
            # A stream's error before its first message: the mapped status and an {"error": ...} line.
            assert (denied_stream.status_code, denied_stream.json()["error"]["code"]) == (401, 16)
            good = {"Authorization": "Bearer good"}
            assert (await client.post("/v1/echo", json={"message": "hi"}, headers=good)).json() == {
                "message": "hi"
            }
            ticks = await client.get("/v1/ticker", params={"count": 2}, headers=good)
            assert len(lines(ticks.text)) == 2
            total = await client.post("/v1/sum", content=b'{"value": 4}', headers=good)
            assert total.json() == {"total": "4", "count": 1}
        async with connect(running.ws + "/v1/chat?method=POST", subprotocols=["Bearer", "good"]) as ws:  # type: ignore[list-item]
            await ws.send(json.dumps({"text": "hello"}))
            assert json.loads(await ws.recv()) == {"result": {"text": "hello", "seq": 0}}
        async with connect(running.ws + "/v1/chat?method=POST") as ws:
            frames, code, _ = await drain(ws)
            assert (json.loads(frames[-1])["error"]["code"], code) == (16, 4401)
    assert counter.intercepted == ["Echo", "Ticker", "Echo", "Ticker", "Sum", "Chat", "Chat"]
    # The counter wraps what RequireToken returns: the denying handler runs too.
    assert counter.ran == ["Echo", "Ticker", "Echo", "Ticker", "Sum", "Chat", "Chat"]


# -- hostile timing --


class SlowChat(GeneratorStyle):
    """Takes a little time per message, so a flooding client runs into backpressure."""

    async def Chat(self, request_iterator: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
        seq = 0
        async for message in request_iterator:
            await asyncio.sleep(0.0005)
            yield echo_pb2.ChatReply(text=message.text, seq=seq)
            seq += 1


class StubbornChat(GeneratorStyle):
    """Swallows the cancellation and returns as if nothing happened."""

    async def Chat(self, request_iterator: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
        try:
            async for message in request_iterator:
                yield echo_pb2.ChatReply(text=message.text)
        except asyncio.CancelledError:
            self.ended.put_nowait(("swallowed", False))


async def test_flooding_client_gets_every_reply_in_order(binding: str, server_impl: str) -> None:
    async with (
        gateway(binding, SlowChat(), server=server_impl) as running,
        connect(running.ws + "/v1/chat?method=POST") as ws,
    ):
        for n in range(300):
            await ws.send(json.dumps({"text": str(n)}))
        await ws.send("")
        frames, code, _ = await asyncio.wait_for(drain(ws), 30)
    assert [json.loads(frame)["result"]["text"] for frame in frames] == [str(n) for n in range(300)]
    assert code == 1000


async def test_client_vanishing_mid_burst_cancels_and_the_server_keeps_serving(
    binding: str, server_impl: str
) -> None:
    servicer = GeneratorStyle()
    async with gateway(binding, servicer, server=server_impl) as running:
        async with connect(running.ws + "/v1/chat?method=POST") as ws:
            for n in range(50):
                await ws.send(json.dumps({"text": str(n)}))
            await ws.recv()
            ws.transport.abort()  # no close frame: the TCP connection just goes
        assert (await asyncio.wait_for(servicer.ended.get(), timeout=10))[0] == "Chat"
        async with connect(running.ws + "/v1/echo?method=POST") as ws:
            await ws.send(json.dumps({"message": "still here"}))
            assert (await drain(ws))[:2] == (['{"message":"still here"}'], 1000)


async def test_servicer_swallowing_its_cancellation_does_not_hold_the_gateway(binding: str) -> None:
    servicer = StubbornChat()
    async with gateway(binding, servicer) as running:
        async with connect(running.ws + "/v1/chat?method=POST") as ws:
            await ws.send(json.dumps({"text": "x"}))
            assert json.loads(await ws.recv())["result"]["text"] == "x"
        async with httpx.AsyncClient(base_url=running.http) as client:
            assert (await echo(client, "after")).json() == {"message": "after"}


class DenyAllUnary(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]  # generic only in the stubs
    """Answers every call with one unary handler, whatever the method's kind."""

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], details: grpc.HandlerCallDetails
    ) -> Any:
        async def deny(request: Any, context: Context) -> Any:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"denied after {type(request).__name__}")

        handler = await continuation(details)
        return grpc.unary_unary_rpc_method_handler(deny, request_deserializer=handler.request_deserializer)


async def test_a_unary_handler_on_a_bidi_call_gets_the_first_message(binding: str) -> None:
    async with (
        gateway(binding, GeneratorStyle(), [DenyAllUnary()]) as running,
        connect(running.ws + "/v1/chat?method=POST") as ws,
    ):
        await ws.send(json.dumps({"text": "first"}))
        frames, code, _ = await asyncio.wait_for(drain(ws), 10)
    assert [json.loads(frame) for frame in frames] == [
        {"error": {"code": 7, "message": "denied after ChatMessage", "details": []}}
    ]
    assert code == 4403
