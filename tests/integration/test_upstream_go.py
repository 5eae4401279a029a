"""UpstreamApp in front of Go's net/http: the NDJSON echo (HTTP/1.1 and HTTP/2 over TLS), and a real
grpc-gateway over the demo's grpcio servicer. The Go programs are built here (tests/support/upstream_go.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.client import ClientProtocol
from websockets.uri import parse_uri

from example_service.service import grpc_server
from tests.support.nginx import NGINX, free_port, wait_listening
from tests.support.servers import drain
from tests.support.upstream_apps import Process, make_certificate, open_requests, proxying
from tests.support.upstream_go import (
    build_echo,
    build_gateway,
    go_process,
    missing_for_echo,
    missing_for_gateway,
)
from wsproxy import WebSocketProxyMiddleware
from wsproxy.upstream import UpstreamApp

needs_go = pytest.mark.skipif(missing_for_echo() is not None, reason=str(missing_for_echo()))
needs_gateway = pytest.mark.skipif(missing_for_gateway() is not None, reason=str(missing_for_gateway()))


@pytest.fixture(scope="module")
def echo_binary() -> Path:
    return build_echo()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def go_echo(echo_binary: Path) -> Iterator[Process]:
    """The Go echo serving HTTP/1.1."""
    with go_process(echo_binary) as process:
        yield process


@pytest.fixture(scope="module")
def go_echo_tls(echo_binary: Path, certificate: tuple[Path, Path]) -> Iterator[Process]:
    """The Go echo over TLS, where Go's server speaks HTTP/2 (ALPN h2) by default."""
    cert, key = certificate
    with go_process(echo_binary, "-cert", str(cert), "-key", str(key)) as process:
        yield process


def https(process: Process) -> str:
    return process.http.replace("http:", "https:")


def trusting(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


async def interactive_bidi(ws_url: str, rounds: int = 3) -> None:
    """Each reply arrives while the request body is still open; the half-close ends the call."""
    async with connect(ws_url) as ws:
        for n in range(rounds):
            await ws.send(json.dumps({"n": n}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"echo": {"n": n}}
        await ws.send("")
        assert await drain(ws) == ([], 1000, "")


# Go's HTTP/1.1 server.


@needs_go
async def test_bidi_is_interactive_against_go_http1(go_echo: Process, ws_impl: str) -> None:
    # Without `Connection: close` Go drains the open body before its response head (issue 15527).
    app = WebSocketProxyMiddleware(UpstreamApp(go_echo.http))
    async with proxying(app, ws=ws_impl) as proxy:
        await interactive_bidi(proxy.ws + "/echo?method=POST")


@needs_go
async def test_get_streams_from_go_need_no_half_close(go_echo: Process, ws_impl: str) -> None:
    app = WebSocketProxyMiddleware(UpstreamApp(go_echo.http))
    async with proxying(app, ws=ws_impl) as proxy:
        async with connect(proxy.ws + "/stream?count=3") as ws:
            assert await drain(ws) == (['{"n":0}', '{"n":1}', '{"n":2}'], 1000, "")
        async with connect(proxy.ws + "/forever") as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"n": 0}
            assert await open_requests(go_echo, 1) == 1
        assert await open_requests(go_echo, 0) == 0  # the client left: Go's handler saw it


@needs_go
async def test_complete_requests_to_go_reuse_one_connection(go_echo: Process) -> None:
    app = UpstreamApp(go_echo.http, http_version="1.1")
    async with proxying(app) as proxy, httpx.AsyncClient() as client:
        for n in range(3):
            response = await client.post(proxy.http + "/echo", content=json.dumps({"n": n}).encode())
            assert response.json() == {"echo": {"n": n}}
            assert (await client.get(proxy.http + "/stream?count=1")).text == '{"n":0}\n'
    assert app.pool.connections_opened == 1


# Go's HTTP/2 server (TLS, ALPN).


@needs_go
async def test_bidi_is_interactive_against_go_http2(
    go_echo_tls: Process, certificate: tuple[Path, Path], ws_impl: str
) -> None:
    upstream = UpstreamApp(https(go_echo_tls), ssl_context=trusting(certificate[0]))
    async with proxying(WebSocketProxyMiddleware(upstream), ws=ws_impl) as proxy:
        await interactive_bidi(proxy.ws + "/echo?method=POST")
        assert upstream.pool.http2_connections == 1


@needs_go
async def test_plain_http_calls_to_go_share_its_http2_connection(
    go_echo_tls: Process, certificate: tuple[Path, Path]
) -> None:
    upstream = UpstreamApp(https(go_echo_tls), ssl_context=trusting(certificate[0]))
    async with proxying(upstream) as proxy, httpx.AsyncClient() as client:
        for n in range(3):  # unary: a complete body (Content-Length), one reply
            response = await client.post(proxy.http + "/echo", content=json.dumps({"n": n}).encode())
            assert response.json() == {"echo": {"n": n}}
        assert (await client.get(proxy.http + "/stream?count=2")).text == '{"n":0}\n{"n":1}\n'
        assert upstream.pool.connections_opened == 1
        assert upstream.pool.http2_connections == 1


@needs_go
async def test_many_streams_share_one_http2_connection_to_go(
    go_echo_tls: Process, certificate: tuple[Path, Path]
) -> None:
    upstream = UpstreamApp(https(go_echo_tls), ssl_context=trusting(certificate[0]))
    async with proxying(WebSocketProxyMiddleware(upstream)) as proxy:
        await asyncio.gather(*(interactive_bidi(proxy.ws + "/echo?method=POST", 2) for _ in range(20)))
        # Go's default limit is 250 concurrent streams per connection.
        assert upstream.pool.connections_opened == 1


@needs_go
async def test_client_leaving_resets_the_http2_stream(
    go_echo_tls: Process, certificate: tuple[Path, Path]
) -> None:
    upstream = UpstreamApp(https(go_echo_tls), ssl_context=trusting(certificate[0]))
    async with proxying(WebSocketProxyMiddleware(upstream)) as proxy:
        async with connect(proxy.ws + "/forever") as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"n": 0}
            assert await _open_over_tls(go_echo_tls, certificate[0], 1) == 1
        # RST_STREAM CANCEL ends the Go handler's context; the shared connection stays up.
        assert await _open_over_tls(go_echo_tls, certificate[0], 0) == 0
        assert upstream.pool.http2_connections == 1


