"""Load: 5,000 concurrent open streams in one process keep working, then all close cleanly."""

from __future__ import annotations

import asyncio
import resource

import pytest
from websockets.asyncio.client import ClientConnection, connect

from bench.apps import ndjson_echo
from tests.support.servers import Ended, drain, serve
from wsproxy import WebSocketProxyMiddleware

STREAMS = 5000
CONNECTING_AT_ONCE = 100  # below uvicorn's listen backlog, so no handshake waits on a SYN retry


@pytest.fixture
def enough_file_descriptors() -> None:
    # Each stream costs two descriptors here: the client's socket and the server's.
    needed = 2 * STREAMS + 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"needs {needed} open files, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


@pytest.mark.usefixtures("enough_file_descriptors")
async def test_five_thousand_concurrent_streams_keep_working(ws_impl: str) -> None:
    ended = Ended()
    proxy = WebSocketProxyMiddleware(ndjson_echo, on_stream_end=ended)
    async with serve(proxy, ws=ws_impl, backlog=2048) as running:
        gate = asyncio.Semaphore(CONNECTING_AT_ONCE)

        async def open_stream(i: int) -> ClientConnection:
            async with gate:
                ws = await connect(
                    f"{running.ws}/echo?method=POST", ping_interval=None, compression=None, open_timeout=60
                )
                await ws.send(f"hello {i}")
                assert await ws.recv() == f"hello {i}"
                return ws

        clients = await asyncio.gather(*(open_stream(i) for i in range(STREAMS)))
        assert proxy.active_streams == STREAMS

        async def talk(i: int, ws: ClientConnection) -> None:
            await ws.send(f"still here {i}")
            assert await ws.recv() == f"still here {i}"

        async def finish(ws: ClientConnection) -> None:
            await ws.send("")
            assert await drain(ws) == ([], 1000, "")

        # Every stream talks while all the others are open, then every one ends cleanly.
        await asyncio.gather(*(talk(i, ws) for i, ws in enumerate(clients)))
        assert proxy.active_streams == STREAMS
        await asyncio.gather(*(finish(ws) for ws in clients))
        await ended.reach(STREAMS)  # the server's side of each close
        assert proxy.active_streams == 0
