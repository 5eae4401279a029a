"""UpstreamApp over HTTP/2 to hypercorn: h2c with prior knowledge and TLS with ALPN h2.

Backpressure is proven against Go's HTTP/2 server (test_upstream_go.py): hypercorn 0.18 lets an
app's sends run on while the client's stream window is closed (its StreamBuffer is released by a
zero-length pop), so it buffers the body itself and cannot show the proxy holding it back.

The demo gateway (example_service, over its grpcio servicer) runs under hypercorn in this process;
tests/support/upstream_apps.py's NDJSON app runs under hypercorn in another process for the failure cases.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
import httpx
import pytest
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config
from websockets.asyncio.client import connect

from example_service.app import Demo, demo
from tests.support.servers import Running, bind_loopback, drain
from tests.support.upstream_apps import (
    Process,
    h2_goaway_upstream,
    hypercorn_process,
    make_certificate,
    proxying,
    spawn_listening,
)
from wsproxy import WebSocketProxyMiddleware
from wsproxy.upstream import UpstreamApp


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@contextlib.asynccontextmanager
async def hypercorn_here(app: Any, *, certificate: tuple[Path, Path] | None = None) -> AsyncIterator[Running]:
    """`app` served by hypercorn in this event loop on a free loopback port."""
    sock = bind_loopback()
    sock.listen(128)
    config = Config()
    config.bind = [f"fd://{os.dup(sock.fileno())}"]  # hypercorn closes the socket it is given
    config.loglevel = "WARNING"
    config.h2_max_concurrent_streams = 100
    if certificate is not None:
        config.certfile, config.keyfile = str(certificate[0]), str(certificate[1])
    stop = asyncio.Event()
    task = asyncio.create_task(hypercorn_serve(app, config, shutdown_trigger=stop.wait))
    try:
        yield Running("127.0.0.1", sock.getsockname()[1])
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        sock.close()


@pytest.fixture(params=["h2c", "tls"])
async def demo_upstream(
    request: pytest.FixtureRequest, certificate: tuple[Path, Path]
) -> AsyncIterator[tuple[Demo, UpstreamApp]]:
    """The demo gateway under hypercorn, and an UpstreamApp that speaks HTTP/2 to it."""
    tls = request.param == "tls"
    async with (
        demo() as running_demo,
        hypercorn_here(running_demo.app, certificate=certificate if tls else None) as hc,
    ):
        if tls:  # the default http_version "auto" negotiates h2 by ALPN
            upstream = UpstreamApp(
                hc.http.replace("http:", "https:"),
                ssl_context=ssl.create_default_context(cafile=str(certificate[0])),
            )
        else:
            upstream = UpstreamApp(hc.http, http_version="2")
        yield running_demo, upstream


async def test_every_demo_rpc_over_http2(demo_upstream: tuple[Demo, UpstreamApp], ws_impl: str) -> None:
    _, upstream = demo_upstream
    async with proxying(WebSocketProxyMiddleware(upstream), ws=ws_impl) as proxy:
        async with connect(proxy.ws + "/v1/echo?method=POST") as ws:
            await ws.send('{"message": "hi"}')
            await ws.send("")
            frames, code, _ = await drain(ws)
            assert ([json.loads(frame) for frame in frames], code) == ([{"message": "hi"}], 1000)
        async with connect(proxy.ws + "/v1/ticker?count=3&interval_ms=1") as ws:  # no half-close
            frames, code, _ = await drain(ws)
            assert ([json.loads(frame)["result"]["seq"] for frame in frames], code) == ([0, 1, 2], 1000)
        async with connect(proxy.ws + "/v1/sum?method=POST") as ws:
            for value in (1, 2, 39):
                await ws.send(json.dumps({"value": value}))
            await ws.send("")
            frames, code, _ = await drain(ws)
            assert ([json.loads(frame) for frame in frames], code) == ([{"total": "42", "count": 3}], 1000)
        async with connect(proxy.ws + "/v1/chat?method=POST") as ws:
            for seq, text in enumerate(["one", "two", "three"]):
                await ws.send(json.dumps({"text": text}))
                reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
                assert reply == {"result": {"text": text, "seq": seq}}  # before the half-close
            await ws.send("")
            assert await drain(ws) == ([], 1000, "")
        async with connect(proxy.ws + "/v1/whoami", subprotocols=["Bearer", "tok"]) as ws:  # type: ignore[list-item]
            frames, code, _ = await drain(ws)
            assert ([json.loads(frame) for frame in frames], code) == (
                [{"authorization": "Bearer tok"}],
                1000,
            )
        # Five calls in a row, one connection.
        assert upstream.pool.http2_connections == 1
        assert upstream.pool.connections_opened == 1


async def test_concurrent_streams_share_one_connection(demo_upstream: tuple[Demo, UpstreamApp]) -> None:
    _, upstream = demo_upstream

    async def chat(ws_url: str, name: str) -> None:
        async with connect(ws_url) as ws:
            for seq in range(3):
                await ws.send(json.dumps({"text": f"{name}{seq}"}))
                assert json.loads(await ws.recv())["result"]["text"] == f"{name}{seq}"
            await ws.send("")
            assert (await drain(ws))[1] == 1000

    async with proxying(WebSocketProxyMiddleware(upstream)) as proxy:
        await asyncio.gather(*(chat(proxy.ws + "/v1/chat?method=POST", f"c{n}-") for n in range(30)))
        assert upstream.pool.connections_opened == 1


async def test_streams_beyond_the_server_limit_open_a_second_connection(
    demo_upstream: tuple[Demo, UpstreamApp],
) -> None:
    _, upstream = demo_upstream
    async with proxying(WebSocketProxyMiddleware(upstream)) as proxy:
        # hypercorn here allows 100 concurrent streams per connection.
        sockets = [await connect(proxy.ws + "/v1/ticker?count=1000&interval_ms=1000") for _ in range(101)]
        try:
            for ws in sockets:
                assert json.loads(await asyncio.wait_for(ws.recv(), 20))["result"]["seq"] == 0
            assert upstream.pool.http2_connections == 2
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets))


async def test_client_leaving_resets_the_stream_and_cancels_the_rpc(
    demo_upstream: tuple[Demo, UpstreamApp],
) -> None:
    running_demo, upstream = demo_upstream
    async with proxying(WebSocketProxyMiddleware(upstream)) as proxy:
        async with connect(proxy.ws + "/v1/ticker?count=1000&interval_ms=20") as ws:
            assert json.loads(await ws.recv())["result"]["seq"] == 0
        # RST_STREAM reached hypercorn, which disconnected the gateway's request: the gRPC call ends.
        assert await asyncio.wait_for(running_demo.servicer.cancelled.get(), timeout=10) == "Ticker"
        assert upstream.pool.http2_connections == 1  # the connection itself stays


# Against tests/support/upstream_apps.py under hypercorn in its own process, over h2c.


@pytest.fixture
def h2c_upstream() -> AsyncIterator[Process] | Any:
    with hypercorn_process() as process:
        httpx.get(process.http + "/active", timeout=30).raise_for_status()
        yield process


async def test_http2_upstream_killed_mid_stream_closes_1014(h2c_upstream: Process, ws_impl: str) -> None:
    app = WebSocketProxyMiddleware(UpstreamApp(h2c_upstream.http, http_version="2"))
    async with proxying(app, ws=ws_impl) as proxy, connect(proxy.ws + "/forever") as ws:
        assert json.loads(await ws.recv()) == {"n": 0}
        h2c_upstream.kill()
        assert await drain(ws) == ([], 1014, "bad gateway")


async def test_http2_silent_upstream_is_504_and_refused_is_502(
    h2c_upstream: Process, refused_url: str
) -> None:
    async with httpx.AsyncClient() as client:
        async with proxying(UpstreamApp(h2c_upstream.http, http_version="2", read_timeout=0.2)) as proxy:
            response = await client.get(proxy.http + "/hang")
            assert (response.status_code, response.json()) == (
                504,
                {"error": "upstream timeout", "reason": "no response in time"},
            )
        async with proxying(UpstreamApp(refused_url, http_version="2")) as proxy:
            response = await client.get(proxy.http + "/x")
            assert (response.status_code, response.json()) == (
                502,
                {"error": "upstream unreachable", "reason": "connection refused"},
            )


async def test_plain_http_through_http2_keeps_status_headers_and_body(h2c_upstream: Process) -> None:
    async with (
        proxying(UpstreamApp(h2c_upstream.http, http_version="2")) as proxy,
        httpx.AsyncClient() as client,
    ):
        response = await client.post(
            proxy.http + "/inspect?a=1", content=b'{"x": 1}\n', headers={"x-custom": "kept"}
        )
        teapot = await client.get(proxy.http + "/status/418")
    seen = response.json()
    assert (response.status_code, seen["method"], seen["query"], seen["body"]) == (
        200,
        "POST",
        "a=1",
        '{"x": 1}\n',
    )
    assert dict(seen["headers"])["x-custom"] == "kept"
    assert seen["http_version"] == "2"
    assert teapot.status_code == 418


async def test_the_command_speaks_h2c_with_upstream_http_version_2(h2c_upstream: Process) -> None:
    argv = [sys.executable, "-m", "wsproxy", "--log-level", "warning", "--upstream", h2c_upstream.http]
    with spawn_listening([*argv, "--upstream-http-version", "2"]) as proxy:
        async with connect(proxy.ws + "/inspect", open_timeout=30) as ws:
            frames, code, _ = await drain(ws)
    assert (json.loads(frames[0])["http_version"], code) == ("2", 1000)


async def test_h2c_to_a_server_without_http2_is_the_fixed_502(upstream: Process) -> None:
    # uvicorn speaks HTTP/1.1 only: it answers the HTTP/2 preface with an HTTP/1.1 error.
    async with (
        proxying(UpstreamApp(upstream.http, http_version="2")) as proxy,
        httpx.AsyncClient() as client,
    ):
        response = await client.get(proxy.http + "/stream", timeout=30)
    assert response.status_code == 502
    assert response.json()["error"] == "bad upstream response"


async def test_streams_over_max_connections_wait_then_get_503(
    demo_upstream: tuple[Demo, UpstreamApp],
) -> None:
    _, template = demo_upstream
    # The same upstream, capped at one HTTP/2 connection (hypercorn here: 100 streams on it).
    upstream = UpstreamApp(
        template.base_url,
        http_version=template.http_version,
        ssl_context=template._ssl_context,
        max_connections=1,
        connect_timeout=0.5,
    )
    async with proxying(WebSocketProxyMiddleware(upstream)) as proxy, httpx.AsyncClient() as client:
        sockets = [await connect(proxy.ws + "/v1/ticker?count=1000&interval_ms=1000") for _ in range(100)]
        try:
            for ws in sockets:
                assert json.loads(await asyncio.wait_for(ws.recv(), 20))["result"]["seq"] == 0
            response = await client.get(proxy.http + "/v1/whoami")
            assert (response.status_code, response.json()) == (
                503,
                {"error": "upstream busy", "reason": "all upstream connections are in use"},
            )
            await sockets.pop().close()  # a stream frees up: the next call gets it
            response = await client.get(proxy.http + "/v1/whoami")
            assert response.status_code == 200
            assert upstream.pool.connections_opened == 1
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets))


async def test_after_goaway_the_next_call_opens_a_new_connection() -> None:
    async with (
        h2_goaway_upstream() as (url, accepted),
        proxying(UpstreamApp(url, http_version="2")) as proxy,
        httpx.AsyncClient() as client,
    ):
        for n in (1, 2, 3):
            response = await client.get(proxy.http + "/x")
            assert (response.status_code, response.json()) == (200, {"connection": n})
        assert len(accepted) == 3


async def test_an_idle_http2_connection_is_closed_after_keepalive_expiry(h2c_upstream: Process) -> None:
    upstream = UpstreamApp(h2c_upstream.http, http_version="2", keepalive_expiry=0.2)
    async with proxying(upstream) as proxy, httpx.AsyncClient() as client:
        assert (await client.get(proxy.http + "/stream?count=1")).status_code == 200
        assert (await client.get(proxy.http + "/stream?count=1")).status_code == 200
        assert upstream.pool.connections_opened == 1  # reused while fresh
        await asyncio.sleep(0.5)
        assert (await client.get(proxy.http + "/stream?count=1")).status_code == 200
        assert upstream.pool.connections_opened == 2
        assert upstream.pool.http2_connections == 1  # the expired one was closed


async def test_a_stream_may_hold_1_mib_and_take_1_mib_frames() -> None:
    # docs/upstream.md: a stream's window is 1 MiB, and DATA frames up to 1 MiB are taken, so a
    # message up to that size crosses in one frame without waiting for a WINDOW_UPDATE.
    settings: dict[int, int] = {}
    window_at_response: list[int] = []
    handlers: list[asyncio.Task[None]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            conn = h2.connection.H2Connection(
                h2.config.H2Configuration(client_side=False, header_encoding=None)
            )
            conn.initiate_connection()
            writer.write(conn.data_to_send())
            while data := await reader.read(65536):
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RemoteSettingsChanged):
                        settings.update(
                            {code: change.new_value for code, change in event.changed_settings.items()}
                        )
                    elif isinstance(event, h2.events.RequestReceived):
                        window_at_response.append(conn.local_flow_control_window(event.stream_id))
                        conn.send_headers(event.stream_id, [(b":status", b"200")], end_stream=True)
                writer.write(conn.data_to_send())
                await writer.drain()
        except ConnectionError:
            pass  # the client aborted the connection (its aclose)
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    app = UpstreamApp(f"http://127.0.0.1:{port}", http_version="2")
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
            response = await client.get("http://front/x")
        assert response.status_code == 200
    finally:
        await app.aclose()  # the server's read sees EOF: its handler closes the connection
        server.close()
        await asyncio.wait_for(asyncio.gather(*handlers, return_exceptions=True), 10)
    assert settings[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE] == 1024 * 1024
    assert settings[h2.settings.SettingCodes.MAX_FRAME_SIZE] == 1024 * 1024
    assert window_at_response == [1024 * 1024]  # what the server may send before any WINDOW_UPDATE