@needs_go
async def test_go_http2_upstream_killed_mid_stream_closes_1014(
    echo_binary: Path, certificate: tuple[Path, Path], ws_impl: str
) -> None:
    cert, key = certificate
    with go_process(echo_binary, "-cert", str(cert), "-key", str(key)) as go:
        upstream = UpstreamApp(https(go), ssl_context=trusting(cert))
        async with (
            proxying(WebSocketProxyMiddleware(upstream), ws=ws_impl) as proxy,
            connect(proxy.ws + "/forever") as ws,
        ):
            assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"n": 0}
            go.kill()
            assert await drain(ws) == ([], 1014, "bad gateway")


@needs_go
async def test_http_version_1_1_keeps_https_on_http1(
    go_echo_tls: Process, certificate: tuple[Path, Path]
) -> None:
    upstream = UpstreamApp(https(go_echo_tls), ssl_context=trusting(certificate[0]), http_version="1.1")
    async with proxying(WebSocketProxyMiddleware(upstream)) as proxy:
        await interactive_bidi(proxy.ws + "/echo?method=POST")
        assert upstream.pool.http2_connections == 0
    assert upstream.pool.connections_opened == 1


@needs_go
@pytest.mark.parametrize("http_version", ["2", "1.1"])
async def test_a_client_that_stops_reading_holds_go_back(
    go_echo_tls: Process, certificate: tuple[Path, Path], http_version: str
) -> None:
    count = 100_000  # about 100 MB if nothing held it back
    upstream = UpstreamApp(
        https(go_echo_tls),
        ssl_context=trusting(certificate[0]),
        http_version=http_version,  # type: ignore[arg-type]
    )
    async with (
        proxying(WebSocketProxyMiddleware(upstream)) as proxy,
        httpx.AsyncClient(base_url=https(go_echo_tls), verify=trusting(certificate[0])) as client,
    ):
        # A raw client (websockets' sans-I/O protocol on asyncio streams) that truly stops reading.
        protocol = ClientProtocol(parse_uri(proxy.ws + f"/firehose?count={count}"), max_size=None)
        _reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
        protocol.send_request(protocol.connect())
        writer.write(b"".join(protocol.data_to_send()))
        try:
            # Buffers fill, then the stream's window stays closed: Go's handler stops advancing.
            held, previous = -1, -2
            for _ in range(30):
                await asyncio.sleep(0.5)
                held, previous = (await client.get("/firehose-sent")).json()["sent"], held
                if held == previous:
                    break
            assert 0 < held == previous
            assert held < count // 4
            if http_version == "2":
                # The stalled stream holds only its own window: another stream on the connection flows.
                async with connect(proxy.ws + "/stream?count=2") as other:
                    assert await drain(other) == (['{"n":0}', '{"n":1}'], 1000, "")
                assert upstream.pool.connections_opened == 1
        finally:
            writer.transport.abort()


async def _open_over_tls(go: Process, cert: Path, expected: int) -> int:
    async with httpx.AsyncClient(base_url=https(go), verify=trusting(cert)) as client:
        for _ in range(200):
            count = int((await client.get("/active")).json()["open"])
            if count == expected:
                break
            await asyncio.sleep(0.05)
    return count


# A real grpc-gateway (Go, Debian's grpc-gateway v1) over the demo's grpcio servicer.


@pytest.fixture(scope="module")
def gateway_binary() -> Path:
    return build_gateway()


