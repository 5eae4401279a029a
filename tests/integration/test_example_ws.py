"""The demo's five RPCs over WebSocket (wsproxy in front of the gateway): every uvicorn ws implementation, both bindings."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import connect

from example_service.app import Demo, demo
from tests.support.servers import Running, drain, serve


def asgi(app: Demo) -> Any:
    # tests/support/servers.py wants uvicorn's own ASGI types; ours are the generic ASGI shapes.
    return app.app


@pytest.fixture
async def running(ws_impl: str, binding: Any) -> AsyncIterator[tuple[Demo, Running]]:
    async with demo(binding=binding) as app, serve(asgi(app), ws=ws_impl) as server:
        yield app, server


@pytest.fixture
def server(running: tuple[Demo, Running]) -> Running:
    return running[1]


async def test_echo(server: Running) -> None:
    async with connect(server.ws + "/v1/echo?method=POST") as ws:
        await ws.send(json.dumps({"message": "hi"}))
        frames, code, _ = await drain(ws)
    assert (frames, code) == (['{"message":"hi"}'], 1000)


async def test_echo_error_is_the_status_json_then_close_4400(server: Running) -> None:
    async with connect(server.ws + "/v1/echo?method=POST") as ws:
        await ws.send(json.dumps({"message": ""}))
        frames, code, reason = await drain(ws)
    assert [json.loads(frame) for frame in frames] == [
        {"code": 3, "message": "message must not be empty", "details": []}
    ]
    assert (code, reason) == (4400, "Bad Request")


async def test_ticker_streams_each_message_as_a_frame(server: Running) -> None:
    async with connect(server.ws + "/v1/ticker?count=5&interval_ms=10") as ws:
        frames, code, _ = await drain(ws)
    assert [json.loads(frame)["result"]["seq"] for frame in frames] == [0, 1, 2, 3, 4]
    assert code == 1000


async def test_ticker_error_closes_4400(server: Running) -> None:
    async with connect(server.ws + "/v1/ticker?count=0") as ws:
        frames, code, _ = await drain(ws)
    assert json.loads(frames[0])["error"]["code"] == 3  # a stream's error: an {"error": ...} line
    assert code == 4400


async def test_unknown_route_closes_4404(server: Running) -> None:
    async with connect(server.ws + "/v1/missing") as ws:
        frames, code, reason = await drain(ws)
    assert (json.loads(frames[0])["code"], code, reason) == (5, 4404, "Not Found")


async def test_sum_answers_after_the_half_close(server: Running) -> None:
    async with connect(server.ws + "/v1/sum?method=POST") as ws:
        for value in (1, 2, 3, 4, 5):
            await ws.send(json.dumps({"value": value}))
        await ws.send("")
        frames, code, _ = await drain(ws)
    assert ([json.loads(frame) for frame in frames], code) == ([{"total": "15", "count": 5}], 1000)


async def test_chat_replies_before_the_next_message(server: Running) -> None:
    async with connect(server.ws + "/v1/chat?method=POST") as ws:
        for seq, text in enumerate(["one", "two", "three"]):
            await ws.send(json.dumps({"text": text}))
            assert json.loads(await ws.recv()) == {"result": {"text": text, "seq": seq}}
        await ws.send("")
        frames, code, _ = await drain(ws)
    assert (frames, code) == ([], 1000)


async def test_whoami_gets_the_bearer_subprotocol_as_grpc_metadata(server: Running) -> None:
    async with connect(server.ws + "/v1/whoami", subprotocols=["Bearer", "tok-123"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "Bearer"
        frames, code, _ = await drain(ws)
    assert ([json.loads(frame) for frame in frames], code) == ([{"authorization": "Bearer tok-123"}], 1000)


async def test_client_leaving_mid_ticker_cancels_the_grpc_call(running: tuple[Demo, Running]) -> None:
    app, server = running
    async with connect(server.ws + "/v1/ticker?count=1000&interval_ms=20") as ws:
        assert json.loads(await ws.recv())["result"]["seq"] == 0
    assert await asyncio.wait_for(app.servicer.cancelled.get(), timeout=10) == "Ticker"
