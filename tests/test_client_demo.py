"""The Python client against the real demo: gRPC EchoService behind the gateway and wsproxy."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from example_service.app import demo
from tests.servers import Running, serve
from wsproxy.client import HTTPStatusError, bidi, client_stream, connect, server_stream, unary


@contextlib.asynccontextmanager
async def running_demo() -> AsyncIterator[Running]:
    async with demo() as running, serve(cast(Any, running.app)) as server:
        yield server


async def test_four_call_kinds_and_the_bearer_identity() -> None:
    async with running_demo() as srv:
        assert await unary(f"{srv.ws}/v1/echo", {"message": "hi"}, method="POST") == {"message": "hi"}

        ticks = [tick async for tick in server_stream(f"{srv.ws}/v1/ticker?count=3&interval_ms=0")]
        assert [tick.get("seq", 0) for tick in ticks] == [0, 1, 2]
        assert all("time" in tick for tick in ticks)

        values = ({"value": n} for n in (5, 6, 7))
        assert await client_stream(f"{srv.ws}/v1/sum", values, method="POST") == {"total": "18", "count": 3}

        async with bidi(f"{srv.ws}/v1/chat", method="POST") as call:
            await call.send({"text": "ping"})
            assert await anext(call) == {"text": "ping", "seq": 0}
            await call.send({"text": "pong"})
            assert await anext(call) == {"text": "pong", "seq": 1}
            await call.close_send()
            assert [reply async for reply in call] == []
            assert call.close_code == 1000

        async with connect(f"{srv.ws}/v1/whoami", token="demo-token") as call:
            await call.close_send()
            assert await call.result() == {"authorization": "Bearer demo-token"}
            assert call.subprotocol == "Bearer"


@pytest.mark.parametrize(
    ("path", "message", "expected"),
    [
        ("/v1/echo?method=POST", {"message": ""}, "HTTP 400 INVALID_ARGUMENT message must not be empty"),
        ("/v1/ticker?count=0", None, "HTTP 400 INVALID_ARGUMENT count must be 1..1000"),
        ("/v1/nowhere", None, "HTTP 404 NOT_FOUND Not Found"),
    ],
)
async def test_error_statuses_with_their_details(path: str, message: Any, expected: str) -> None:
    async with running_demo() as srv:
        with pytest.raises(HTTPStatusError) as caught:
            await unary(f"{srv.ws}{path}", message)
    assert str(caught.value) == expected
    assert caught.value.code == 4000 + caught.value.status
