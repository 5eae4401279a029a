"""Litestar: route handlers returning `Stream`, `request.stream()` for the body, a header `Parameter`.

Litestar runs its middleware after routing, on the route handler it found; a WebSocket upgrade to
an HTTP route never reaches it, so `proxied` wraps the app object instead of `Litestar(middleware=...)`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, cast

from litestar import Litestar, Request, get, post
from litestar.exceptions import NotAuthorizedException
from litestar.params import FromQuery, HeaderParameter
from litestar.response import Stream

from tests.support.frameworks import ndjson, request_lines, total
from wsproxy import WebSocketProxyMiddleware


@get("/stream")
async def stream(count: FromQuery[int] = 3) -> Stream:
    async def lines() -> AsyncIterator[bytes]:
        for n in range(count):
            yield ndjson({"n": n})

    return Stream(lines(), media_type="application/x-ndjson")


@post("/sum", status_code=200)
async def sum_lines(request: Request[Any, Any, Any]) -> dict[str, int]:
    body = b""
    async for chunk in request.stream():
        body += chunk
    return {"sum": total(body)}


@post("/bidi", status_code=200)
async def bidi(request: Request[Any, Any, Any]) -> Stream:
    async def echoes() -> AsyncIterator[bytes]:
        async for line in request_lines(request.stream()):
            yield ndjson({"echo": line})

    return Stream(echoes(), media_type="application/x-ndjson")


@get("/whoami")
async def whoami(
    authorization: Annotated[str | None, HeaderParameter(name="Authorization")] = None,
) -> dict[str, str]:
    if authorization is None:
        raise NotAuthorizedException("no token")
    return {"authorization": authorization}


@get("/boom")
async def boom() -> dict[str, str]:
    raise RuntimeError("a bug in a view")


@get("/boom-midway")
async def boom_midway() -> Stream:
    async def lines() -> AsyncIterator[bytes]:
        yield ndjson({"n": 0})
        raise RuntimeError("a bug in a stream")

    return Stream(lines(), media_type="application/x-ndjson")


app = Litestar(route_handlers=[stream, sum_lines, bidi, whoami, boom, boom_midway])
proxied = WebSocketProxyMiddleware(cast(Any, app))  # Litestar types its scopes as TypedDicts
