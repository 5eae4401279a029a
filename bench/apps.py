"""The two servers under test: a bare ASGI WebSocket echo, and the proxy around an NDJSON echo."""

from __future__ import annotations

from wsproxy import WebSocketProxyMiddleware
from wsproxy._types import ASGIApp, Receive, Scope, Send

BARE_PATH = "/bare"
PROXY_PATH = "/proxy"


async def bare_echo(scope: Scope, receive: Receive, send: Send) -> None:
    """The ceiling: accept, then send every message straight back, with no middleware at all."""
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def ndjson_echo(scope: Scope, receive: Receive, send: Send) -> None:
    """A streaming HTTP app: every request body chunk goes straight back as response body."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/x-ndjson")],
        }
    )
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return
        body = message.get("body", b"")
        if body:
            await send({"type": "http.response.body", "body": body, "more_body": True})
        if not message.get("more_body", False):
            break
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def echo_server() -> ASGIApp:
    """One app for both: /bare is the bare echo, everything else goes through the proxy."""
    proxy = WebSocketProxyMiddleware(ndjson_echo)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == BARE_PATH:
            await bare_echo(scope, receive, send)
        else:
            await proxy(scope, receive, send)

    return app
