"""Starlette: `StreamingResponse` over an async generator, `request.stream()` for the body.

POST /bidi-duplex is the recipe for bidi behind `wsproxy --upstream` (docs/frameworks.md): the same
generator as /bidi, in a `StreamingResponse` that skips Starlette's disconnect listener.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from tests.support.frameworks import ndjson, request_lines, total
from wsproxy import WebSocketProxyMiddleware


class DuplexStreamingResponse(StreamingResponse):
    """A StreamingResponse for a generator that reads the request body while it answers.

    Under a server that reports ASGI spec < 2.4 for HTTP (uvicorn 2.3, hypercorn 2.1), Starlette runs a
    disconnect listener beside the body iterator, and that listener's `receive()` takes request body
    chunks the generator's `request.stream()` was waiting for. This one only streams: the generator's
    own `request.stream()` sees the client leave (it raises ClientDisconnect).
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.stream_response(send)


async def stream(request: Request) -> StreamingResponse:
    count = int(request.query_params.get("count", "3"))

    async def lines() -> AsyncIterator[bytes]:
        for n in range(count):
            yield ndjson({"n": n})

    return StreamingResponse(lines(), media_type="application/x-ndjson")


async def sum_lines(request: Request) -> JSONResponse:
    body = b""
    async for chunk in request.stream():
        body += chunk
    return JSONResponse({"sum": total(body)})


async def echoes(request: Request) -> AsyncIterator[bytes]:
    async for line in request_lines(request.stream()):
        yield ndjson({"echo": line})


async def bidi(request: Request) -> StreamingResponse:
    return StreamingResponse(echoes(request), media_type="application/x-ndjson")


async def bidi_duplex(request: Request) -> StreamingResponse:
    return DuplexStreamingResponse(echoes(request), media_type="application/x-ndjson")


async def whoami(request: Request) -> JSONResponse:
    authorization = request.headers.get("authorization")
    if authorization is None:
        raise HTTPException(status_code=401, detail="no token")
    return JSONResponse({"authorization": authorization})


async def boom(request: Request) -> JSONResponse:
    raise RuntimeError("a bug in a view")


async def boom_midway(request: Request) -> StreamingResponse:
    async def lines() -> AsyncIterator[bytes]:
        yield ndjson({"n": 0})
        raise RuntimeError("a bug in a stream")

    return StreamingResponse(lines(), media_type="application/x-ndjson")


routes = [
    Route("/stream", stream),
    Route("/sum", sum_lines, methods=["POST"]),
    Route("/bidi", bidi, methods=["POST"]),
    Route("/bidi-duplex", bidi_duplex, methods=["POST"]),
    Route("/whoami", whoami),
    Route("/boom", boom),
    Route("/boom-midway", boom_midway),
]

app = Starlette(routes=routes)
proxied = Starlette(routes=routes, middleware=[Middleware(WebSocketProxyMiddleware)])
