"""Real uvicorn servers on free loopback ports, for end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import uvicorn

from wsproxy._types import ASGIApp

# uvicorn's legacy "websockets" implementation is deprecated (it now warns); "auto" picks websockets-sansio.
WS_IMPLEMENTATIONS = ["websockets-sansio", "wsproto"]


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


def bind_loopback() -> socket.socket:
    """A listening-ready socket on a free loopback port (no race between picking and binding)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.set_inheritable(True)
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
