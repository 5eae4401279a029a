"""The server under test, as its own process: `python -m bench.server MODULE:FACTORY [--loop L] ...`.

FACTORY is called with no arguments and returns an ASGI app, or an async context manager that yields
one (for apps with a lifetime, like the demo's gRPC server). The process listens on a free loopback
port, prints "PORT <n>" on stdout once serving, and runs until SIGINT/SIGTERM on the event loop named
by --loop (uvicorn's Config.loop is ignored when we run the loop ourselves). The parent pins it to a CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import socket
import sys
from collections.abc import AsyncIterator
from typing import Any, cast

import uvicorn
from uvicorn.importer import import_from_string

from bench.harness import run_on
from wsproxy._types import ASGIApp


def raise_fd_limit() -> None:
    """Thousands of open streams need thousands of file descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@contextlib.asynccontextmanager
async def demo_app() -> AsyncIterator[ASGIApp]:
    """The demo as shipped: gateway -> servicer in-process (grpc is only needed for the end-to-end rows)."""
    async with demo_inprocess_app() as app:
        yield app


@contextlib.asynccontextmanager
async def demo_inprocess_app() -> AsyncIterator[ASGIApp]:
    """The demo with the gateway calling the servicer directly (InProcessBinding)."""
    from example_service.app import demo

    async with demo(binding="inprocess") as running:
        yield running.app


@contextlib.asynccontextmanager
async def demo_channel_app() -> AsyncIterator[ASGIApp]:
    """The demo with the gateway calling grpcio over a grpc.aio channel, both in this process."""
    from example_service.app import demo

    async with demo(binding="channel") as running:
        yield running.app


@contextlib.asynccontextmanager
async def _app(factory: str) -> AsyncIterator[ASGIApp]:
    made = import_from_string(factory)()
    if hasattr(made, "__aenter__"):
        async with made as app:
            yield app
    else:
        yield made


async def _serve(factory: str, ws: str, http: str) -> None:
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets only when the listening
    # socket's proto says TCP (as `uvicorn --host --port` does). Without it a small write right after
    # another waits for the client's delayed ACK (40 ms on Linux), e.g. a close frame after a reply.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    async with _app(factory) as app:
        config = uvicorn.Config(
            cast(Any, app), ws=ws, http=cast(Any, http), log_level="warning", lifespan="off", backlog=4096
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                return  # uvicorn could not start; it logged why
            await asyncio.sleep(0.01)
        print(f"PORT {sock.getsockname()[1]}", flush=True)
        await task


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.server")
    parser.add_argument("app", metavar="MODULE:FACTORY", help="e.g. bench.apps:echo_server")
    parser.add_argument("--ws", default="websockets-sansio")
    parser.add_argument("--loop", default="asyncio", choices=["asyncio", "uvloop"])
    parser.add_argument("--http", default="h11", choices=["h11", "httptools"])
    args = parser.parse_args(argv)
    raise_fd_limit()
    with contextlib.suppress(KeyboardInterrupt):
        run_on(args.loop, _serve(args.app, args.ws, args.http))
    return 0


if __name__ == "__main__":
    sys.exit(main())
