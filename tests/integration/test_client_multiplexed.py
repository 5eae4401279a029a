"""The Python mux client against servers that break the rules: a real `websockets` server on loopback."""

from __future__ import annotations

import contextlib
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.typing import Subprotocol

from wsproxy.client import ConnectError, UnexpectedCloseError, connect_mux

LINE, END = 0x11, 0x13
Handler = Callable[[ServerConnection], Awaitable[None]]


@contextlib.asynccontextmanager
async def fake_server(handler: Handler, subprotocols: list[str]) -> AsyncIterator[str]:
    async with ws_serve(
        handler, "127.0.0.1", 0, subprotocols=[Subprotocol(item) for item in subprotocols]
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


async def after_open(ws: ServerConnection) -> int:
    """Wait for the client's OPEN; its call id."""
    data = await ws.recv()
    assert isinstance(data, bytes)
    kind, call_id = struct.unpack_from("!BI", data)
    assert kind == 0x01
    return int(call_id)


async def text_frame(ws: ServerConnection) -> None:
    await after_open(ws)
    await ws.send("not a mux frame")
    await ws.wait_closed()


async def line_without_credit(ws: ServerConnection) -> None:
    call_id = await after_open(ws)
    await ws.send(struct.pack("!BI", LINE, call_id) + b'"' + b"x" * 70000 + b'"')  # overdraws 65536
    await ws.send(struct.pack("!BI", LINE, call_id) + b'"late"')  # no credit left: a violation
    await ws.wait_closed()


async def bad_utf8_line(ws: ServerConnection) -> None:
    call_id = await after_open(ws)
    await ws.send(struct.pack("!BI", LINE, call_id) + b"\xff\xfe")
    await ws.wait_closed()


@pytest.mark.parametrize(
    ("handler", "reason"),
    [
        (text_frame, "text frame"),
        (line_without_credit, "flow control"),
        (bad_utf8_line, "not UTF-8"),
    ],
)
async def test_a_server_that_breaks_the_framing_fails_the_socket_with_1002(
    handler: Handler, reason: str
) -> None:
    async with fake_server(handler, ["wsproxy.mux.v1"]) as url, connect_mux(url) as conn:
        call = await conn.open("/v1/anything")
        with pytest.raises(UnexpectedCloseError) as failed:
            _ = [message async for message in call]
        assert failed.value.code == 1002
        assert reason in failed.value.reason
        assert conn.close_code == 1002


async def test_a_server_without_the_subprotocol_is_a_connect_error() -> None:
    async def old_wsproxy(ws: ServerConnection) -> None:
        await ws.wait_closed()

    async with fake_server(old_wsproxy, ["Bearer"]) as url:
        with pytest.raises(ConnectError, match=r"did not accept the wsproxy\.mux\.v1 subprotocol"):
            async with connect_mux(url, token="t"):
                pass


async def test_call_paths_stay_on_the_connections_host() -> None:
    async def quiet(ws: ServerConnection) -> None:
        await ws.wait_closed()

    async with fake_server(quiet, ["wsproxy.mux.v1"]) as url, connect_mux(url) as conn:
        with pytest.raises(ValueError, match="not on this connection's host"):
            await conn.open("ws://elsewhere.example/v1/echo")
