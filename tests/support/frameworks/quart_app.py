"""Quart: views returning an async generator (`stream_with_context`), `request.body` for the body.

Quart's docs add ASGI middleware around `app.asgi_app`; `proxied` is a second app wrapped so.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

from quart import Quart, abort, request, stream_with_context

from tests.support.frameworks import ndjson, request_lines, total
from wsproxy import WebSocketProxyMiddleware

NDJSON = {"content-type": "application/x-ndjson"}


def create_app() -> Quart:
    app = Quart(__name__)
    app.config["RESPONSE_TIMEOUT"] = None  # Quart cuts any response, a stream too, after 60 s by default

    @app.get("/stream")
    async def stream() -> Any:
        count = request.args.get("count", 3, type=int)

        async def lines() -> AsyncIterator[bytes]:
            for n in range(count):
                yield ndjson({"n": n})

        return lines(), 200, NDJSON

    @app.post("/sum")
    async def sum_lines() -> Any:
        return {"sum": total(await request.get_data(as_text=False))}  # type: ignore[arg-type]

    @app.post("/bidi")
    async def bidi() -> Any:
        @stream_with_context
        async def echoes() -> AsyncIterator[bytes]:
            async for line in request_lines(request.body):
                yield ndjson({"echo": line})

        return echoes(), 200, NDJSON

    @app.get("/whoami")
    async def whoami() -> Any:
        authorization = request.headers.get("Authorization")
        if authorization is None:
            abort(401)
        return {"authorization": authorization}

    @app.get("/boom")
    async def boom() -> Any:
        raise RuntimeError("a bug in a view")

    @app.get("/boom-midway")
    async def boom_midway() -> Any:
        async def lines() -> AsyncIterator[bytes]:
            yield ndjson({"n": 0})
            raise RuntimeError("a bug in a stream")

        return lines(), 200, NDJSON

    return app


app = create_app()
proxied = create_app()
proxied.asgi_app = cast(Any, WebSocketProxyMiddleware(cast(Any, proxied.asgi_app)))  # type: ignore[method-assign]