@pytest.fixture
async def go_gateway(gateway_binary: Path) -> AsyncIterator[Process]:
    async with grpc_server() as (_, grpc_port):
        with go_process(gateway_binary, "-grpc", f"127.0.0.1:{grpc_port}") as gateway:
            yield gateway


@needs_gateway
async def test_every_demo_rpc_through_a_go_grpc_gateway(go_gateway: Process, ws_impl: str) -> None:
    app = WebSocketProxyMiddleware(UpstreamApp(go_gateway.http))
    async with proxying(app, ws=ws_impl) as proxy:
        # Unary: grpc-gateway reads the whole body first (IOReaderFactory), so the body must end:
        # methodType=Unary ends it after the first message.
        async with connect(proxy.ws + "/v1/echo?method=POST&methodType=Unary") as ws:
            await ws.send('{"message": "hi"}')
            frames, code, _ = await drain(ws)
            assert (json.loads(frames[0]), code) == ({"message": "hi"}, 1000)
        # Server streaming over GET: no half-close, no message sent.
        async with connect(proxy.ws + "/v1/ticker?count=3&interval_ms=1") as ws:
            frames, code, _ = await drain(ws)
            # grpc-gateway v1 leaves out zero values (seq 0).
            assert [json.loads(frame)["result"].get("seq", 0) for frame in frames] == [0, 1, 2]
            assert code == 1000
        # Client streaming.
        async with connect(proxy.ws + "/v1/sum?method=POST") as ws:
            for value in (1, 2, 39):
                await ws.send(json.dumps({"value": value}))
            await ws.send("")
            frames, code, _ = await drain(ws)
            assert (json.loads(frames[0]), code) == ({"total": "42", "count": 3}, 1000)
        # Bidi. grpc-gateway 1.6.4 reads the whole body before it starts the call
        # (utilities.IOReaderFactory), so its replies come after the half-close, whatever the proxy.
        async with connect(proxy.ws + "/v1/chat?method=POST") as ws:
            for n in range(3):
                await ws.send(json.dumps({"text": f"m{n}"}))
            await ws.send("")
            frames, code, _ = await drain(ws)
            assert [json.loads(frame)["result"]["text"] for frame in frames] == ["m0", "m1", "m2"]
            assert code == 1000
        # Unary GET with the Bearer token from the subprotocol.
        async with connect(proxy.ws + "/v1/whoami", subprotocols=["Bearer", "tok"]) as ws:  # type: ignore[list-item]
            frames, code, _ = await drain(ws)
            assert (json.loads(frames[0]), code) == ({"authorization": "Bearer tok"}, 1000)


@needs_gateway
async def test_a_long_ticker_from_the_go_gateway_streams_before_it_ends(go_gateway: Process) -> None:
    app = WebSocketProxyMiddleware(UpstreamApp(go_gateway.http))
    async with proxying(app) as proxy, connect(proxy.ws + "/v1/ticker?count=1000&interval_ms=50") as ws:
        first = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert first["result"].get("seq", 0) == 0  # 50 s of ticks to go: the stream is live


# nginx in between: wsproxy -> nginx (proxy_pass, unbuffered both ways) -> Go's HTTP/1.1 server.

NGINX_BETWEEN = """\
{user}
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{go_port};
            proxy_http_version 1.1;
            proxy_buffering off;
            proxy_request_buffering off;
        }}
    }}
}}
"""


@pytest.fixture
def nginx_before_go(go_echo: Process, tmp_path: Path) -> Iterator[str]:
    if NGINX is None:
        pytest.skip("nginx is not installed (scripts/ensure-nginx installs it)")
    port = free_port()
    user = "user root root;" if os.geteuid() == 0 else ""
    config = tmp_path / "nginx.conf"
    config.write_text(NGINX_BETWEEN.format(user=user, tmp=tmp_path, port=port, go_port=go_echo.port))
    argv = [
        NGINX,
        "-p",
        str(tmp_path),
        "-e",
        str(tmp_path / "error.log"),
        "-c",
        str(config),
        "-g",
        "daemon off;",
    ]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    try:
        wait_listening(port, proc, tmp_path / "error.log")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@needs_go
async def test_bidi_is_interactive_through_nginx_to_go(nginx_before_go: str) -> None:
    # nginx asks Go to close after each request by default (Connection: close): Go skips its drain.
    async with proxying(WebSocketProxyMiddleware(UpstreamApp(nginx_before_go))) as proxy:
        await interactive_bidi(proxy.ws + "/echo?method=POST")
        async with connect(proxy.ws + "/stream?count=2") as ws:
            assert await drain(ws) == (['{"n":0}', '{"n":1}'], 1000, "")


@needs_go
async def test_untrusted_go_http2_certificate_is_the_fixed_tls_502(go_echo_tls: Process) -> None:
    async with proxying(UpstreamApp(https(go_echo_tls))) as proxy, httpx.AsyncClient() as client:
        response = await client.get(proxy.http + "/stream", timeout=30)
    assert (response.status_code, response.json()) == (
        502,
        {"error": "upstream unreachable", "reason": "TLS handshake failed"},
    )
