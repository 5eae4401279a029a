"""Liveness and fairness on every server (issue 10): no stream may freeze the server or starve the others.

Each server runs in a process of its own (tests/support/server_process.py), so a frozen event loop fails the
test (a bounded wait times out; a server that ignores SIGTERM is SIGKILLed and the test fails) instead
of freezing the test too. The apps are tests/support/liveness_apps.py; the flood client is bench/flood.py.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from urllib.parse import urlsplit

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.frames import Close, Opcode
from websockets.uri import parse_uri

from bench.flood import flooding
from tests.support.server_process import server_process
from tests.support.servers import drain, serve_on

APP = "tests.support.liveness_apps:app"
CALL_SECONDS = 60  # generous: this proves the call completes at all; speed is bench/rows_fairness.py's


def reset(ws: ClientConnection) -> None:
    """Abort with a TCP reset and no close frame, as a client that vanishes does."""
    sock = ws.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.transport.abort()


async def state(url: str, *, wait: bool = False) -> dict[str, int]:
    """The producers' counts, from a new call on the server (after they have all ended, with `wait`)."""
    async with connect(url + "/state" + ("?wait=ended" if wait else "")) as ws:
        frames, code, _ = await drain(ws)  # it answers without reading the body
    assert code == 1000
    result: dict[str, int] = json.loads(frames[0])
    return result


async def echo_call(url: str, text: str) -> tuple[list[str | bytes], int | None]:
    async with connect(url + "/echo?method=POST") as ws:
        await ws.send(text)
        reply = await ws.recv()
        await ws.send("")
        frames, code, _ = await drain(ws)
    return [reply, *frames], code


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize("chunk", [1, 100], ids=["line-per-send", "100-lines-per-send"])
async def test_a_producer_that_never_yields_and_whose_client_resets_frees_the_server(
    server_impl: str, chunk: int, loop: str
) -> None:
    with server_process(server_impl, APP, "--loop", loop) as server:
        url = server.running.ws
        ws = await connect(f"{url}/produce?chunk={chunk}", max_size=None)
        for _ in range(10):
            await ws.recv()
        reset(ws)

        # Another client is served while the producer's client is gone...
        counts = await asyncio.wait_for(state(url), CALL_SECONDS)
        assert counts["ended"] + counts["running"] == 1
        # ...the producer ends (its send raised ClientDisconnected)...
        counts = await asyncio.wait_for(state(url, wait=True), CALL_SECONDS)
        assert counts == {"running": 0, "ended": 1}
        # ...and the server still stops on SIGTERM, having logged nothing at ERROR.
        assert server.stop(), "the server ignored SIGTERM and was killed"
        assert server.error_lines() == [], server.stderr()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_a_flooding_client_does_not_starve_new_calls(server_impl: str, loop: str) -> None:
    with server_process(server_impl, APP, "--loop", loop) as server:
        url = server.running.ws
        with flooding(url + "/echo?method=POST") as flood:
            for i in range(20):
                frames, code = await asyncio.wait_for(echo_call(url, f"call {i}"), CALL_SECONDS)
                assert (frames, code) == ([f"call {i}"], 1000)
            assert flood.poll() is None, "the flood must last through the calls"
        assert server.stop(), "the server ignored SIGTERM and was killed"
        assert server.error_lines() == [], server.stderr()


async def deaf_to_pings(url: str) -> Close:
    """A client that reads everything but never answers a ping; returns the server's close frame."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    protocol = ClientProtocol(parse_uri(url), max_size=None)
    protocol.send_request(protocol.connect())
    writer.write(b"".join(protocol.data_to_send()))
    await writer.drain()
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                protocol.receive_eof()
            else:
                protocol.receive_data(data)
            protocol.data_to_send()  # its pongs (and the close reply) are never sent
            for event in protocol.events_received():
                if getattr(event, "opcode", None) is Opcode.CLOSE:
                    assert protocol.close_rcvd is not None
                    return protocol.close_rcvd
            if not data:
                raise AssertionError("the server dropped the connection without a close frame")
    finally:
        writer.transport.abort()


async def test_a_keepalive_timeout_while_the_app_streams_is_a_client_gone_not_an_app_crash(
    server_impl: str,
) -> None:
    if server_impl == "hypercorn":
        pytest.skip("hypercorn sends pings but has no ping timeout: it never ends a connection for it")
    with server_process(server_impl, APP, "--ping-interval", "0.2", "--ping-timeout", "0.2") as server:
        url = server.running.ws
        close = await asyncio.wait_for(deaf_to_pings(url + "/produce"), CALL_SECONDS)
        assert close.code == 1011  # the server's own close: "keepalive ping timeout"
        counts = await asyncio.wait_for(state(url, wait=True), CALL_SECONDS)
        assert counts == {"running": 0, "ended": 1}
        assert server.stop(), "the server ignored SIGTERM and was killed"
        assert server.error_lines() == [], server.stderr()


async def test_a_shutdown_while_the_app_streams_is_a_client_gone_and_the_server_exits(
    server_impl: str,
) -> None:
    with server_process(server_impl, APP) as server:
        ws = await connect(server.running.ws + "/produce", max_size=None)
        for _ in range(10):
            await ws.recv()
        stopped = asyncio.create_task(asyncio.to_thread(server.stop))
        _, code, _ = await asyncio.wait_for(drain(ws), CALL_SECONDS)
        assert await stopped, "the server ignored SIGTERM and was killed"
        # uvicorn closes with 1012 "service restart"; hypercorn cancels the app after its grace and
        # then closes with 1011 itself (wsproxy re-raises the server's cancellation).
        assert code == (1011 if server_impl == "hypercorn" else 1012)
        # hypercorn's cancellation of its connection tasks is logged by asyncio at ERROR, whatever the app.
        ignore = ("asyncio",) if server_impl == "hypercorn" else ()
        assert server.error_lines(ignore=ignore) == [], server.stderr()


async def test_the_servers_own_frame_limit_while_the_app_streams_is_a_client_gone(server_impl: str) -> None:
    with server_process(server_impl, APP, "--ws-max-size", "1024") as server:
        url = server.running.ws
        async with connect(url + "/produce", max_size=None) as ws:
            for _ in range(10):
                await ws.recv()
            await ws.send("x" * 4096)
            _, code, _ = await asyncio.wait_for(drain(ws), CALL_SECONDS)
        assert code == 1009  # the server's own close
        counts = await asyncio.wait_for(state(url, wait=True), CALL_SECONDS)
        assert counts == {"running": 0, "ended": 1}
        assert server.stop(), "the server ignored SIGTERM and was killed"
        assert server.error_lines() == [], server.stderr()


async def test_every_server_also_runs_in_this_loop_for_other_tests(server_impl: str) -> None:
    """tests.support.servers.serve_on(), the in-process fixture other test modules use with `server_impl`."""
    from tests.support.liveness_apps import app

    async with serve_on(server_impl, app) as running:
        frames, code = await asyncio.wait_for(echo_call(running.ws, "in-loop"), CALL_SECONDS)
    assert (frames, code) == (["in-loop"], 1000)
