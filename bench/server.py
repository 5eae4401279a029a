"""The server under test, as its own process: `python -m bench.server {echo,demo,demo-*} [--ws IMPL]`.

It listens on a free loopback port, prints "PORT <n>" on stdout once serving, and runs until
SIGINT/SIGTERM. The parent pins it to a CPU of its own.
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

from bench.apps import echo_server
from wsproxy._types import ASGIApp


def raise_fd_limit() -> None:
    """Thousands of open streams need thousands of file descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@contextlib.asynccontextmanager
async def _app(kind: str) -> AsyncIterator[ASGIApp]:
    if kind == "echo":
        yield echo_server()
        return
    from example_service.app import demo  # grpc is only needed for the end-to-end figures

    # "demo" is the demo as shipped (in-process binding); "demo-<binding>" picks one.
    async with demo(binding="channel" if kind == "demo-channel" else "inprocess") as running:
        yield running.app


async def _serve(kind: str, ws: str) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    async with _app(kind) as app:
        config = uvicorn.Config(cast(Any, app), ws=ws, log_level="warning", lifespan="off", backlog=4096)
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
    parser.add_argument("kind", choices=["echo", "demo", "demo-inprocess", "demo-channel"])
    parser.add_argument("--ws", default="websockets-sansio")
    args = parser.parse_args(argv)
    raise_fd_limit()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.kind, args.ws))
    return 0


if __name__ == "__main__":
    sys.exit(main())
