"""The limits without a server: over max_connections on a server without the websocket.http.response
extension, driven in-process (tests/integration/test_reliability.py has the rest, on real servers)."""

from __future__ import annotations

from tests.support.reliability_apps import Tracker, tracked_app
from wsproxy import WebSocketProxyMiddleware
from wsproxy._types import Message


async def test_over_max_connections_without_the_http_response_extension_closes_1013() -> None:
    # Both uvicorn implementations offer the extension; other servers may not, so drive it in-process.
    proxy = WebSocketProxyMiddleware(tracked_app(Tracker()), max_connections=1)
    proxy.active_streams = 1  # one stream is already open
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/echo", "query_string": b"", "headers": [], "extensions": {}}
    await proxy(scope, receive, send)
    assert sent == [
        {"type": "websocket.accept"},
        {"type": "websocket.close", "code": 1013, "reason": "too many connections"},
    ]
