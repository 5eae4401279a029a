"""One small app per framework, each written the way that framework's own docs write a streaming endpoint.

Every module has the same routes, so tests/integration/test_frameworks.py runs one matrix over them:

    GET  /stream?count=N  server stream: {"n": 0} ... {"n": N-1}, one NDJSON line each
    POST /sum             client stream: {"sum": total of every line's "n"} once the body ends
    POST /bidi            each request line echoed back as it arrives: {"echo": line}
    GET  /whoami          {"authorization": <the header>}, read through the framework's own header access;
                          without it, the framework's own 401
    GET  /boom            a view that raises before it answers
    GET  /boom-midway     a streaming view that raises after its first line

Each module's `app` is the bare framework app (what `wsproxy --upstream` fronts, served by its own
uvicorn process); `proxied` is the same app wrapped in WebSocketProxyMiddleware where that
framework's docs put a middleware (docs/frameworks.md quotes those lines).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

FRAMEWORKS = ("fastapi", "starlette", "litestar", "django", "quart")


def ndjson(obj: Any) -> bytes:
    return json.dumps(obj).encode() + b"\n"


async def request_lines(chunks: AsyncIterable[bytes]) -> AsyncIterator[Any]:
    """Each complete JSON line of a request body as its chunk arrives."""
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip():
                yield json.loads(line)
    if buffer.strip():
        yield json.loads(buffer)


def total(body: bytes) -> int:
    return sum(int(json.loads(line)["n"]) for line in body.splitlines() if line.strip())
