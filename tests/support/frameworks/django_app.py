"""Django (ASGI, async views): `StreamingHttpResponse` over an async iterator, `JsonResponse`,
`request.headers` for the Authorization header.

A whole project in one module: settings, URLconf and views. `proxied` is what a project's asgi.py
would export: `WebSocketProxyMiddleware(get_asgi_application())`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import django  # type: ignore[import-untyped]
from django.conf import settings  # type: ignore[import-untyped]

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    SECRET_KEY="only-for-tests",
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    LOGGING_CONFIG=None,
)
django.setup()

from django.core.asgi import get_asgi_application  # type: ignore[import-untyped]  # noqa: E402
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse  # type: ignore[import-untyped]  # noqa: E402
from django.urls import path  # type: ignore[import-untyped]  # noqa: E402

from tests.support.frameworks import ndjson, total  # noqa: E402
from wsproxy import WebSocketProxyMiddleware  # noqa: E402


async def stream(request: HttpRequest) -> StreamingHttpResponse:
    count = int(request.GET.get("count", "3"))

    async def lines() -> AsyncIterator[bytes]:
        for n in range(count):
            yield ndjson({"n": n})

    return StreamingHttpResponse(lines(), content_type="application/x-ndjson")


async def sum_lines(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"sum": total(request.body)})


async def bidi(request: HttpRequest) -> StreamingHttpResponse:
    async def echoes() -> AsyncIterator[bytes]:
        for line in request.body.splitlines():  # the whole body, read before the view ran
            yield ndjson({"echo": json.loads(line)})

    return StreamingHttpResponse(echoes(), content_type="application/x-ndjson")


async def whoami(request: HttpRequest) -> HttpResponse:
    authorization = request.headers.get("Authorization")
    if authorization is None:
        return JsonResponse({"error": "no token"}, status=401)
    return JsonResponse({"authorization": authorization})


async def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug in a view")


async def boom_midway(request: HttpRequest) -> StreamingHttpResponse:
    async def lines() -> AsyncIterator[bytes]:
        yield ndjson({"n": 0})
        raise RuntimeError("a bug in a stream")

    return StreamingHttpResponse(lines(), content_type="application/x-ndjson")


urlpatterns: list[Any] = [
    path("stream", stream),
    path("sum", sum_lines),
    path("bidi", bidi),
    path("whoami", whoami),
    path("boom", boom),
    path("boom-midway", boom_midway),
]

app = get_asgi_application()
proxied = WebSocketProxyMiddleware(app)
