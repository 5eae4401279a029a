"""The middleware inside Starlette's and FastAPI's own middleware stacks, with their streaming responses."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route
from websockets.asyncio.client import connect

from tests.support.servers import drain, serve
from wsproxy import WebSocketProxyMiddleware


async def chat(request: Request) -> StreamingResponse:
    """Bidi in plain Starlette: each request line answered as it arrives."""

    async def replies() -> AsyncIterator[bytes]:
        buffer = b""
        async for chunk in request.stream():
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                yield json.dumps({"reply": json.loads(line)["text"].upper()}).encode() + b"\n"

    return StreamingResponse(replies(), media_type="application/x-ndjson")


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse({"authorization": request.headers.get("authorization"), "method": request.method})


async def missing(request: Request) -> JSONResponse:
    return JSONResponse({"detail": "gone"}, status_code=410)


ROUTES = [
    Route("/chat", chat, methods=["POST"]),
    Route("/whoami", whoami, methods=["GET", "PUT"]),
    Route("/missing", missing),
]


async def check_app(app: Any) -> None:
    async with serve(app) as running:
        async with connect(running.ws + "/chat?method=POST") as ws:
            for word in ["hello", "world"]:
                await ws.send(json.dumps({"text": word}))
                assert json.loads(await ws.recv()) == {"reply": word.upper()}
            await ws.send("")
            assert (await drain(ws))[1] == 1000
        async with connect(running.ws + "/whoami?method=PUT", subprotocols=["Bearer", "t0k"]) as ws:  # type: ignore[list-item]
            frames, code, _ = await drain(ws)
        assert json.loads(frames[0]) == {"authorization": "Bearer t0k", "method": "PUT"}
        assert code == 1000
        async with connect(running.ws + "/missing") as ws:
            assert await drain(ws) == (['{"detail":"gone"}'], 4410, "Gone")
        async with httpx.AsyncClient() as client:
            response = await client.get(running.http + "/whoami")
        assert response.json() == {"authorization": None, "method": "GET"}


async def test_starlette_middleware_stack() -> None:
    await check_app(
        Starlette(routes=ROUTES, middleware=[Middleware(WebSocketProxyMiddleware, max_line_size=4096)])
    )


async def test_fastapi_add_middleware() -> None:
    app = FastAPI()
    for route in ROUTES:
        app.router.routes.append(route)
    app.add_middleware(WebSocketProxyMiddleware, allowed_origins=["http://allowed.example"])
    await check_app(app)
