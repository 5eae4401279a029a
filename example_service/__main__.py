"""`python -m example_service [--host H] [--port P] [--grpc-port G] [--binding inprocess|channel]`: the whole demo."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import socket
import sys
from collections.abc import Coroutine
from typing import Any

import uvicorn

from example_service.app import BINDINGS, BindingName, demo


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m example_service",
        description="EchoService over gRPC, HTTP/JSON and WebSocket, with a page that calls it.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default: %(default)s)")
    parser.add_argument(
        "--grpc-port", type=int, default=0, help="gRPC port for gRPC clients (default: a free one, printed)"
    )
    parser.add_argument(
        "--binding",
        choices=BINDINGS,
        default="inprocess",
        help="how the gateway reaches the servicer: a direct call in this process, or a gRPC channel to "
        "the gRPC port (default: %(default)s)",
    )
    parser.add_argument(
        "--loop",
        default="auto",
        choices=["auto", "asyncio", "uvloop"],
        help="event loop; auto is uvloop where installed, else asyncio (default: %(default)s)",
    )
    return parser.parse_args(argv)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)  # before the URL is printed: a client that follows it at once must not be refused
    except OSError:
        sock.close()
        raise
    return sock


async def _run(host: str, port: int, grpc_port: int, binding: BindingName) -> None:
    sock = _listen(host, port)
    async with demo(grpc_port=grpc_port, binding=binding) as running:
        config = uvicorn.Config(running.app, log_level="warning", lifespan="off")
        server = uvicorn.Server(config)
        shown = f"[{host}]" if ":" in host else host
        print(f"wsproxy demo: open http://{shown}:{sock.getsockname()[1]}/", flush=True)
        print(f"wsproxy demo: event loop {_loop_name()}, stop with Ctrl-C", flush=True)
        print(f"wsproxy demo: gRPC on 127.0.0.1:{running.grpc_port}, gateway binding: {binding}", flush=True)
        await server.serve(sockets=[sock])


def _print_access_lines() -> None:
    """Each call's access line on stdout, so a person watching the demo sees how each call ended."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access = logging.getLogger("wsproxy.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False


def _loop_name() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]  # "uvloop" or "asyncio"


def _run_on(loop: str, main: Coroutine[Any, Any, None]) -> None:
    """Run `main` on the event loop uvicorn would pick for `--loop` (auto: uvloop where installed)."""
    factory = uvicorn.Config(app="", loop=loop).get_loop_factory()
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(main)
    else:  # Python 3.10 has no asyncio.Runner: the default loop
        asyncio.run(main)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    _print_access_lines()
    try:
        _run_on(args.loop, _run(args.host, args.port, args.grpc_port, args.binding))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(f"wsproxy demo: port {args.port} on {args.host} is taken; try --port", file=sys.stderr)
        else:
            print(f"wsproxy demo: cannot listen: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
