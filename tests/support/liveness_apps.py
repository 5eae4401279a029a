"""Apps for the liveness tests (tests/integration/test_liveness.py), each behind the middleware.

- `/produce`: a producer that never awaits anything but `send`: an endless stream of lines, as an
  infinite generator, a StreamingResponse over an in-memory iterator or a fast gRPC stream whose
  messages are already buffered would be. `?chunk=N` sends N lines per body event.
- `/echo`: every body chunk straight back (bench.apps.ndjson_echo).
- `/state`: one JSON line `{"running": r, "ended": e}` counting producers; with `?wait=ended` it first
  waits (event-driven) until no producer runs and at least one has ended.
"""

from __future__ import annotations

import asyncio
import json

from bench.apps import ndjson_echo
from wsproxy import WebSocketProxyMiddleware
from wsproxy._types import Receive, Scope, Send

LINE = b'{"result":"' + b"x" * 100 + b'"}\n'


class Producers:
    """How many producers run and have ended; `wait_ended()` returns once none runs and one has ended."""

    def __init__(self) -> None:
        self.running = 0
        self.ended = 0
        self._idle: asyncio.Event | None = None  # made in the server's loop, on first use

    def idle(self) -> asyncio.Event:
        if self._idle is None:
            self._idle = asyncio.Event()
        return self._idle

    def started(self) -> None:
        self.running += 1
        self.idle().clear()

    def stopped(self) -> None:
        self.running -= 1
        self.ended += 1
        if self.running == 0:
            self.idle().set()

    async def wait_ended(self) -> None:
        await self.idle().wait()


PRODUCERS = Producers()


async def produce(scope: Scope, receive: Receive, send: Send) -> None:
    chunk = int(dict(_query(scope)).get("chunk", "1"))
    body = LINE * chunk
    await send({"type": "http.response.start", "status": 200, "headers": []})
    PRODUCERS.started()
    try:
        while True:
            await send({"type": "http.response.body", "body": body, "more_body": True})
    finally:
        PRODUCERS.stopped()


async def state(scope: Scope, receive: Receive, send: Send) -> None:
    if dict(_query(scope)).get("wait") == "ended":
        await PRODUCERS.wait_ended()
    body = json.dumps({"running": PRODUCERS.running, "ended": PRODUCERS.ended}).encode() + b"\n"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _query(scope: Scope) -> list[tuple[str, str]]:
    pairs = scope.get("query_string", b"").decode().split("&")
    return [(k, v) for k, _, v in (pair.partition("=") for pair in pairs if pair)]


async def router(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":  # hypercorn always runs the lifespan protocol
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path == "/produce":
        await produce(scope, receive, send)
    elif path == "/state":
        await state(scope, receive, send)
    else:
        await ndjson_echo(scope, receive, send)


app = WebSocketProxyMiddleware(router)
