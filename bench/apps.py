"""The servers under test: a bare ASGI WebSocket echo, the contract's floor, and the proxy around an NDJSON echo."""

from __future__ import annotations

from wsproxy import WebSocketProxyMiddleware
from wsproxy._types import ASGIApp, Receive, Scope, Send

BARE_PATH = "/bare"
FLOOR_PATH = "/floor"
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


async def floor_echo(scope: Scope, receive: Receive, send: Send) -> None:
    """The contract's floor: the bare echo plus only the passes over each message that any proxy of
    this contract must make, in the server's own task, with no middleware, no app and no yields.

    A text frame is a str and a request body is bytes, so a message is scanned for CR/LF, gets its
    newline and is encoded; the reply chunk is scanned for the newline that ends its one line, and
    the line is decoded into the str of the text frame. What the proxy costs beyond this path is
    its own; what this path costs beyond the bare echo is the contract's (docs/performance.md).
    """
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        text = message.pop("text", None)
        if text is None:
            data: bytes = message["bytes"]
            if 10 in data or 13 in data:
                data = data.replace(b"\r", b" ").replace(b"\n", b" ")
            body = data + b"\n"  # the request body
        else:
            if "\n" in text or "\r" in text:
                text = text.replace("\r", " ").replace("\n", " ")
            text += "\n"
            body = text.encode()  # the request body
        end = len(body) - 1
        if body.find(10, 0, end) >= 0:  # the reply chunk is one line
            raise RuntimeError("a line break survived")
        line = memoryview(body)[:end]
        try:  # a reply line is a text frame when it is UTF-8
            await send({"type": "websocket.send", "text": str(line, "utf-8")})
        except UnicodeDecodeError:
            await send({"type": "websocket.send", "bytes": bytes(line)})


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
    """One app for all three: /bare is the bare echo, /floor the contract's floor, everything else
    goes through the proxy."""
    proxy = WebSocketProxyMiddleware(ndjson_echo)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "websocket" else ""
        if path == BARE_PATH:
            await bare_echo(scope, receive, send)
        elif path == FLOOR_PATH:
            await floor_echo(scope, receive, send)
        else:
            await proxy(scope, receive, send)

    return app
