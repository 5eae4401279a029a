"""Both Python clients and `wsproxy.status.v1` (docs/clients.md) on real uvicorn servers: a FastAPI
app's error status before any line, the status and headers of a 200, trailers through wsproxy's own
gateway, `status=False`, and servers that do not speak the contract."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, cast

import pytest
from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.responses import StreamingResponse

from example_service.proto.example.v1 import echo_pb2_grpc
from tests.support.echo_servicers import SERVICE, GeneratorStyle
from tests.support.frameworks import ndjson, request_lines
from tests.support.frameworks.starlette_app import DuplexStreamingResponse
from tests.support.ndjson_service import collect
from tests.support.servers import Running, serve
from wsproxy import WebSocketProxyMiddleware
from wsproxy.client import Call, CallError, HTTPStatusError, MuxCall, connect, connect_mux
from wsproxy.gateway import Gateway, InProcessBinding
from wsproxy.mux import _frames as mux

RUNS = 100
CLIENTS = ("single", "mux")
FORBIDDEN: tuple[Any, ...] = ("HTTPStatusError", 403, 4403, {"detail": "bad token"}, [])


def status_app() -> FastAPI:
    """A server stream and a bidi chat behind a token check that raises HTTPException(403) first."""
    app = FastAPI()

    def check(authorization: str | None) -> None:
        if authorization != "Bearer good":
            raise HTTPException(status_code=403, detail="bad token")

    @app.get("/v1/stream")
    async def stream(authorization: Annotated[str | None, Header()] = None) -> StreamingResponse:
        check(authorization)

        async def lines() -> AsyncIterator[bytes]:
            for n in range(3):
                yield ndjson({"n": n})

        response = StreamingResponse(
            lines(), media_type="application/x-ndjson", headers={"x-request-id": "r-1"}
        )
        response.set_cookie("session", "secret", httponly=True)
        return response

    @app.post("/v1/chat")
    async def chat(
        request: Request, authorization: Annotated[str | None, Header()] = None
    ) -> StreamingResponse:
        check(authorization)

        async def replies() -> AsyncIterator[bytes]:
            # Each reply is shaped like grpc-gateway's error body: a 2xx status says it is a message.
            async for line in request_lines(request.stream()):
                yield ndjson({"code": line["n"], "message": "reply"})

        return DuplexStreamingResponse(replies(), media_type="application/x-ndjson")

    return app


@contextlib.asynccontextmanager
async def proxied_app() -> AsyncIterator[Running]:
    async with serve(cast(Any, WebSocketProxyMiddleware(status_app()))) as server:
        yield server


OpenCall = Callable[..., contextlib.AbstractAsyncContextManager[Call | MuxCall]]


@contextlib.asynccontextmanager
async def calls(client: str, base: str, token: str) -> AsyncIterator[OpenCall]:
    """Opens calls to paths on `base` with either client: a socket per call, or one mux socket for all."""
    if client == "single":
        yield lambda path, **options: connect(base + path, token=token, **options)
        return
    async with connect_mux(base, token=token) as conn:
        yield conn.connect


async def server_stream(open_call: OpenCall, received: list[Any]) -> None:
    async with open_call("/v1/stream") as call:
        await call.close_send()
        await collect(call, received)


async def bidi_send_first(open_call: OpenCall, received: list[Any]) -> None:
    async with open_call("/v1/chat", method="POST") as call:
        await call.send({"n": 1})  # raises the call's error if the call already ended
        await collect(call, received)


async def bidi_iterate_first(open_call: OpenCall, received: list[Any]) -> None:
    async with open_call("/v1/chat", method="POST") as call:
        with pytest.raises(HTTPStatusError) as ended:
            await collect(call, received)
        with pytest.raises(HTTPStatusError) as late:
            await call.send({"n": 1})  # the call ended first: its error again
        assert late.value is ended.value
        raise late.value


async def outcome(
    shape: Callable[[OpenCall, list[Any]], Awaitable[None]], open_call: OpenCall
) -> tuple[Any, ...]:
    received: list[Any] = []
    try:
        await shape(open_call, received)
    except CallError as error:
        body = getattr(error, "error_body", None)
        return (type(error).__name__, getattr(error, "status", None), error.code, body, received)
    return ("no error", received)


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("shape", [server_stream, bidi_send_first, bidi_iterate_first])
async def test_fastapi_403_raises_before_any_line_every_time(
    client: str, shape: Callable[[OpenCall, list[Any]], Awaitable[None]]
) -> None:
    async with proxied_app() as srv, calls(client, srv.ws, "bad") as open_call:
        outcomes = [await outcome(shape, open_call) for _ in range(RUNS)]
    assert [run for run, seen in enumerate(outcomes) if seen != FORBIDDEN] == []
    assert outcomes == [FORBIDDEN] * RUNS


async def test_forbidden_error_reads_like_fastapis_detail() -> None:
    async with proxied_app() as srv, connect(f"{srv.ws}/v1/stream", token="bad") as call:
        with pytest.raises(HTTPStatusError) as caught:
            await call.initial_metadata()
    error = caught.value
    assert (call.status, error.status, error.code, error.reason) == (403, 403, 4403, "Forbidden")
    assert (error.message, str(error)) == ("bad token", "HTTP 403 Forbidden bad token")
    assert ("content-type", "application/json") in call.headers


@pytest.mark.parametrize("client", CLIENTS)
async def test_status_and_headers_of_a_200(client: str) -> None:
    async with (
        proxied_app() as srv,
        calls(client, srv.ws, "good") as open_call,
        open_call("/v1/stream") as call,
    ):
        assert (call.status, call.headers, call.trailers) == (None, [], [])
        headers = await call.initial_metadata()
        assert call.status == 200
        assert headers == call.headers
        assert ("x-request-id", "r-1") in headers
        assert ("content-type", "application/x-ndjson") in headers
        assert not {"set-cookie", "content-length", "transfer-encoding"} & {name for name, _ in headers}
        await call.close_send()
        assert [message async for message in call] == [{"n": 0}, {"n": 1}, {"n": 2}]
        assert (call.close_code, call.trailers) == (1000, [])
        assert call.subprotocol == ("wsproxy.status.v1" if client == "single" else "wsproxy.mux.v1")


@pytest.mark.parametrize("client", CLIENTS)
async def test_after_a_200_a_line_shaped_like_an_error_is_a_message_at_once(client: str) -> None:
    async with (
        proxied_app() as srv,
        calls(client, srv.ws, "good") as open_call,
        open_call("/v1/chat", method="POST") as call,
    ):
        await call.send({"n": 5})
        # Released as it arrives: the app answers the next line only after the client sends it.
        assert await anext(call) == {"code": 5, "message": "reply"}
        assert call.status == 200
        await call.send({"n": 6})
        assert await anext(call) == {"code": 6, "message": "reply"}
        await call.close_send()
        assert [message async for message in call] == []


# Trailers: wsproxy's own gateway sends a unary answer's trailing metadata as HTTP trailers.


@contextlib.asynccontextmanager
async def echo_gateway() -> AsyncIterator[Running]:
    binding = InProcessBinding()
    echo_pb2_grpc.add_EchoServiceServicer_to_server(GeneratorStyle(), binding)
    async with serve(cast(Any, WebSocketProxyMiddleware(Gateway(binding, [SERVICE])))) as server:
        yield server


@pytest.mark.parametrize("client", CLIENTS)
async def test_trailers_of_a_unary_grpc_call(client: str) -> None:
    async with echo_gateway() as srv, calls(client, srv.ws, "t") as open_call:
        async with open_call("/v1/echo", method="POST") as call:
            await call.send({"message": "headers"})  # the servicer sends metadata and trailing metadata
            await call.close_send()
            assert await call.result() == {"message": "headers"}
            assert call.status == 200
            assert ("grpc-metadata-x-initial", "one") in call.headers
            assert call.trailers == [("grpc-trailer-x-trailer", "t")]
        async with open_call("/v1/echo", method="POST") as call:
            await call.send({"message": "abort after headers"})
            await call.close_send()
            with pytest.raises(HTTPStatusError) as caught:
                await call.result()
            assert (caught.value.status, caught.value.code, caught.value.grpc_code_name) == (
                403,
                4403,
                "PERMISSION_DENIED",
            )
            assert caught.value.message == "not yours"
            assert ("grpc-metadata-x-initial", "two") in call.headers


# status=False: today's behaviour exactly.


@pytest.mark.parametrize("client", CLIENTS)
async def test_status_false_is_lines_and_the_close_code_only(client: str) -> None:
    async with (
        proxied_app() as srv,
        calls(client, srv.ws, "bad") as open_call,
        open_call("/v1/stream", status=False) as call,
    ):
        assert await call.initial_metadata() == []  # no status frame to wait for
        await call.close_send()
        received: list[Any] = []
        with pytest.raises(HTTPStatusError) as caught:
            await collect(call, received)
        assert received == [{"detail": "bad token"}]  # today: a body of this shape reaches the loop
        assert (caught.value.status, caught.value.code, caught.value.error_body) == (
            403,
            4403,
            {"detail": "bad token"},
        )
        assert (call.status, call.headers, call.trailers) == (None, [], [])
        if client == "single":
            assert call.subprotocol == "Bearer"  # not offered, so not selected


async def test_status_false_raw_lines_are_the_frames_of_today() -> None:
    async with proxied_app() as srv:
        for status in (False, True):
            async with connect(f"{srv.ws}/v1/stream", token="good", raw=True, status=status) as call:
                await call.close_send()
                assert [line async for line in call] == ['{"n": 0}', '{"n": 1}', '{"n": 2}']
                assert call.status == (200 if status else None)


# Servers without the contract: the client falls back to today's rules.

OLD_LINES: list[tuple[str, str | bytes]] = [
    # A binary frame that is UTF-8 JSON: a control frame under the contract, a line here.
    ("bytes", json.dumps({"type": "status", "status": 200, "headers": []}).encode()),
    ("text", '{"code":7,"message":"no"}'),  # shaped like grpc-gateway's error body: held back
]


def older_wsproxy(subprotocol: str | None) -> Any:
    """An ASGI WebSocket app that selects `subprotocol` (never wsproxy.status.v1), sends lines, closes 4403."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "websocket"
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept", "subprotocol": subprotocol})
        for kind, line in OLD_LINES:
            await send({"type": "websocket.send", kind: line})
        await send({"type": "websocket.close", "code": 4403, "reason": "Forbidden"})

    return app


