"""`wsproxy.status.v1` on the wire, with a raw WebSocket client, on every server implementation.

The frames docs/protocol.md shows ("The status before the first line"), byte for byte: a FastAPI 403
and a unary gRPC call with metadata through wsproxy's gateway; the same on a mux call; and a client
that does not offer the subprotocol sees today's frames.
"""

from __future__ import annotations

import json
import struct

import pytest
from websockets.asyncio.client import connect

from example_service.proto.example.v1 import echo_pb2_grpc
from tests.support.echo_servicers import SERVICE, GeneratorStyle
from tests.support.frameworks.fastapi_app import create_app
from tests.support.servers import SERVER_PARAMS, drain, serve_on
from tests.support.upstream_apps import hypercorn_process, proxying, upstream_process
from wsproxy import WebSocketProxyMiddleware
from wsproxy.gateway import Gateway, InProcessBinding
from wsproxy.upstream import UpstreamApp

pytestmark = pytest.mark.filterwarnings("ignore:remove second argument of ws_handler:DeprecationWarning")

STATUS = "wsproxy.status.v1"


@pytest.mark.parametrize("server", SERVER_PARAMS)
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_fastapi_403_comes_as_a_status_frame_before_its_body(server: str, method: str) -> None:
    async with (
        serve_on(server, WebSocketProxyMiddleware(create_app())) as running,
        connect(f"{running.ws}/forbidden?method={method}", subprotocols=[STATUS]) as ws,  # type: ignore[list-item]
    ):
        assert ws.subprotocol == STATUS
        frames, code, reason = await drain(ws)
    assert isinstance(frames[0], bytes)
    assert json.loads(frames[0]) == {
        "type": "status",
        "status": 403,
        "headers": [["content-type", "application/json"]],
    }
    assert frames[1:] == ['{"detail":"bad token"}']
    assert (code, reason) == (4403, "Forbidden")


@pytest.mark.parametrize("server", SERVER_PARAMS)
async def test_without_the_subprotocol_the_same_call_is_lines_and_the_close(server: str) -> None:
    async with (
        serve_on(server, WebSocketProxyMiddleware(create_app())) as running,
        connect(f"{running.ws}/forbidden", subprotocols=["Bearer", "tok"]) as ws,  # type: ignore[list-item]
    ):
        assert ws.subprotocol == "Bearer"
        assert await drain(ws) == (['{"detail":"bad token"}'], 4403, "Forbidden")


def gateway_app() -> WebSocketProxyMiddleware:
    binding = InProcessBinding()
    echo_pb2_grpc.add_EchoServiceServicer_to_server(GeneratorStyle(), binding)
    return WebSocketProxyMiddleware(Gateway(binding, [SERVICE]))


async def test_a_unary_grpc_call_gets_its_metadata_as_headers_and_trailers() -> None:
    async with (
        serve_on("websockets-sansio", gateway_app()) as running,
        connect(
            f"{running.ws}/v1/echo?method=POST",
            subprotocols=["Bearer", "tok", STATUS],  # type: ignore[list-item]
        ) as ws,
    ):
        assert ws.subprotocol == STATUS
        await ws.send('{"message":"headers"}')
        await ws.send("")
        frames, code, _ = await drain(ws)
    status, line, trailers = frames
    assert isinstance(status, bytes)
    head = json.loads(status)
    assert (head["type"], head["status"]) == ("status", 200)
    assert ["content-type", "application/json"] in head["headers"]
    assert ["grpc-metadata-x-initial", "one"] in head["headers"]
    assert json.loads(line) == {"message": "headers"}
    assert isinstance(trailers, bytes)
    assert json.loads(trailers) == {"type": "trailers", "headers": [["grpc-trailer-x-trailer", "t"]]}
    assert code == 1000


def mux(kind: int, call_id: int, payload: bytes = b"") -> bytes:
    return struct.pack("!BI", kind, call_id) + payload


@pytest.mark.parametrize("server", SERVER_PARAMS)
async def test_a_mux_call_gets_status_then_lines_then_end(server: str) -> None:
    async with (
        serve_on(server, WebSocketProxyMiddleware(create_app())) as running,
        connect(running.ws, subprotocols=["wsproxy.mux.v1"]) as ws,  # type: ignore[list-item]
    ):
        await ws.send(mux(0x01, 1, b'{"path":"/forbidden","status":true}'))
        await ws.send(mux(0x01, 2, b'{"path":"/forbidden"}'))
        frames: dict[int, list[tuple[int, bytes]]] = {1: [], 2: []}
        ended = 0
        while ended < 2:
            data = await ws.recv()
            assert isinstance(data, bytes)
            kind, call_id = struct.unpack_from("!BI", data)
            frames[call_id].append((kind, data[5:]))
            ended += kind == 0x13
    end_4403 = (0x13, struct.pack("!H", 4403) + b"Forbidden")
    status, *rest = frames[1]
    assert status[0] == 0x14
    assert json.loads(status[1]) == {
        "type": "status",
        "status": 403,
        "headers": [["content-type", "application/json"]],
    }
    assert rest == [(0x11, b'{"detail":"bad token"}'), end_4403]
    assert frames[2] == [(0x11, b'{"detail":"bad token"}'), end_4403]


@pytest.mark.parametrize("http2", [False, True])
async def test_behind_upstream_the_status_and_headers_are_the_upstream_servers(http2: bool) -> None:
    # The upstream (uvicorn, or hypercorn speaking h2c) answers 403 with its own headers; TE is
    # hop-by-hop, so it is never asked for trailers and sends none.
    serving = hypercorn_process() if http2 else upstream_process()
    with serving as upstream:
        app = WebSocketProxyMiddleware(UpstreamApp(upstream.http, http_version="2" if http2 else "1.1"))
        async with (
            proxying(app) as running,
            connect(f"{running.ws}/status/403", subprotocols=[STATUS]) as ws,  # type: ignore[list-item]
        ):
            assert ws.subprotocol == STATUS
            frames, code, reason = await drain(ws)
    status, *lines = frames
    assert isinstance(status, bytes)
    head = json.loads(status)
    assert (head["type"], head["status"]) == ("status", 403)
    assert ["content-type", "application/json"] in head["headers"]
    names = [name for name, _ in head["headers"]]
    assert "content-length" not in names
    assert "transfer-encoding" not in names
    assert [json.loads(line) for line in lines] == [{"error": "status 403", "code": 403}]
    assert (code, reason) == (4403, "Forbidden")
