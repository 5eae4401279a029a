"""The `wsproxy` command's server flags, proven on a running process rather than by their names.

docs/protocol.md ("Keep-alive"): the server sends pings every `--ws-ping-interval` seconds and drops
a peer whose pong is later than `--ws-ping-timeout`; docs/cli.md: `--ws-max-size` is the largest
frame the server accepts. A raw sans-I/O client shows what is on the wire: when each ping arrives,
and what happens when no pong goes back.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from websockets.asyncio.client import connect
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from tests.support.servers import drain, eventually
from tests.support.upstream_apps import Process, spawn_listening

WSPROXY = [
    sys.executable,
    "-m",
    "wsproxy",
    "--log-level",
    "warning",
    "--app",
    "tests.support.upstream_apps:app",
]
EARLY, LATE = 0.05, 1.0  # a timer never fires early; a loaded machine may fire it late


@dataclass
class RawClient:
    """A WebSocket client that answers pings only when told to, and notes when each frame came."""

    protocol: ClientProtocol
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    answer_pings: bool
    pings: list[float] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    close_code: int | None = None
    ended_at: float | None = None

    async def pump(self) -> None:
        """Read until the server ends the connection, recording what arrives."""
        loop = asyncio.get_running_loop()
        while True:
            data = await self.reader.read(1 << 16)
            if data:
                self.protocol.receive_data(data)
            else:
                self.protocol.receive_eof()
            for event in self.protocol.events_received():
                if isinstance(event, Frame) and event.opcode is Opcode.PING:
                    self.pings.append(loop.time())
                elif isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                    self.texts.append(bytes(event.data).decode())
            outgoing = self.protocol.data_to_send()  # the pong websockets queued for each ping
            if self.answer_pings:
                self.writer.write(b"".join(chunk for chunk in outgoing if chunk))
            if self.protocol.close_rcvd is not None or not data:
                self.close_code = self.protocol.close_rcvd.code if self.protocol.close_rcvd else None
                self.ended_at = loop.time()
                return


@dataclass
class Running:
    client: RawClient
    pump: asyncio.Task[None]


@pytest.fixture
async def keepalive(request: pytest.FixtureRequest, ws_impl: str) -> AsyncIterator[Running]:
    interval, timeout, answer = request.param
    argv = [*WSPROXY, "--ws", ws_impl, "--ws-ping-interval", str(interval), "--ws-ping-timeout", str(timeout)]
    with spawn_listening(argv) as proxy:
        client = await _raw_client(proxy, "/forever", answer)
        pump = asyncio.create_task(client.pump())
        try:
            yield Running(client, pump)
        finally:
            pump.cancel()
            client.writer.close()


async def _raw_client(proxy: Process, path: str, answer_pings: bool) -> RawClient:
    protocol = ClientProtocol(parse_uri(proxy.ws + path), max_size=None)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    protocol.send_request(protocol.connect())
    writer.write(b"".join(protocol.data_to_send()))
    return RawClient(protocol, reader, writer, answer_pings)


@pytest.mark.parametrize("keepalive", [(0.3, 5.0, True)], indirect=True)
async def test_a_ping_is_sent_every_ws_ping_interval_and_an_answering_client_stays(
    keepalive: Running,
) -> None:
    client = keepalive.client
    await eventually(lambda: len(client.pings) >= 4 or keepalive.pump.done(), "four pings", timeout=30)
    assert client.ended_at is None, f"the server closed an answering client ({client.close_code})"
    assert client.texts == [json.dumps({"n": 0})]  # the call is live behind the pings
    gaps = [later - earlier for earlier, later in zip(client.pings, client.pings[1:], strict=False)]
    assert all(0.3 - EARLY <= gap <= 0.3 + LATE for gap in gaps), gaps


@pytest.mark.parametrize("keepalive", [(0.3, 0.5, False)], indirect=True)
async def test_a_client_whose_pong_is_later_than_ws_ping_timeout_is_dropped(keepalive: Running) -> None:
    client = keepalive.client
    await asyncio.wait_for(keepalive.pump, 30)
    assert client.pings, "no ping came"
    assert client.ended_at is not None
    waited = client.ended_at - client.pings[0]
    assert 0.5 - EARLY <= waited <= 0.5 + LATE, f"dropped {waited:.2f}s after the unanswered ping"
    assert client.close_code in (None, 1011)  # a close frame (1011) or just the end of the connection


async def test_a_frame_over_ws_max_size_is_refused_by_the_server(ws_impl: str) -> None:
    argv = [*WSPROXY, "--ws", ws_impl, "--ws-max-size", "1000"]
    at_limit = json.dumps({"p": ""})
    at_limit = json.dumps({"p": "x" * (1000 - len(at_limit))})
    assert len(at_limit) == 1000
    with spawn_listening(argv) as proxy:
        async with connect(proxy.ws + "/bidi?method=POST", open_timeout=30, max_size=None) as ws:
            await ws.send(at_limit)
            assert json.loads(await ws.recv()) == {"echo": json.loads(at_limit)}
            await ws.send(at_limit + " ")  # 1001 bytes
            frames, code, _ = await drain(ws)
    assert (frames, code) == ([], 1009)
