"""The load client's side of each measurement: one round of one variant against a running server."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

import httpx

from bench.procstat import cpu_seconds, minor_faults, own_cpu_seconds
from bench.wsclient import Connection, client_frame, open_connection

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Flow:
    """One round of streaming: rates over the measuring window, after a warm-up."""

    messages_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    server_cpu: float  # share of its one core the server used
    client_cpu: float  # share of its one core this load client used
    server_us_per_message: float
    server_faults_per_message: float  # page faults: fresh memory the server touched (big buffers)
    wrong_size: int


def payload_of(size: int) -> bytes:
    """A JSON value of exactly `size` bytes without line breaks (the proxy's NDJSON would split it)."""
    return b'{"m":"' + b"x" * (size - 8) + b'"}'


class _Window:
    """CPU and wall clock between start() and stop(), for the server process and for us."""

    def __init__(self, server_pid: int) -> None:
        self.pid = server_pid
        self.wall = self.server = self.client = 0.0
        self.faults = 0

    def start(self) -> None:
        self.wall, self.server, self.client = time.perf_counter(), cpu_seconds(self.pid), own_cpu_seconds()
        self.faults = minor_faults(self.pid)

    def stop(self) -> None:
        self.wall = time.perf_counter() - self.wall
        self.server = cpu_seconds(self.pid) - self.server
        self.client = own_cpu_seconds() - self.client
        self.faults = minor_faults(self.pid) - self.faults

    def flow(self, messages: int, latencies: list[float] | None, wrong_size: int = 0) -> Flow:
        p50 = p99 = None
        if latencies:
            latencies.sort()
            p50 = latencies[len(latencies) // 2] * 1000
            p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
        return Flow(
            messages_per_s=messages / self.wall,
            p50_ms=p50,
            p99_ms=p99,
            server_cpu=self.server / self.wall,
            client_cpu=self.client / self.wall,
            server_us_per_message=self.server / max(messages, 1) * 1e6,
            server_faults_per_message=self.faults / max(messages, 1),
            wrong_size=wrong_size,
        )


async def echo_flow(
    port: int,
    server_pid: int,
    path: str,
    payload: bytes,
    *,
    streams: int,
    in_flight: int,
    warmup: float,
    duration: float,
    check_size: bool = True,
) -> Flow:
    """Bidi echo: `streams` WebSockets, each keeping `in_flight` messages unanswered at all times."""
    frame = client_frame(payload)
    expected = len(payload) if check_size else None
    conns = [await open_connection(HOST, port, path, expected_size=expected) for _ in range(streams)]
    latencies: list[float] = []
    state = {"measuring": False, "running": True}

    def on_replies(conn: Connection, count: int, now: float) -> None:
        sent = conn.sent_at
        if state["measuring"]:
            record = latencies.append
            for _ in range(count):
                record(now - sent.popleft())
        else:
            for _ in range(count):
                sent.popleft()
        if state["running"]:
            conn.send(frame * count, count)

    for conn in conns:
        conn.on_replies = on_replies
        conn.send(frame * in_flight, in_flight)
    await asyncio.sleep(warmup)
    window = _Window(server_pid)
    before = sum(c.replies for c in conns)
    state["measuring"] = True
    window.start()
    await asyncio.sleep(duration)
    window.stop()
    state["measuring"] = False
    messages = sum(c.replies for c in conns) - before
    state["running"] = False
    await asyncio.gather(*(c.close() for c in conns))
    return window.flow(messages, latencies, sum(c.wrong_size for c in conns))


async def http_chat_flow(
    port: int, server_pid: int, *, requests: int, batch: int, warmup: float, duration: float
) -> Flow:
    """The Chat RPC over plain HTTP: concurrent streaming POSTs of `batch` lines each, replies counted."""
    body = b'{"text":"hello"}\n' * batch
    replies = 0
    running = True

    async def one_by_one(client: httpx.AsyncClient) -> None:
        nonlocal replies
        while running:
            async with client.stream("POST", f"http://{HOST}:{port}/v1/chat", content=body) as response:
                response.raise_for_status()
                async for line in response.aiter_lines():
                    if line:
                        replies += 1

    async with httpx.AsyncClient(timeout=60) as client:
        workers = [asyncio.create_task(one_by_one(client)) for _ in range(requests)]
        await asyncio.sleep(warmup)
        window = _Window(server_pid)
        before = replies
        window.start()
        await asyncio.sleep(duration)
        window.stop()
        messages = replies - before
        running = False
        await asyncio.gather(*workers)
    return window.flow(messages, None)


async def open_streams(
    port: int, path: str, payload: bytes, count: int, *, batch: int = 100
) -> list[Connection]:
    """`count` streams, each used once (one echo), left open."""
    frame = client_frame(payload)
    conns: list[Connection] = []

    async def used() -> Connection:
        conn = await open_connection(HOST, port, path)
        answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        conn.on_replies = lambda c, n, t: None if answered.done() else answered.set_result(None)
        conn.send(frame, 1)
        await answered
        return conn

    for start in range(0, count, batch):
        conns += await asyncio.gather(*(used() for _ in range(min(batch, count - start))))
    return conns


async def churn(port: int, path: str, payload: bytes, total: int, *, concurrency: int = 50) -> float:
    """Open, use once and close `total` streams, `concurrency` at a time; returns streams per second."""
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            (conn,) = await open_streams(port, path, payload, 1)
            await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - started)


def median(values: list[float]) -> float:
    return statistics.median(values)
