"""The gateway mounted under a prefix in FastAPI (`api.mount("/grpc", ...)`) on a real uvicorn:
every route, the OpenAPI document and its server URL, over HTTP, a WebSocket and a multiplexed
WebSocket, on both bindings."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from fastapi import FastAPI
from websockets.asyncio.client import connect

from example_service.proto.example.v1 import echo_pb2, echo_pb2_grpc
from example_service.service import EchoServicer, grpc_server
from tests.support.servers import Running, drain, serve
from wsproxy import WebSocketProxyMiddleware
from wsproxy.client import connect_mux
from wsproxy.gateway import Gateway, InProcessBinding

SERVICE = echo_pb2.DESCRIPTOR.services_by_name["EchoService"]


@contextlib.asynccontextmanager
async def _mounted(binding: str, prefix: str) -> AsyncIterator[Running]:
    """FastAPI with a route of its own and the gateway (behind wsproxy) mounted at `prefix`."""
    servicer = EchoServicer()
    async with contextlib.AsyncExitStack() as stack:
        target: Any
        if binding == "inprocess":
            target = InProcessBinding()
            echo_pb2_grpc.add_EchoServiceServicer_to_server(servicer, target)
        else:
            _, port = await stack.enter_async_context(grpc_server(servicer))
            target = await stack.enter_async_context(grpc.aio.insecure_channel(f"127.0.0.1:{port}"))
        gateway = Gateway(target, [SERVICE], openapi_path="/openapi.json")
        api = FastAPI()

        @api.get("/health")
        def health() -> dict[str, str]:
            return {"status": "ok"}

        api.mount(prefix, WebSocketProxyMiddleware(gateway))
        yield await stack.enter_async_context(serve(api))


@pytest.fixture(params=["inprocess", "channel"])
async def served(request: pytest.FixtureRequest) -> AsyncIterator[Running]:
    async with _mounted(request.param, "/grpc") as running:
        yield running


async def test_every_route_answers_under_the_prefix_over_http(served: Running) -> None:
    async with httpx.AsyncClient(base_url=served.http + "/grpc", timeout=30) as client:
        echoed = await client.post("/v1/echo", json={"message": "hi"})
        assert (echoed.status_code, echoed.json()) == (200, {"message": "hi"})
        ticks = await client.get("/v1/ticker", params={"count": 2})
        assert [json.loads(line)["result"]["seq"] for line in ticks.text.splitlines()] == [0, 1]
        summed = await client.post("/v1/sum", content='{"value": 40}\n{"value": 2}\n')
        assert summed.json() == {"total": "42", "count": 2}
        chat = await client.post("/v1/chat", content='{"text": "a"}\n{"text": "b"}\n')
        assert [json.loads(line)["result"]["text"] for line in chat.text.splitlines()] == ["a", "b"]
        whoami = await client.get("/v1/whoami", headers={"authorization": "Bearer t"})
        assert whoami.json() == {"authorization": "Bearer t"}
        missing = await client.get("/v1/nothing")
        assert (missing.status_code, missing.json()["code"]) == (404, grpc.StatusCode.NOT_FOUND.value[0])
    async with httpx.AsyncClient(base_url=served.http, timeout=30) as client:
        assert (await client.get("/health")).json() == {"status": "ok"}  # the app's own routes stay
        assert (await client.post("/v1/echo", json={"message": "hi"})).status_code == 404  # not at the root


async def test_the_openapi_document_names_the_prefix_as_its_server(served: Running) -> None:
    async with httpx.AsyncClient(base_url=served.http, timeout=30) as client:
        response = await client.get("/grpc/openapi.json")
        assert response.status_code == 200
        document = response.json()
        assert document["servers"] == [{"url": "/grpc"}]
        assert "/v1/echo" in document["paths"]
        # The server URL plus a path key is where the operation answers.
        url = document["servers"][0]["url"] + "/v1/echo"
        assert (await client.post(url, json={"message": "via doc"})).json() == {"message": "via doc"}


async def test_websocket_calls_under_the_prefix(served: Running) -> None:
    async with connect(served.ws + "/grpc/v1/chat?method=POST") as ws:
        await ws.send('{"text": "hello"}')
        assert json.loads(await ws.recv()) == {"result": {"text": "hello", "seq": 0}}
        await ws.send("")
        assert await drain(ws) == ([], 1000, "")
    async with connect(served.ws + "/grpc/v1/ticker?count=2") as ws:
        frames, code, _ = await drain(ws)
        assert ([json.loads(frame)["result"]["seq"] for frame in frames], code) == ([0, 1], 1000)


@pytest.mark.parametrize("open_path", ["/v1/echo", "/grpc/v1/echo"])
async def test_multiplexed_calls_under_the_prefix(served: Running, open_path: str) -> None:
    """A multiplexed call's OPEN path may name the route below the prefix or with it."""
    async with connect_mux(served.ws + "/grpc/") as conn:
        assert await conn.unary(open_path, {"message": "mux"}, method="POST") == {"message": "mux"}


async def test_nested_prefixes() -> None:
    async with (
        _mounted("inprocess", "/api/grpc") as running,
        httpx.AsyncClient(base_url=running.http, timeout=30) as client,
    ):
        echoed = await client.post("/api/grpc/v1/echo", json={"message": "deep"})
        assert echoed.json() == {"message": "deep"}
        assert (await client.get("/api/grpc/openapi.json")).json()["servers"] == [{"url": "/api/grpc"}]


async def test_unmounted_the_document_names_no_server() -> None:
    binding = InProcessBinding()
    echo_pb2_grpc.add_EchoServiceServicer_to_server(EchoServicer(), binding)
    gateway = Gateway(binding, [SERVICE], openapi_path="/openapi.json")
    async with serve(gateway) as running, httpx.AsyncClient(base_url=running.http, timeout=30) as client:
        assert "servers" not in (await client.get("/openapi.json")).json()
        assert (await client.post("/v1/echo", json={"message": "root"})).json() == {"message": "root"}
