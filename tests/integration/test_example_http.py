"""The demo's five RPCs over plain HTTP: real gRPC server, real uvicorn, httpx; both gateway bindings."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import h11
import httpx
import pytest

from example_service.app import Demo, demo
from tests.support.servers import Running, serve


def asgi(app: Demo) -> Any:
    # tests/support/servers.py wants uvicorn's own ASGI types; ours are the generic ASGI shapes.
    return app.app


@pytest.fixture
async def running(binding: Any) -> AsyncIterator[tuple[Demo, Running]]:
    async with demo(binding=binding) as app, serve(asgi(app)) as server:
        yield app, server


@pytest.fixture
async def client(running: tuple[Demo, Running]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=running[1].http) as client:
        yield client


def lines(body: str) -> list[object]:
    return [json.loads(line) for line in body.splitlines() if line]


async def test_echo(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/echo", json={"message": "hi"})
    assert (response.status_code, response.json()) == (200, {"message": "hi"})
    assert response.headers["content-type"] == "application/json"


async def test_echo_empty_message_is_invalid_argument(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/echo", json={"message": ""})
    assert response.status_code == 400
    assert response.json() == {"code": 3, "message": "message must not be empty", "details": []}


async def test_ticker_streams_results(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/ticker", params={"count": 5, "interval_ms": 10})
    assert response.status_code == 200
    ticks = lines(response.text)
    assert [tick["result"]["seq"] for tick in ticks] == [0, 1, 2, 3, 4]  # type: ignore[index]
    assert all(tick["result"]["time"].endswith("Z") for tick in ticks)  # type: ignore[index]
    # The first line (seq 0, its default) prints its fields in the same order as the later ones:
    # declaration order, as protojson does.
    assert [list(tick["result"]) for tick in ticks] == [["seq", "time"]] * 5  # type: ignore[index]


async def test_ticker_error_before_first_message_is_an_http_status(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/ticker", params={"count": 0})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 3  # a stream's error: an {"error": ...} line


async def test_ticker_bad_query_value_is_invalid_argument(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/ticker", params={"count": "five"})
    assert response.status_code == 400
    assert response.json()["code"] == 3
    assert "count" in response.json()["message"]


async def test_sum_reads_a_stream_of_json_values(client: httpx.AsyncClient) -> None:
    body = b'{"value": 1}\n{"value": 2}\n{"value": "40"}{"value":-3}'
    response = await client.post("/v1/sum", content=body)
    assert (response.status_code, response.json()) == (200, {"total": "40", "count": 4})


async def test_sum_of_nothing(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/sum", content=b"")
    assert response.json() == {"total": "0", "count": 0}


async def test_sum_bad_value_is_invalid_argument(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/sum", content=b'{"value": 1}\n{"value": "x"}\n')
    assert response.status_code == 400
    assert response.json()["code"] == 3


async def test_chat_replies_to_each_message_before_the_next_is_sent(running: tuple[Demo, Running]) -> None:
    # httpx sends the whole body before reading the response, so full duplex needs a raw h11 client.
    server = running[1]
    reader, writer = await asyncio.open_connection(server.host, server.port)
    connection = h11.Connection(h11.CLIENT)
    headers = [("host", server.host), ("transfer-encoding", "chunked")]

    def send(event: h11.Event) -> None:
        writer.write(connection.send(event) or b"")

    async def next_event() -> h11.Event:
        while True:
            event = connection.next_event()
            if event is not h11.NEED_DATA:
                return event  # type: ignore[return-value]
            connection.receive_data(await reader.read(65536))

    send(h11.Request(method="POST", target="/v1/chat", headers=headers))
    send(h11.Data(data=b'{"text": "first"}\n'))
    response = await next_event()
    assert isinstance(response, h11.Response)
    assert response.status_code == 200
    first = await next_event()
    assert isinstance(first, h11.Data)
    assert json.loads(first.data) == {"result": {"text": "first", "seq": 0}}
    send(h11.Data(data=b'{"text": "second"}\n'))
    second = await next_event()
    assert isinstance(second, h11.Data)
    assert json.loads(second.data) == {"result": {"text": "second", "seq": 1}}
    send(h11.EndOfMessage())
    assert isinstance(await next_event(), h11.EndOfMessage)
    writer.close()
    await writer.wait_closed()


async def test_whoami_sees_the_authorization_header(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/whoami", headers={"Authorization": "Bearer s3cret"})
    assert response.json() == {"authorization": "Bearer s3cret"}


async def test_unknown_path_and_wrong_method(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v1/nope")
    assert (missing.status_code, missing.json()) == (404, {"code": 5, "message": "Not Found", "details": []})
    wrong = await client.get("/v1/echo")
    assert (wrong.status_code, wrong.json()["code"]) == (501, 12)  # grpc-gateway: UNIMPLEMENTED


async def test_page_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert (await client.get("/static/../app.py")).status_code == 404


async def test_client_leaving_mid_ticker_cancels_the_grpc_call(running: tuple[Demo, Running]) -> None:
    app, server = running
    params = {"count": 1000, "interval_ms": 20}
    async with (
        httpx.AsyncClient(base_url=server.http) as client,
        client.stream("GET", "/v1/ticker", params=params) as response,
    ):
        first = json.loads(await anext(response.aiter_lines()))
        assert first["result"]["seq"] == 0
    assert await asyncio.wait_for(app.servicer.cancelled.get(), timeout=10) == "Ticker"


async def test_demo_serves_a_valid_openapi_document(client: httpx.AsyncClient) -> None:
    from openapi_spec_validator import validate

    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    validate(document)
    assert set(document["paths"]) == {"/v1/echo", "/v1/ticker", "/v1/sum", "/v1/chat", "/v1/whoami"}
    ticker = document["paths"]["/v1/ticker"]["get"]
    assert [parameter["name"] for parameter in ticker["parameters"]] == ["count", "interval_ms"]
    assert list(ticker["responses"]["200"]["content"]) == ["application/x-ndjson"]