@pytest.mark.parametrize(("subprotocol", "token"), [("Bearer", "t"), (None, None)])
async def test_a_server_that_does_not_select_the_subprotocol_gets_todays_decoding(
    subprotocol: str | None, token: str | None
) -> None:
    async with serve(older_wsproxy(subprotocol)) as srv, connect(f"{srv.ws}/v1/x", token=token) as call:
        assert call.subprotocol == subprotocol
        received: list[Any] = []
        with pytest.raises(HTTPStatusError) as caught:
            await collect(call, received)
    assert received == [{"type": "status", "status": 200, "headers": []}]
    assert (caught.value.status, caught.value.code, caught.value.error_body) == (
        403,
        4403,
        {"code": 7, "message": "no"},
    )
    assert (call.status, call.headers) == (None, [])


def older_mux_server(opens: list[dict[str, Any]]) -> Any:
    """An ASGI app speaking wsproxy.mux.v1 that ignores OPEN's "status": a LINE, then END 4403."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "websocket"
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept", "subprotocol": mux.SUBPROTOCOL})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            frame = mux.decode(message["bytes"], mux.CLIENT_FRAMES)
            if frame.type is mux.FrameType.OPEN:
                opens.append(json.loads(frame.payload))
                await send(
                    {"type": "websocket.send", "bytes": mux.encode_line(frame.call_id, OLD_LINES[1][1])}
                )
                await send(
                    {"type": "websocket.send", "bytes": mux.encode_end(frame.call_id, 4403, "Forbidden")}
                )

    return app


async def test_a_mux_server_that_sends_no_status_gets_todays_decoding() -> None:
    opens: list[dict[str, Any]] = []
    async with serve(older_mux_server(opens)) as srv, connect_mux(srv.ws) as conn:
        for status in (True, False):
            async with conn.connect("/v1/x", status=status) as call:
                with pytest.raises(HTTPStatusError) as caught:
                    _ = [message async for message in call]
                assert (caught.value.status, caught.value.code, caught.value.error_body) == (
                    403,
                    4403,
                    {"code": 7, "message": "no"},
                )
                assert call.status is None
    assert opens == [{"path": "/v1/x", "status": True}, {"path": "/v1/x"}]
