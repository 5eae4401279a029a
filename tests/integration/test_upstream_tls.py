"""TLS both ways: UpstreamApp to an https:// upstream, and the command serving wss:// (self-signed, via openssl)."""

from __future__ import annotations

import json
import shutil
import ssl
import sys
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.support.servers import drain
from tests.support.upstream_apps import make_certificate, proxying, spawn_listening, upstream_process
from wsproxy import WebSocketProxyMiddleware
from wsproxy.upstream import UpstreamApp

pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="openssl is needed to make a test certificate"
)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    return make_certificate(tmp_path_factory.mktemp("tls"))


def trusting(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


async def test_https_upstream_streams_full_duplex(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    with upstream_process("--ssl-certfile", str(cert), "--ssl-keyfile", str(key)) as upstream:
        url = upstream.http.replace("http:", "https:")
        app = WebSocketProxyMiddleware(UpstreamApp(url, ssl_context=trusting(cert)))
        async with proxying(app) as proxy, connect(proxy.ws + "/bidi?method=POST", open_timeout=30) as ws:
            await ws.send('{"n": 1}')
            assert json.loads(await ws.recv()) == {"echo": {"n": 1}}  # before the half-close
            await ws.send("")
            assert await drain(ws) == ([], 1000, "")


async def test_untrusted_upstream_certificate_is_502(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    with upstream_process("--ssl-certfile", str(cert), "--ssl-keyfile", str(key)) as upstream:
        url = upstream.http.replace("http:", "https:")
        async with proxying(UpstreamApp(url)) as proxy, httpx.AsyncClient() as client:
            response = await client.get(proxy.http + "/stream", timeout=30)
    assert response.status_code == 502
    assert response.json() == {
        "error": "upstream unreachable",
        "reason": "TLS handshake failed",
    }


async def test_command_serves_wss(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    argv = [sys.executable, "-m", "wsproxy", "--log-level", "warning", "--ssl-certfile", str(cert)]
    with (
        upstream_process() as upstream,
        spawn_listening([*argv, "--ssl-keyfile", str(key), "--upstream", upstream.http]) as proxy,
    ):
        wss = proxy.ws.replace("ws:", "wss:")
        async with connect(wss + "/stream?count=2", ssl=trusting(cert), open_timeout=30) as ws:
            assert await drain(ws) == (['{"n": 0}', '{"n": 1}'], 1000, "")


async def test_http2_required_but_not_offered_is_the_fixed_tls_502(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate  # uvicorn speaks no HTTP/2: its TLS handshake selects no "h2"
    with upstream_process("--ssl-certfile", str(cert), "--ssl-keyfile", str(key)) as upstream:
        url = upstream.http.replace("http:", "https:")
        app = UpstreamApp(url, ssl_context=trusting(cert), http_version="2")
        async with proxying(app) as proxy, httpx.AsyncClient() as client:
            response = await client.get(proxy.http + "/stream", timeout=30)
    assert (response.status_code, response.json()) == (
        502,
        {"error": "upstream unreachable", "reason": "TLS handshake failed"},
    )
