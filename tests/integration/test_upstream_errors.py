"""Every upstream failure reaches the client as one fixed, documented message; details go to the log.

The expected bodies are literals (the table in docs/upstream.md), not the code's constants.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
from collections.abc import Iterator

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.support.servers import bind_loopback, drain
from tests.support.upstream_apps import proxying, raw_upstream
from tests.support.upstream_errors import DOCUMENTED
from wsproxy import WebSocketProxyMiddleware
from wsproxy.upstream import UpstreamApp


@contextlib.contextmanager
def unanswered_url() -> Iterator[str]:
    """A port whose accept queue is full: a connection attempt gets no answer at all."""
    sock = bind_loopback()
    sock.listen(0)
    filler = socket.create_connection(sock.getsockname())  # takes the one queue slot
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        filler.close()
        sock.close()


async def test_connect_timeout_is_504_with_the_fixed_message() -> None:
    with unanswered_url() as url:
        async with (
            proxying(UpstreamApp(url, connect_timeout=0.3)) as proxy,
            httpx.AsyncClient() as client,
        ):
            response = await client.get(proxy.http + "/x")
    assert response.status_code == 504
    assert response.json() == {"error": "upstream timeout", "reason": "connect timed out"}


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        ("close", "closed without a response"),
        ("reset", "connection reset"),
        ("garbage", "malformed response"),
    ],
)
async def test_failures_before_the_response_are_fixed_502s_and_logged(
    behaviour: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="wsproxy.upstream")
    async with (
        raw_upstream(behaviour) as url,
        proxying(UpstreamApp(url)) as proxy,
        httpx.AsyncClient() as client,
    ):
        response = await client.post(proxy.http + "/v1/chat", content=b'{"text": "hi"}\n')
    assert response.status_code == 502
    assert response.json() == {"error": "bad upstream response", "reason": reason}
    # The details are in the server log, not in the answer.
    assert any("/v1/chat" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("behaviour", ["close", "reset", "garbage"])
async def test_failures_before_the_response_reach_a_websocket_as_the_fixed_line(
    behaviour: str, ws_impl: str
) -> None:
    async with (
        raw_upstream(behaviour) as url,
        proxying(WebSocketProxyMiddleware(UpstreamApp(url)), ws=ws_impl) as proxy,
        connect(proxy.ws + "/v1/ticker") as ws,
    ):
        frames, code, reason = await drain(ws)
    assert (code, reason) == (4502, "Bad Gateway")
    assert len(frames) == 1
    body = json.loads(frames[0])
    assert (body["error"], body["reason"]) in DOCUMENTED
    assert set(body) == {"error", "reason"}


async def test_failure_after_the_response_started_closes_1014_without_detail(ws_impl: str) -> None:
    async with (
        raw_upstream("close-mid-body") as url,
        proxying(WebSocketProxyMiddleware(UpstreamApp(url)), ws=ws_impl) as proxy,
        connect(proxy.ws + "/v1/ticker") as ws,
    ):
        assert await drain(ws) == (['{"n": 0}'], 1014, "bad gateway")
