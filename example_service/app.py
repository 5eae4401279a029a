"""The demo as one ASGI app: page + browser module + gateway (and its OpenAPI document at
/openapi.json), with wsproxy in front.

`demo()` starts the gRPC server and yields the app, so tests can serve the whole demo on a free
port: `async with demo() as running: async with serve(running.app) as srv: ...`. The gateway
calls the servicer in-process by default (`binding="inprocess"`), or through a grpc.aio channel to
the gRPC port (`binding="channel"`); gRPC clients use that port either way.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import grpc
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route, Router
from starlette.types import ASGIApp

from example_service.proto.example.v1 import echo_pb2, echo_pb2_grpc
from example_service.service import EchoServicer, grpc_server
from wsproxy import WebSocketProxyMiddleware
from wsproxy.gateway import Binding, Gateway, InProcessBinding

STATIC_DIR = Path(__file__).resolve().parent / "static"
BROWSER_MODULE_DIR = Path(__file__).resolve().parent.parent / "wsproxy" / "static"
SERVICE = echo_pb2.DESCRIPTOR.services_by_name["EchoService"]
BINDINGS = ("inprocess", "channel")
BindingName = Literal["inprocess", "channel"]


def _file(directory: Path, name: str, media_type: str | None = None) -> Response:
    path = (directory / name).resolve()
    if path.parent != directory.resolve() or not path.is_file():
        return JSONResponse({"code": 5, "message": "Not Found", "details": []}, status_code=404)
    return FileResponse(path, media_type=media_type)


async def _index(request: Request) -> Response:
    return _file(STATIC_DIR, "index.html", "text/html; charset=utf-8")


async def _static(request: Request) -> Response:
    return _file(STATIC_DIR, request.path_params["name"])


async def _browser_module(request: Request) -> Response:
    name = request.url.path.lstrip("/")
    return _file(BROWSER_MODULE_DIR, name, "text/javascript" if name.endswith(".js") else "text/plain")


def build_app(target: grpc.aio.Channel | Binding) -> ASGIApp:
    """The page and its files, everything else to the gateway; WebSocket upgrades go through wsproxy."""
    gateway = Gateway(
        target,
        [SERVICE],
        openapi_path="/openapi.json",
        openapi_info={"title": "wsproxy demo: EchoService", "version": "1.0.0"},
    )
    router = Router(
        routes=[
            Route("/", _index, methods=["GET"]),
            Route("/static/{name:str}", _static, methods=["GET"]),
            Route("/wsproxy.js", _browser_module, methods=["GET"]),
            Route("/wsproxy.d.ts", _browser_module, methods=["GET"]),
        ],
        default=gateway,
    )
    return WebSocketProxyMiddleware(router, access_log=True)  # one line per call, as the `wsproxy` command


@dataclass(frozen=True)
class Demo:
    app: ASGIApp
    servicer: EchoServicer
    grpc_port: int
    binding: BindingName


@contextlib.asynccontextmanager
async def demo(
    *, grpc_host: str = "127.0.0.1", grpc_port: int = 0, binding: BindingName = "inprocess"
) -> AsyncIterator[Demo]:
    """Start EchoService on a loopback port and yield the demo app that calls it (in-process or over gRPC)."""
    if binding not in BINDINGS:
        raise ValueError(f"binding must be one of {', '.join(BINDINGS)}, got {binding!r}")
    servicer = EchoServicer()
    async with grpc_server(servicer, host=grpc_host, port=grpc_port) as (_, port):
        if binding == "inprocess":
            in_process = InProcessBinding()
            echo_pb2_grpc.add_EchoServiceServicer_to_server(servicer, in_process)
            yield Demo(build_app(in_process), servicer, port, binding)
            return
        async with grpc.aio.insecure_channel(f"{grpc_host}:{port}") as channel:
            yield Demo(build_app(channel), servicer, port, binding)
