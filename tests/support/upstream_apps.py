"""A small NDJSON gateway stand-in, run by uvicorn in a separate process as the remote upstream.

    python -m uvicorn tests.support.upstream_apps:app --fd N

Routes (one JSON object per line both ways):
    POST /echo              unary: the first request line back as {"echo": line}
    GET  /stream?count=N    server stream: {"n": 0} ... {"n": N-1}, without reading the request body
                            (so a client must not half-close: the call may already have ended)
    GET  /forever           one {"n": 0} line, then the response never ends
    POST /sum               client stream: {"sum": total of every line's "n"} once the body ends
    POST /bidi              each request line echoed back at once, {"echo": line}
    GET  /status/CODE       answers CODE with {"error": "...", "code": CODE}
    *    /inspect           the request as seen here: method, HTTP version, path, query, headers, client, body
    GET  /hang              never answers
    GET  /active            {"open": N}: requests whose handler is still running
    GET  /firehose?count=N&size=B  N lines of about B bytes (1000) as fast as the client takes them
    GET  /firehose-sent     {"sent": N}: lines the last /firehose has written so far
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx

from tests.support.servers import Running, bind_loopback, serve
from wsproxy import WebSocketProxyMiddleware
from wsproxy._types import Receive, Scope, Send
from wsproxy.upstream import UpstreamApp

_open_requests = 0
_firehose_sent = 0


async def _start(send: Send, status: int = 200, content_type: bytes = b"application/x-ndjson") -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type)]}
    )


async def _line(send: Send, obj: Any, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": json.dumps(obj).encode() + b"\n", "more_body": more})


async def _end(send: Send) -> None:
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _body_lines(receive: Receive) -> AsyncIterator[bytes]:
    """Yield each complete request line as it arrives."""
    buffer = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        buffer += message.get("body", b"")
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip():
                yield line
        if not message.get("more_body", False):
            if buffer.strip():
                yield buffer
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    global _open_requests
    if scope["type"] != "http":
        return
    _open_requests += 1
    try:
        await _route(scope, receive, send)
    finally:
        _open_requests -= 1


async def _route(scope: Scope, receive: Receive, send: Send) -> None:
    global _firehose_sent
    path: str = scope["path"]
    query = dict(part.split("=", 1) for part in scope["query_string"].decode().split("&") if "=" in part)
    if path == "/echo":
        async for line in _body_lines(receive):
            await _start(send)
            await _line(send, {"echo": json.loads(line)}, more=False)
            return
        await _start(send, 400)
        await _line(send, {"error": "empty request", "code": 400}, more=False)
    elif path == "/stream":
        await _start(send)
        for n in range(int(query.get("count", "3"))):
            await _line(send, {"n": n})
        await _end(send)
    elif path == "/forever":
        await _start(send)
        await _line(send, {"n": 0})
        while (await receive())["type"] != "http.disconnect":
            pass  # the response never ends; only the client's leaving ends the handler
    elif path == "/sum":
        total = 0
        async for line in _body_lines(receive):
            total += int(json.loads(line)["n"])
        await _start(send)
        await _line(send, {"sum": total}, more=False)
    elif path == "/bidi":
        await _start(send)
        async for line in _body_lines(receive):
            await _line(send, {"echo": json.loads(line)})
        await _end(send)
    elif path.startswith("/status/"):
        code = int(path.rsplit("/", 1)[1])
        await _start(send, code, b"application/json")
        await _line(send, {"error": f"status {code}", "code": code}, more=False)
    elif path == "/inspect":
        body = b""
        async for line in _body_lines(receive):
            body += line + b"\n"
        seen = {
            "method": scope["method"],
            "http_version": scope.get("http_version"),
            "path": path,
            "query": scope["query_string"].decode(),
            "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
            "client": list(scope["client"]) if scope.get("client") else None,
            "body": body.decode(),
        }
        await _start(send, 200, b"application/json")
        await _line(send, seen, more=False)
    elif path == "/hang":
        while (await receive())["type"] != "http.disconnect":
            pass  # never answers; only the client's leaving ends the handler
    elif path == "/firehose":
        _firehose_sent = 0
        await _start(send)
        padding = "x" * int(query.get("size", "1000"))
        for n in range(int(query.get("count", "1000"))):
            await _line(send, {"n": n, "padding": padding})
            _firehose_sent += 1
        await _end(send)
    elif path == "/firehose-sent":
        await _start(send, 200, b"application/json")
        await _line(send, {"sent": _firehose_sent}, more=False)
    elif path == "/active":
        await _start(send, 200, b"application/json")
        # This request itself is one of the open ones.
        await _line(send, {"open": _open_requests - 1}, more=False)
    else:
        await _start(send, 404, b"application/json")
        await _line(send, {"error": "not found", "code": 404}, more=False)


# Running things in separate processes: the upstream app, and the `wsproxy` command itself.

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Process:
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


@contextlib.contextmanager
def spawn_listening(
    argv: list[str], *, graceful_stop: bool = True, env: dict[str, str] | None = None, stderr: Any = None
) -> Iterator[Process]:
    """Run `argv` plus `--fd N`, N an already listening loopback socket the process inherits.

    Connections queue in the socket's backlog until the process serves them, so a first request
    doubles as the readiness check. The parent's copy is closed at once: once the child dies, a
    connection is refused instead of waiting.
    """
    sock = bind_loopback()
    sock.listen(128)
    port = sock.getsockname()[1]
    try:
        proc = subprocess.Popen(
            [*argv, "--fd", str(sock.fileno())],
            pass_fds=[sock.fileno()],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
            stdin=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,  # so a kill takes uvicorn's worker processes too
        )
    finally:
        sock.close()
    process = Process(proc, port)
    try:
        yield process
    finally:
        if proc.poll() is None and graceful_stop:
            os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def hypercorn_process(*hypercorn_args: str) -> contextlib.AbstractContextManager[Process]:
    """This module's `app` served by hypercorn (HTTP/1.1, h2c prior knowledge, or TLS with h2)."""
    argv = [sys.executable, "-c", _HYPERCORN_FD, *hypercorn_args]
    return spawn_listening(argv, graceful_stop=False)


