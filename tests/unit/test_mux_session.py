"""The mux session (wsproxy/mux/_session.py) driven in-process, with hand-built ASGI messages: no server."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from typing import Any, cast

from tests.support.ndjson_service import ndjson_app
from wsproxy import WebSocketProxyMiddleware

SUBPROTOCOL = "wsproxy.mux.v1"
OPEN = 0x01


def frame(kind: int, call_id: int, payload: bytes = b"") -> bytes:
    return struct.pack("!BI", kind, call_id) + payload


async def test_a_flood_of_bad_opens_while_the_socket_cannot_be_written_stops_the_reading() -> None:
    """Each bad OPEN is answered with an END. A client that floods them and never reads must get
    backpressure (the proxy stops reading), not one pending END writer per OPEN. In process: a socket
    whose every data write blocks forever, as a full TCP buffer does, and a client with endless OPENs."""
    reads = 0

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        if reads == 1:
            return {"type": "websocket.connect"}
        return {"type": "websocket.receive", "bytes": frame(OPEN, reads, b"{")}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "websocket.send":
            await asyncio.Event().wait()

    scope = {
        "type": "websocket",
        "path": "/",
        "query_string": b"",
        "headers": [],
        "subprotocols": [SUBPROTOCOL],
    }
    proxy = WebSocketProxyMiddleware(ndjson_app)
    task = asyncio.create_task(proxy(scope, cast(Any, receive), cast(Any, send)))
    await asyncio.sleep(0.5)
    assert not task.done()
    assert reads < 100  # unbounded, it would have read tens of thousands by now
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
