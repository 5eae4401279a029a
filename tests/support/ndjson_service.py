"""An NDJSON echo service shaped like the demo's gateway (unary, both streams, bidi, whoami, failures), and
the small readers and writers it is made of: for the client's, the mux session's and the browser's tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

from wsproxy._types import Receive, Scope, Send
from wsproxy.errors import UpstreamError

INVALID_ARGUMENT = {"code": 3, "message": "message must not be empty", "details": []}


async def body_lines(receive: Receive) -> AsyncIterator[dict[str, Any]]:
    """The request body's JSON lines, each as soon as it arrives."""
    buffer = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        buffer += message.get("body", b"")
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip():
                yield json.loads(line)
        if not message.get("more_body", False):
            return


async def respond(send: Send, status: int, *lines: Any, more: bool = False) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"x-ndjson")]})
    for line in lines:
        await send(
            {"type": "http.response.body", "body": json.dumps(line).encode() + b"\n", "more_body": True}
        )
    if not more:
        await send({"type": "http.response.body", "body": b""})


async def ndjson_app(scope: Scope, receive: Receive, send: Send) -> None:
    """An echo service shaped like the demo's gateway: unary, both streams, bidi, whoami, failures."""
    path, query = scope["path"], parse_qs(scope["query_string"].decode())
    headers = {name.decode(): value.decode() for name, value in scope["headers"]}
    if path == "/v1/echo":
        messages = [line async for line in body_lines(receive)]
        text = messages[0].get("message", "") if messages else ""
        if not text:
            await respond(send, 400, INVALID_ARGUMENT)
        else:
            await respond(send, 200, {"message": text, "method": scope["method"]})
    elif path == "/v1/ticker":
        count = int(query["count"][0])
        await respond(send, 200, *({"result": {"seq": n}} for n in range(count)), more=True)
        if "fail" in query:
            await respond_more(send, {"error": {"code": 14, "message": "ticker broke", "details": []}})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/v1/sum":
        values = [line["value"] async for line in body_lines(receive)]
        await respond(send, 200, {"total": sum(values), "count": len(values)})
    elif path == "/v1/chat":
        await respond(send, 200, more=True)
        async for line in body_lines(receive):
            await respond_more(send, {"result": {"reply": line["text"].upper()}})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/v1/whoami":
        await respond(send, 200, {"authorization": headers.get("authorization", "")})
    elif path == "/v1/hold":
        # Keeps the response open after the request body ended, until the client goes away.
        await respond(send, 200, more=True)
        _ = [line async for line in body_lines(receive)]
        while (await receive())["type"] != "http.disconnect":
            pass
    elif path == "/v1/raise":
        raise RuntimeError("secret detail that must not reach the client")
    elif path == "/v1/upstream":
        await respond(send, 200, {"result": 1}, more=True)
        raise UpstreamError("upstream reset")
    elif path == "/v1/big":
        await respond(send, 200, "x" * 4096)
    else:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b'{"detail":"Not Found"}\n'})


async def respond_more(send: Send, line: Any) -> None:
    await send({"type": "http.response.body", "body": json.dumps(line).encode() + b"\n", "more_body": True})


async def collect(messages: AsyncIterator[Any], into: list[Any]) -> None:
    """Append every message to `into`, so a test sees what arrived before the error."""
    async for message in messages:
        into.append(message)


class Observed:
    """What the apps behind the proxy saw, for the test to check."""

    def __init__(self) -> None:
        self.disconnects: list[str] = []
        self.watching = 0  # /v1/watch apps still running
        self.flood_lines = 0
        self.sockets = 0


async def observed_app(observed: Observed, scope: Scope, receive: Receive, send: Send) -> None:
    path, query = scope["path"], parse_qs(scope["query_string"].decode())
    if path == "/v1/stall":
        # Answers at once but never reads its request body until the client leaves.
        await respond(send, 200, {"result": "stalled"}, more=True)
        await asyncio.Event().wait()
    elif path == "/v1/flood":
        size = int(query["size"][0])
        await respond(send, 200, more=True)
        while True:
            line = json.dumps({"result": "x" * size}).encode() + b"\n"
            await send({"type": "http.response.body", "body": line, "more_body": True})
            observed.flood_lines += 1
    elif path == "/v1/watch":
        # Holds the call open and records the disconnect when it comes.
        observed.watching += 1
        try:
            await respond(send, 200, {"result": "watching"}, more=True)
            while (await receive())["type"] != "http.disconnect":
                pass
            observed.disconnects.append(query["name"][0])
        finally:
            observed.watching -= 1
    elif path == "/v1/burst":
        # Sends its lines in a tight loop: the server's send does not yield while its buffer has room.
        await respond(send, 200, more=True)
        for n in range(int(query["count"][0])):
            await send({"type": "http.response.body", "body": b'{"result":%d}\n' % n, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/v1/headers":
        headers = {name.decode(): value.decode() for name, value in scope["headers"]}
        _ = [line async for line in body_lines(receive)]
        await respond(send, 200, headers)
    else:
        await ndjson_app(scope, receive, send)
