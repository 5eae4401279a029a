"""Small raw-ASGI apps that behave like a streaming HTTP/JSON gateway, for end-to-end tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from wsproxy._types import Message, Receive, Scope, Send
from wsproxy.stream import DISCONNECT_GRACE_SECONDS


async def read_lines(receive: Receive) -> list[bytes]:
    """The whole request body, split into its lines."""
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    return [line for line in body.split(b"\n") if line]


async def start(send: Send, status: int = 200) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/x-ndjson")],
        }
    )


async def body(send: Send, data: bytes, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": more})


class Recorder:
    """Remembers what the app saw, so tests can assert on the request side."""

    def __init__(self) -> None:
        self.scopes: list[Scope] = []
        self.events: list[Message] = []
        self.finished = asyncio.Event()
        self.cancelled = False
        self.disconnect_seen = False
        self.send_raised: BaseException | None = None


def make_app(recorder: Recorder) -> Any:
    """Routes by path; each route is one shape of streaming call."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        recorder.scopes.append(dict(scope))
        path = scope["path"]
        try:
            await ROUTES[path](scope, _recording(receive, recorder), send, recorder)
        except asyncio.CancelledError:
            recorder.cancelled = True
            raise
        finally:
            recorder.finished.set()

    return app


def _recording(receive: Receive, recorder: Recorder) -> Receive:
    async def wrapped() -> Message:
        message = await receive()
        recorder.events.append(message)
        if message["type"] == "http.disconnect":
            recorder.disconnect_seen = True
        return message

    return wrapped


async def echo(scope: Scope, receive: Receive, send: Send, rec: Recorder) -> None:
    """Bidi: every body line comes straight back as a response line."""
    await start(send)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        data = message.get("body", b"")
        if data:
            await body(send, data)
        if not message.get("more_body", False):
            break
    await body(send, b"", more=False)


async def sum_values(scope: Scope, receive: Receive, send: Send, rec: Recorder) -> None:
    """Client streaming: one answer after the body ends."""
    lines = await read_lines(receive)
    total = sum(json.loads(line)["value"] for line in lines)
    await start(send)
    await body(send, json.dumps({"total": total, "count": len(lines)}).encode() + b"\n", more=False)


async def ticker(scope: Scope, receive: Receive, send: Send, rec: Recorder) -> None:
    """Server streaming that ignores the body, in chunks that do not align with lines."""
    count = int(dict(_query(scope)).get("count", "3"))
    await start(send)
    payload = b"".join(json.dumps({"seq": i}).encode() + b"\r\n" for i in range(count))
    for i in range(0, len(payload), 5):
        await body(send, payload[i : i + 5])
    await body(send, b"", more=False)


async def unterminated(scope: Scope, receive: Receive, send: Send, rec: Recorder) -> None:
    await start(send)
    await body(send, b'{"a": 1}\n\n{"b": 2}', more=False)


async def not_found(scope: Scope, receive: Receive, send: Send, rec: Recorder) -> None:
    await start(send, 404)
    await body(send, b'{"code": 5, "message": "no such thing"}\n', more=False)


async def crash(scope: Scope, receive: Receive, send: Send, rec: Recorder) -> None:
    await start(send)
    await body(send, b'{"partial": true}\n')
    raise RuntimeError("secret database password in this message")


async def headers(scope: Scope, receive: Receive, send: Send, rec: Recorder) -> None:
    """Answers with what the request looked like."""
    seen = {
        "method": scope["method"],
        "path": scope["path"],
        "query": scope["query_string"].decode(),
        "scheme": scope["scheme"],
        "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
        "spec_version": scope["asgi"].get("spec_version"),
    }
    await start(send)
    await body(send, json.dumps(seen).encode() + b"\n", more=False)


async def binary(scope: Scope, receive: Receive, send: Send, rec: Recorder) -> None:
    await start(send)
    await body(send, b"\xff\xfe not utf-8\n", more=False)


async def hang(scope: Scope, receive: Receive, send: Send, rec: Recorder) -> None:
    """Starts a response, then neither reads nor sends again."""
    await start(send)
    await body(send, b'{"ready": true}\n')
    await asyncio.sleep(3600)


async def stream_forever(scope: Scope, receive: Receive, send: Send, rec: Recorder) -> None:
    """Sends until send() raises, never reading."""
    await start(send)
    try:
        while True:
            await body(send, b'{"tick": true}\n')
            await asyncio.sleep(0.01)
    except OSError as exc:
        rec.send_raised = exc
        raise


async def big_line(scope: Scope, receive: Receive, send: Send, rec: Recorder) -> None:
    size = int(dict(_query(scope)).get("size", "0"))
    await start(send)
    await body(send, b"x" * size + b"\n", more=False)


async def background(scope: Scope, receive: Receive, send: Send, rec: Recorder) -> None:
    """Finishes its response, then keeps working, as Starlette's background tasks do."""
    await start(send)
    await body(send, b'{"done": true}\n', more=False)
    await asyncio.sleep(DISCONNECT_GRACE_SECONDS + 0.5)
    rec.events.append({"type": "background.done"})


async def no_response(scope: Scope, receive: Receive, send: Send, rec: Recorder) -> None:
    return


ROUTES = {
    "/echo": echo,
    "/sum": sum_values,
    "/ticker": ticker,
    "/unterminated": unterminated,
    "/missing": not_found,
    "/crash": crash,
    "/headers": headers,
    "/binary": binary,
    "/hang": hang,
    "/stream": stream_forever,
    "/big": big_line,
    "/none": no_response,
    "/background": background,
}


def _query(scope: Scope) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(scope["query_string"].decode())
