"""FastAPI: path operations returning `StreamingResponse`, `Header()` for the Authorization header.

`proxied` keeps one native WebSocket route, `/ws/native`, beside the proxied streaming routes:
`passthrough_paths=["/ws/"]` leaves its upgrades to FastAPI.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import FastAPI, Header, HTTPException, Request, WebSocket
from fastapi.responses import StreamingResponse

from tests.support.frameworks import ndjson, request_lines, total
from tests.support.frameworks.starlette_app import DuplexStreamingResponse
from wsproxy import WebSocketProxyMiddleware


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/stream")
    async def stream(count: int = 3) -> StreamingResponse:
        async def lines() -> AsyncIterator[bytes]:
            for n in range(count):
                yield ndjson({"n": n})

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    @app.post("/sum")
    async def sum_lines(request: Request) -> dict[str, int]:
        body = b""
        async for chunk in request.stream():
            body += chunk
        return {"sum": total(body)}

    async def echoes(request: Request) -> AsyncIterator[bytes]:
        async for line in request_lines(request.stream()):
            yield ndjson({"echo": line})

    @app.post("/bidi")
    async def bidi(request: Request) -> StreamingResponse:
        return StreamingResponse(echoes(request), media_type="application/x-ndjson")

    @app.post("/bidi-duplex")
    async def bidi_duplex(request: Request) -> StreamingResponse:
        return DuplexStreamingResponse(echoes(request), media_type="application/x-ndjson")

    @app.get("/whoami")
    async def whoami(authorization: Annotated[str | None, Header()] = None) -> dict[str, str]:
        if authorization is None:
            raise HTTPException(status_code=401, detail="no token")
        return {"authorization": authorization}

    @app.api_route("/forbidden", methods=["GET", "POST"])
    async def forbidden() -> dict[str, str]:
        # Before reading any body: a bidi client may still be sending when the 403 comes.
        raise HTTPException(status_code=403, detail="bad token")

    @app.get("/boom")
    async def boom() -> dict[str, str]:
        raise RuntimeError("a bug in a view")

    @app.get("/boom-midway")
    async def boom_midway() -> StreamingResponse:
        async def lines() -> AsyncIterator[bytes]:
            yield ndjson({"n": 0})
            raise RuntimeError("a bug in a stream")

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    @app.websocket("/ws/native")
    async def native(websocket: WebSocket) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            await websocket.send_text(f"native: {text}")

    return app


app = create_app()
proxied = create_app()
proxied.add_middleware(WebSocketProxyMiddleware, passthrough_paths=["/ws/"])
