"""Real servers on free loopback ports, for end-to-end tests: uvicorn (each WebSocket implementation)
and hypercorn, in this event loop (`serve_on`) or in a process of their own (`tests/support/server_process.py`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from wsproxy._types import ASGIApp

# uvicorn's WebSocket implementations ("auto" picks websockets-sansio). The legacy "websockets" one is
# deprecated (it warns): parametrize with SERVER_PARAMS or the `ws_impl` fixture, which filter its warnings.
WS_IMPLEMENTATIONS = ["websockets-sansio", "wsproto", "websockets"]

# Every server a liveness behaviour must hold on: uvicorn's three WebSocket implementations and
# hypercorn. Use SERVER_PARAMS (the `server_impl` fixture in conftest.py) to parametrize: it filters
# exactly the deprecation warnings of uvicorn's legacy implementation, for that parameter only.
SERVERS = ["websockets-sansio", "wsproto", "websockets", "hypercorn"]
LEGACY_WARNINGS = (
    "ignore:The `websockets` implementation is deprecated:uvicorn.config.UvicornDeprecationWarning",
    "ignore:websockets.legacy is deprecated:DeprecationWarning",
    "ignore:websockets.server.WebSocketServerProtocol is deprecated:DeprecationWarning",
    "ignore:remove second argument of ws_handler:DeprecationWarning",
)
SERVER_PARAMS = [
    pytest.param(name, marks=[pytest.mark.filterwarnings(w) for w in LEGACY_WARNINGS])
    if name == "websockets"
    else pytest.param(name)
    for name in SERVERS
]


@dataclass(frozen=True)
class Running:
    host: str
    port: int

    @property
    def http(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://{self.host}:{self.port}"


class Ended:
    """Counts the streams a middleware ended: pass it as `on_stream_end` (it runs after the metrics'
    own hook and just before `active_streams` drops), then `await ended.reach(n)`.

    A client can see the close before the server has finished the stream (legacy websockets completes
    the closing handshake inside the app's send), so a test waits here for the server's side of it.
    """

    def __init__(self) -> None:
        self.count = 0
        self._changed = asyncio.Event()

    def __call__(self, record: object) -> None:
        self.count += 1
        self._changed.set()

    async def reach(self, count: int) -> None:
        while self.count < count:
            self._changed.clear()
            await asyncio.wait_for(self._changed.wait(), timeout=30)


def bind_loopback() -> socket.socket:
    """A listening-ready socket on a free loopback port (no race between picking and binding).

    Its `proto` is IPPROTO_TCP, not 0, as the wsproxy command's (wsproxy/cli/_serve.py): asyncio sets
    TCP_NODELAY on accepted connections only then, and without it a small frame written after another
    waits for the client's delayed ACK (about 40 ms on Linux).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.set_inheritable(True)
    return sock


def listening_loopback() -> socket.socket:
    """A listening socket on a free loopback port: clients queue in its backlog until the server accepts."""
    sock = bind_loopback()
    sock.listen(128)
    return sock


def _config(app: ASGIApp, **options: Any) -> uvicorn.Config:
    options.setdefault("log_level", "warning")
    options.setdefault("lifespan", "off")
    return uvicorn.Config(cast(Any, app), **options)


@contextlib.asynccontextmanager
async def serve(app: ASGIApp, **options: Any) -> AsyncIterator[Running]:
    """Run uvicorn in the current event loop; `options` go to uvicorn.Config (e.g. ws="wsproto")."""
    sock = bind_loopback()
    server = uvicorn.Server(_config(app, **options))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        yield Running("127.0.0.1", sock.getsockname()[1])
    finally:
        server.should_exit = True
        server.force_exit = True
        try:
            await asyncio.wait_for(task, timeout=10)
        finally:
            sock.close()


@contextlib.asynccontextmanager
async def serve_on(server: str, app: ASGIApp, **options: Any) -> AsyncIterator[Running]:
    """Run `app` on `server` (one of SERVERS) in the current event loop.

    `options` go to uvicorn.Config, or set the hypercorn Config attributes of the same names.
    """
    if server != "hypercorn":
        async with serve(app, ws=server, **options) as running:
            yield running
        return
    from hypercorn.asyncio import serve as hypercorn_serve

    sock = listening_loopback()
    stop = asyncio.Event()
    task = asyncio.create_task(
        hypercorn_serve(cast(Any, app), hypercorn_config(sock, **options), shutdown_trigger=stop.wait)
    )
    try:
        yield Running("127.0.0.1", sock.getsockname()[1])
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, timeout=10)
        finally:
            sock.close()


def hypercorn_config(sock: socket.socket, **options: Any) -> Any:
    from hypercorn.config import Config

    config = Config()
    # A duplicate: hypercorn wraps the descriptor in a socket of its own and closes it at shutdown.
    config.bind = [f"fd://{os.dup(sock.fileno())}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")  # through the logging config, like uvicorn's
    config.loglevel = "WARNING"
    config.graceful_timeout = 5
    for name, value in options.items():
        setattr(config, name, value)
    return config


@contextlib.contextmanager
def serve_in_thread(app: ASGIApp, **options: Any) -> Iterator[Running]:
    """Run uvicorn in a background thread with its own loop, for synchronous callers."""
    sock = bind_loopback()
    server = uvicorn.Server(_config(app, **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("uvicorn stopped before it started")
            threading.Event().wait(0.01)
        yield Running("127.0.0.1", sock.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


async def drain(ws: Any) -> tuple[list[str | bytes], int | None, str | None]:
    """Every frame until the close, then the close code and reason (a websockets client connection)."""
    from websockets.exceptions import ConnectionClosed

    frames: list[str | bytes] = []
    try:
        while True:
            frames.append(await ws.recv())
    except ConnectionClosed:
        pass
    return frames, ws.close_code, ws.close_reason


async def eventually(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Wait until `condition()` holds, checking every few milliseconds: a wait for an outcome, never a
    guess at how long it takes. Fails with `what` after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"still not {what} after {timeout:.0f}s")
        await asyncio.sleep(0.01)


async def refusal(url: str, **kwargs: Any) -> tuple[int, dict[str, Any] | bytes, str]:
    """The refused handshake's status, body (parsed if it is JSON) and headers as text."""
    with pytest.raises(InvalidStatus) as info:
        async with connect(url, **kwargs):
            pass
    response = info.value.response
    headers = "\n".join(f"{name}: {value}" for name, value in response.headers.raw_items())
    body = bytes(response.body or b"")
    try:
        return response.status_code, json.loads(body), headers
    except ValueError:
        return response.status_code, body, headers
