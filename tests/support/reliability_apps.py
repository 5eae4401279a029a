"""A small app whose routes are the faults of docs/reliability.md (echo, late reads, numbered lines, errors,
crashes, hangs, sized lines), and which counts the calls still running and records how each ended."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from wsproxy._types import Message, Receive, Scope, Send


@dataclass
class Tracker:
    live: int = 0
    outcomes: dict[str, str] = field(default_factory=dict)  # tag -> returned | cancelled | raised
    bodies: dict[str, list[bytes]] = field(default_factory=dict)  # tag -> body events seen


def tracked_app(tracker: Tracker) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        query = dict(parse_qsl(scope["query_string"].decode()))
        tag = str(query.get("tag", scope["path"]))
        tracker.live += 1
        tracker.bodies[tag] = []

        async def recording() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                tracker.bodies[tag].append(message.get("body", b""))
            return message

        try:
            await ROUTES[scope["path"]](query, recording, send)
        except asyncio.CancelledError:
            tracker.outcomes[tag] = "cancelled"
            raise
        except BaseException:
            tracker.outcomes[tag] = "raised"
            raise
        else:
            tracker.outcomes[tag] = "returned"
        finally:
            tracker.live -= 1

    return app


Query = dict[str, str]


async def _start(send: Send, status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status, "headers": []})


async def _body(send: Send, data: bytes, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": more})


async def echo(query: Query, receive: Receive, send: Send) -> None:
    await _start(send)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        if message.get("body"):
            await _body(send, message["body"])
        if not message.get("more_body", False):
            break
    await _body(send, b"", more=False)


async def collect(query: Query, receive: Receive, send: Send) -> None:
    """Reads the whole body (after `wait` seconds, to make the read-ahead run) then sums it up."""
    await asyncio.sleep(float(query.get("wait", "0")))
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    lines = body.split(b"\n")[:-1]
    summary = {"count": len(lines), "sha256": hashlib.sha256(body).hexdigest()}
    await _start(send)
    await _body(send, json.dumps(summary).encode() + b"\n", more=False)


def numbered_lines(count: int) -> bytes:
    return b"".join(b'{"seq": %d}\r\n' % i for i in range(count))


async def emit(query: Query, receive: Receive, send: Send) -> None:
    """Writes `n` lines in chunks that ignore line boundaries, then ends as `end` says."""
    payload = numbered_lines(int(query["n"]))
    chunk = int(query.get("chunk", "7"))
    await _start(send, int(query.get("status", "200")))
    for i in range(0, len(payload), chunk):
        await _body(send, payload[i : i + chunk])
        if query.get("slow"):
            await asyncio.sleep(0.001)
    if query.get("end") == "raise":
        raise RuntimeError("the app failed after writing its lines")
    await _body(send, b"", more=False)


async def hang(query: Query, receive: Receive, send: Send) -> None:
    """Answers one line, then neither reads nor writes again."""
    await _start(send)
    await _body(send, b'{"ready": true}\n')
    await asyncio.Event().wait()


async def crash(query: Query, receive: Receive, send: Send) -> None:
    raise RuntimeError("the app failed before answering")


async def sized(query: Query, receive: Receive, send: Send) -> None:
    """Lines of exactly `size` bytes, `n` of them, in one body chunk."""
    size, count = int(query["size"]), int(query["n"])
    await _start(send)
    await _body(send, b"".join(bytes([97 + i % 26]) * size + b"\n" for i in range(count)), more=False)


ROUTES: dict[str, Callable[[Query, Receive, Send], Awaitable[None]]] = {
    "/echo": echo,
    "/collect": collect,
    "/emit": emit,
    "/hang": hang,
    "/crash": crash,
    "/sized": sized,
}
