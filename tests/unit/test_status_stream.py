"""`wsproxy.status.v1` through the middleware, in process with hand-built ASGI messages: no server.

The frames a client gets, in order, on a socket of its own and on a mux call, with and without
asking: the status first, lines as always (a binary line stays a line), trailers before the close.
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any, cast

import pytest

from wsproxy import WebSocketProxyMiddleware
from wsproxy._types import Message, Receive, Scope, Send

BINARY_LINE = b"\xff\xfe-not-utf8"


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers 201 with a header, a text line and a binary one, then trailers when the client takes them."""
    while (await receive()).get("more_body"):
        pass
    takes_trailers = (
        "http.response.trailers" in scope["extensions"] and (b"te", b"trailers") in scope["headers"]
    )
    headers = [(b"x-call", b"7"), (b"set-cookie", b"s=1; HttpOnly")]
    await send({"type": "http.response.start", "status": 201, "headers": headers, "trailers": takes_trailers})
    await send({"type": "http.response.body", "body": b"hello\n", "more_body": True})
    await send({"type": "http.response.body", "body": BINARY_LINE + b"\n", "more_body": False})
    if takes_trailers:
        await send(
            {"type": "http.response.trailers", "headers": [(b"grpc-status", b"0")], "more_trailers": False}
        )


async def converse(subprotocols: list[str], incoming: list[Message]) -> list[Message]:
    """Run one connection: `incoming` after the connect, then wait; return what the proxy sent."""
    queue: asyncio.Queue[Message] = asyncio.Queue()
    for message in [{"type": "websocket.connect"}, *incoming]:
        queue.put_nowait(message)
    sent: list[Message] = []
    closed = asyncio.Event()

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "websocket.close" or (
            message["type"] == "websocket.send" and message.get("bytes", b"")[:1] == b"\x13"  # mux END
        ):
            closed.set()

    scope = {
        "type": "websocket",
        "path": "/v1/x",
        "raw_path": b"/v1/x",
        "query_string": b"method=POST",
        "headers": [],
        "subprotocols": subprotocols,
    }
    task = asyncio.create_task(WebSocketProxyMiddleware(app)(scope, cast(Any, queue.get), cast(Any, send)))
    await asyncio.wait_for(closed.wait(), 5)
    queue.put_nowait({"type": "websocket.disconnect", "code": 1000})
    await asyncio.wait_for(task, 5)
    return sent


@pytest.mark.parametrize("bearer", [[], ["Bearer", "tok"]])
async def test_a_socket_that_asks_gets_the_status_first_and_the_trailers_last(bearer: list[str]) -> None:
    sent = await converse([*bearer, "wsproxy.status.v1"], [{"type": "websocket.receive", "text": ""}])
    assert sent[0] == {"type": "websocket.accept", "subprotocol": "wsproxy.status.v1"}
    assert json.loads(sent[1]["bytes"]) == {"type": "status", "status": 201, "headers": [["x-call", "7"]]}
    assert sent[2] == {"type": "websocket.send", "text": "hello"}
    assert sent[3] == {"type": "websocket.send", "bytes": BINARY_LINE}
    assert json.loads(sent[4]["bytes"]) == {"type": "trailers", "headers": [["grpc-status", "0"]]}
    assert sent[5]["type"] == "websocket.close"
    assert sent[5]["code"] == 1000
    assert len(sent) == 6


@pytest.mark.parametrize(("offered", "accepted"), [([], None), (["Bearer", "tok"], "Bearer")])
async def test_a_socket_that_does_not_ask_sees_the_lines_only(
    offered: list[str], accepted: str | None
) -> None:
    sent = await converse(offered, [{"type": "websocket.receive", "text": ""}])
    assert sent == [
        {"type": "websocket.accept", "subprotocol": accepted},
        {"type": "websocket.send", "text": "hello"},
        {"type": "websocket.send", "bytes": BINARY_LINE},
        {"type": "websocket.close", "code": 1000, "reason": ""},
    ]


def mux_frame(kind: int, call_id: int, payload: bytes = b"") -> Message:
    return {"type": "websocket.receive", "bytes": struct.pack("!BI", kind, call_id) + payload}


def mux_frames(sent: list[Message]) -> list[tuple[int, bytes]]:
    return [
        (message["bytes"][0], message["bytes"][5:]) for message in sent if message["type"] == "websocket.send"
    ]


@pytest.mark.parametrize("socket_offers_status", [False, True])
async def test_a_mux_call_that_asks_gets_status_and_trailers_frames(socket_offers_status: bool) -> None:
    offered = ["wsproxy.mux.v1", *(["wsproxy.status.v1"] if socket_offers_status else [])]
    opening = mux_frame(0x01, 1, b'{"path":"/v1/x?method=POST","status":true}')
    sent = await converse(offered, [opening, mux_frame(0x03, 1)])
    assert sent[0] == {"type": "websocket.accept", "subprotocol": "wsproxy.mux.v1"}
    frames = mux_frames(sent)
    assert [kind for kind, _ in frames] == [0x14, 0x11, 0x12, 0x15, 0x13]
    assert json.loads(frames[0][1]) == {"type": "status", "status": 201, "headers": [["x-call", "7"]]}
    assert frames[1:3] == [(0x11, b"hello"), (0x12, BINARY_LINE)]
    assert json.loads(frames[3][1]) == {"type": "trailers", "headers": [["grpc-status", "0"]]}
    assert frames[4] == (0x13, b"\x03\xe8")  # END 1000


@pytest.mark.parametrize("socket_offers_status", [False, True])
async def test_a_mux_call_that_does_not_ask_sees_lines_only(socket_offers_status: bool) -> None:
    # Offering wsproxy.status.v1 on the mux socket itself changes nothing: each call asks in its OPEN.
    offered = ["wsproxy.mux.v1", *(["wsproxy.status.v1"] if socket_offers_status else [])]
    opening = mux_frame(0x01, 1, b'{"path":"/v1/x?method=POST"}')
    sent = await converse(offered, [opening, mux_frame(0x03, 1)])
    assert mux_frames(sent) == [(0x11, b"hello"), (0x12, BINARY_LINE), (0x13, b"\x03\xe8")]