# hypercorn's command wants `--bind fd://N`; spawn_listening appends `--fd N`.
_HYPERCORN_FD = (
    "import sys; from hypercorn.__main__ import main; args = sys.argv[1:]; "
    "fd = args.pop(args.index('--fd') + 1); args.remove('--fd'); "
    "sys.exit(main(['tests.support.upstream_apps:app', '--bind', 'fd://' + fd, '--log-level', 'warning', *args]))"
)


def upstream_process(*uvicorn_args: str) -> contextlib.AbstractContextManager[Process]:
    """This module's `app` served by uvicorn in its own process."""
    argv = [sys.executable, "-m", "uvicorn", "tests.support.upstream_apps:app", "--log-level", "warning"]
    return spawn_listening(
        [*argv, "--no-access-log", "--lifespan", "off", *uvicorn_args], graceful_stop=False
    )


async def open_requests(upstream: Process, expected: int) -> int:
    """The upstream's count of running handlers, once it reaches `expected` (or after 10s)."""
    async with httpx.AsyncClient(base_url=upstream.http) as client:
        for _ in range(200):
            count = int((await client.get("/active")).json()["open"])
            if count == expected:
                break
            await asyncio.sleep(0.05)
    return count


@contextlib.asynccontextmanager
async def proxying(app: UpstreamApp | WebSocketProxyMiddleware, **options: Any) -> AsyncIterator[Running]:
    """`app` served by uvicorn here; then its idle upstream connections closed, as lifespan would."""
    upstream_app = app.app if isinstance(app, WebSocketProxyMiddleware) else app
    assert isinstance(upstream_app, UpstreamApp)
    try:
        async with serve(cast(Any, app), **options) as running:
            yield running
    finally:
        await upstream_app.aclose()


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, made with openssl in `directory`."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


# Raw TCP upstreams that misbehave in one precise way, for the fixed failure messages.

RAW_BEHAVIOURS = ("close", "reset", "garbage", "close-mid-body")


@contextlib.asynccontextmanager
async def raw_upstream(behaviour: str) -> AsyncIterator[str]:
    """An upstream that reads a request head, then misbehaves; yields its http:// URL.

    close: closes without answering. reset: resets the connection (SO_LINGER 0).
    garbage: answers bytes that are not HTTP. close-mid-body: starts a chunked response, then closes.
    """

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            if behaviour == "garbage":
                writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
            elif behaviour == "close-mid-body":
                writer.write(b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n9\r\n{"n": 0}\n\r\n')
                await writer.drain()
                await asyncio.sleep(0.2)
            elif behaviour == "reset":
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def h2_goaway_upstream() -> AsyncIterator[tuple[str, list[int]]]:
    """An h2c server (the h2 library, server side) that answers each request with one NDJSON line,
    then sends GOAWAY: every connection serves one call. Yields its URL and the list of
    connections it accepted (their count grows by one per connection)."""
    import h2.config
    import h2.connection
    import h2.events

    accepted: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(len(accepted))
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        body = json.dumps({"connection": len(accepted)}).encode() + b"\n"
                        conn.send_headers(event.stream_id, [(b":status", b"200")])
                        conn.send_data(event.stream_id, body, end_stream=True)
                        conn.close_connection(last_stream_id=event.stream_id)
                writer.write(conn.data_to_send())
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", accepted
    finally:
        server.close()
        await server.wait_closed()
