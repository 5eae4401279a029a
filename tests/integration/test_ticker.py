"""The shared ticker: every open stream of a loop ticks from one timer, and an idle timeout still never
fires early, however a stream's start falls between two ticks (real uvicorn, a real client)."""

from __future__ import annotations

import asyncio
import time

import pytest
from websockets.asyncio.client import connect

from bench.apps import ndjson_echo
from tests.support.servers import drain, serve
from wsproxy import WebSocketProxyMiddleware
from wsproxy.stream._ticker import Ticker as _Ticker

IDLE_TIMEOUT = 2.0  # seconds, as passed to the middleware


async def idle_stream_lifetime(url: str) -> float:
    """Seconds from the open handshake to the server's idle close, sending nothing."""
    async with connect(url, open_timeout=10) as ws:
        opened = time.monotonic()
        _, code, reason = await drain(ws)
        closed = time.monotonic()
    assert (code, reason) == (1001, "idle timeout")
    return closed - opened


@pytest.mark.parametrize("ws_impl", ["websockets-sansio", "wsproto"])
async def test_idle_timeout_never_fires_early_whenever_a_stream_starts(ws_impl: str) -> None:
    proxy = WebSocketProxyMiddleware(ndjson_echo, idle_timeout=IDLE_TIMEOUT)
    async with serve(proxy, ws=ws_impl) as server:
        url = server.ws + "/echo?method=POST"
        # Streams that start at different points between two ticks of the shared timer: the first
        # starts the timer, the others join 0.3, 0.6 and 0.9 s into its period.
        starts = [asyncio.create_task(idle_stream_lifetime(url))]
        for _ in range(3):
            await asyncio.sleep(0.3)
            starts.append(asyncio.create_task(idle_stream_lifetime(url)))
        lifetimes = await asyncio.gather(*starts)
    assert all(IDLE_TIMEOUT <= lifetime < IDLE_TIMEOUT + 2.5 for lifetime in lifetimes), lifetimes


async def test_open_streams_of_a_loop_share_one_timer() -> None:
    proxy = WebSocketProxyMiddleware(ndjson_echo)
    async with serve(proxy) as server:
        url = server.ws + "/echo?method=POST"
        clients = [await connect(url, open_timeout=10) for _ in range(5)]
        try:
            for ws in clients:  # each stream is running once its first echo comes back
                await ws.send('{"n": 1}')
                assert await asyncio.wait_for(ws.recv(), 10) == '{"n": 1}'
            ticker = _Ticker.of(asyncio.get_running_loop())
            assert len(ticker.streams | ticker.fresh) == 5
            assert ticker.handle is not None
        finally:
            for ws in clients:
                await ws.close()
        for _ in range(100):  # the streams end as their clients close
            if not ticker.streams and not ticker.fresh:
                break
            await asyncio.sleep(0.05)
        assert not ticker.streams
        assert not ticker.fresh
